import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LOCAL_MESSAGE, metricsGate, TOKEN_MESSAGE } from './access.js';
import type { Metrics } from './registry.js';

export interface WorkerMetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The worker role's own GET /metrics (ENCLAVE_WORKER_METRICS_PORT): the same registry the
 * process builds in createServices (process metrics, build info, the gateway instruments of
 * batch lines, licence and backup gauges). Queue depth, oldest age and job outcomes are read
 * from Redis by the API's /metrics (server/jobs/metrics.ts), so they are not repeated here —
 * a sum() over both targets would count them twice. The same access rule as the API's
 * (server/metrics/access.ts: the bearer token, else loopback clients unless opened).
 * A plain node:http server: no express, nothing else is served.
 */
export async function startWorkerMetricsServer(o: {
  metrics: Metrics;
  port: number;
  host: string;
  token?: string | undefined;
  public?: boolean;
  trustProxy?: number;
}): Promise<WorkerMetricsServer> {
  const gate = metricsGate({ token: o.token, public: o.public ?? false, trustProxy: o.trustProxy ?? 0 });
  // GET only: a request must arrive whole within 20 s (slowloris), checked every second.
  const server: Server = createServer({ connectionsCheckingInterval: 1000, headersTimeout: 20_000, requestTimeout: 20_000 }, (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'Only GET /metrics is served here.', type: 'not_found', code: 'route_not_found', param: null } }));
      return;
    }
    const d = gate(req);
    if (d !== 'allow') {
      const body = d === 'token_required' ? { message: TOKEN_MESSAGE, type: 'authentication_error', code: 'auth_metrics_token' } : { message: LOCAL_MESSAGE, type: 'permission_error', code: 'metrics_not_local' };
      res
        .writeHead(d === 'token_required' ? 401 : 403, { 'content-type': 'application/json', ...(d === 'token_required' ? { 'www-authenticate': 'Bearer' } : {}) })
        .end(JSON.stringify({ error: { ...body, param: null } }));
      return;
    }
    o.metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': o.metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(e as Error).message}\n`);
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' idle connections
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: Error) =>
      reject(new Error(`cannot serve worker metrics on ${o.host}:${o.port}: ${e.message}; set ENCLAVE_WORKER_METRICS_PORT to a free port`)),
    );
    server.listen(o.port, o.host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
