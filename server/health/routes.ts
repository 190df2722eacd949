import { Router } from 'express';
import type { Readiness } from './readiness.js';

export function healthRouter(readiness: Readiness): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'alive' });
  });
  r.get('/readyz', async (_req, res) => {
    const report = await readiness.report();
    res.status(report.status === 'ready' ? 200 : 503).json(report);
  });
  return r;
}
