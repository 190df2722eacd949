import { Router } from 'express';
import { AppError } from '../errors.js';
import { LOCAL_MESSAGE, metricsGate, TOKEN_MESSAGE, type MetricsAccess } from './access.js';
import type { Metrics } from './registry.js';

/**
 * GET /metrics in the Prometheus text format: a bearer token when configured, else loopback
 * clients only unless opened (server/metrics/access.ts). `access` may be the token alone
 * (older callers). `extra` appends series collected elsewhere (queue depth and the workers'
 * instruments, server/jobs/metrics.ts); it must not throw. `collect` gives the registry's
 * text (in an api cluster: every worker's, aggregated by the supervisor).
 */
export function metricsRouter(
  metrics: Metrics,
  access: MetricsAccess | string | undefined,
  extra?: () => Promise<string>,
  collect: () => Promise<string> = () => metrics.registry.metrics(),
): Router {
  const r = Router();
  const gate = metricsGate(typeof access === 'object' ? access : { token: access });
  r.get('/metrics', async (req, res) => {
    const d = gate(req);
    if (d === 'token_required') throw new AppError(401, 'auth_metrics_token', TOKEN_MESSAGE, { headers: { 'www-authenticate': 'Bearer' } });
    if (d === 'not_local') throw new AppError(403, 'metrics_not_local', LOCAL_MESSAGE);
    const text = await collect();
    res.type(metrics.registry.contentType).send(extra ? text + (await extra()) : text);
  });
  return r;
}
