import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RunningServer {
  readonly server: http.Server;
  readonly port: number;
  /** Number of requests currently being handled. */
  inFlight(): number;
  /**
   * Stops accepting connections, lets in-flight requests finish until `deadlineMs`, then
   * closes what is left. Resolves when every connection is gone.
   */
  close(deadlineMs: number): Promise<{ forced: boolean }>;
}

export function listen(app: http.RequestListener, port: number, host: string): Promise<RunningServer> {
  const server = http.createServer(app);
  // Keep-alive longer than typical load balancer idle timeouts (60 s) to avoid races
  // where the balancer reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // AI answers may stream for minutes; the gateway enforces its own deadlines.
  server.requestTimeout = 0;

  const active = new Set<http.ServerResponse>();
  let draining = false;
  server.on('request', (_req, res) => {
    active.add(res);
    if (draining) res.setHeader('connection', 'close');
    res.once('close', () => active.delete(res));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      resolve({
        server,
        port: addr.port,
        inFlight: () => active.size,
        close: (deadlineMs) =>
          new Promise((done) => {
            draining = true;
            // Responses still being prepared tell their clients not to reuse the socket.
            for (const res of active) if (!res.headersSent) res.setHeader('connection', 'close');
            let forced = false;
            // Idle keep-alive sockets would hold close() open; end them now and as
            // in-flight requests finish.
            const sweep = setInterval(() => server.closeIdleConnections(), 50);
            const deadline = setTimeout(() => {
              forced = true;
              server.closeAllConnections();
            }, deadlineMs);
            server.close(() => {
              clearInterval(sweep);
              clearTimeout(deadline);
              done({ forced });
            });
            server.closeIdleConnections();
          }),
      });
    });
  });
}
