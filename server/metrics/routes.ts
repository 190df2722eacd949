import { timingSafeEqual, createHash } from 'node:crypto';
import { Router } from 'express';
import { AppError } from '../errors.js';
import type { Metrics } from './registry.js';

/**
 * GET /metrics in the Prometheus text format; bearer token required when configured.
 * `extra` appends series collected elsewhere (queue depth and the workers' instruments,
 * server/jobs/metrics.ts); it must not throw. `collect` gives the registry's text (in an api
 * cluster: every worker's, aggregated by the supervisor).
 */
export function metricsRouter(metrics: Metrics, token: string | undefined, extra?: () => Promise<string>, collect: () => Promise<string> = () => metrics.registry.metrics()): Router {
  const r = Router();
  const expected = token ? createHash('sha256').update(token).digest() : undefined;
  r.get('/metrics', async (req, res) => {
    if (expected) {
      const given = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1] ?? '';
      // Hash both sides so the comparison is constant-time whatever the lengths.
      if (!timingSafeEqual(createHash('sha256').update(given).digest(), expected)) {
        throw new AppError(401, 'auth_metrics_token', 'GET /metrics needs "Authorization: Bearer <token>" (ENCLAVE_METRICS_TOKEN or the content of ENCLAVE_METRICS_TOKEN_FILE).', {
          headers: { 'www-authenticate': 'Bearer' },
        });
      }
    }
    const text = await collect();
    res.type(metrics.registry.contentType).send(extra ? text + (await extra()) : text);
  });
  return r;
}
