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

/**
 * How long a client may take to send a request. Node enforces the first two (checked every
 * `checkIntervalMs`); the body rate is ours (server/http/server.ts slowBodies). None of them
 * limits a response: /v1 answers may stream for minutes (the gateway has its own deadlines).
 */
export interface HttpLimits {
  /** The request line and headers must arrive within this (slowloris). */
  readonly headersTimeoutMs: number;
  /** A whole request (headers and body, uploads included) must arrive within this. */
  readonly requestTimeoutMs: number;
  /**
   * Slow bodies: after this grace period from the headers, a body still being received must
   * have arrived at `bodyMinBytesPerSec` on average (over the time after the grace), or the
   * connection gets 408 and is closed. A trickle of a byte a second cannot hold a connection
   * (and a login's password hashing slot) for long, a real slow link (≥ 1 KiB/s) is never cut.
   */
  readonly bodyGraceMs: number;
  readonly bodyMinBytesPerSec: number;
  readonly checkIntervalMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 600_000,
  bodyGraceMs: 10_000,
  bodyMinBytesPerSec: 1024,
  checkIntervalMs: 1_000,
};

export function listen(app: http.RequestListener, port: number, host: string, limitsIn: Partial<HttpLimits> = {}): Promise<RunningServer> {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...limitsIn };
  const server = http.createServer({ connectionsCheckingInterval: limits.checkIntervalMs }, app);
  // Keep-alive longer than typical load balancer idle timeouts (60 s) to avoid races
  // where the balancer reuses a socket we are closing. (Node starts the headers timer at a
  // request's first byte, so an idle keep-alive socket is not cut by headersTimeout.)
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = limits.headersTimeoutMs;
  // Receiving the request only: AI answers may stream for minutes after it.
  server.requestTimeout = limits.requestTimeoutMs;
  const stopSlowBodies = slowBodies(server, limits);
  server.once('close', stopSlowBodies);

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

/** A request whose body is still arriving, with the socket's byte count when its headers were read. */
interface Receiving {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly at: number;
  readonly bytesAt: number;
}

/**
 * The slow-body rule of {@link HttpLimits}. Bytes are counted on the socket (socket.bytesRead),
 * not by listening to the request stream, which would take the body from its handler.
 * A handler that stops reading (backpressure) also stops the count; that only matters if it
 * stalls past the grace period without answering, and an answered request is left alone.
 */
function slowBodies(server: http.Server, limits: HttpLimits): () => void {
  const receiving = new Set<Receiving>();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.complete) return;
    const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return;
    const entry: Receiving = { req, res, at: Date.now(), bytesAt: req.socket.bytesRead };
    receiving.add(entry);
    const drop = (): void => void receiving.delete(entry);
    req.once('end', drop);
    req.once('close', drop);
    res.once('close', drop);
  });
  const timer = setInterval(() => {
    const now = Date.now();
    for (const e of receiving) {
      if (e.req.complete || e.res.headersSent || e.req.socket.destroyed) {
        receiving.delete(e);
        continue;
      }
      const late = now - e.at - limits.bodyGraceMs;
      if (late <= 0) continue;
      const got = e.req.socket.bytesRead - e.bytesAt;
      if (got >= (late / 1000) * limits.bodyMinBytesPerSec) continue;
      receiving.delete(e);
      e.res.shouldKeepAlive = false;
      e.res.writeHead(408, { 'content-type': 'application/json', connection: 'close' });
      e.res.end(JSON.stringify({ error: { message: `The request body arrived too slowly (under ${limits.bodyMinBytesPerSec} bytes/s after ${limits.bodyGraceMs / 1000} s).`, type: 'invalid_request_error', code: 'request_timeout', param: null } }));
      // The handler is still waiting for the body: end the connection so nothing more arrives.
      e.req.socket.destroySoon();
    }
  }, limits.checkIntervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
