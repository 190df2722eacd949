import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { LANES } from './lanes.js';
import type { JobQueues } from './queues.js';

/**
 * Failed jobs in the admin API (platform administrators): the view the CLI's
 * `enclave jobs list|retry|discard` shows too.
 *   GET  /admin/api/jobs/counts
 *   GET  /admin/api/jobs/failed?queue=ai&limit=50
 *   POST /admin/api/jobs/:queue/:id/retry
 *   POST /admin/api/jobs/:queue/:id/discard
 */
const failedQuery = z.object({ queue: z.enum(LANES).optional(), limit: z.coerce.number().int().min(1).max(500).default(50) });
const laneParam = z.enum(LANES);

export function jobsAdminRouter(identity: Identity, queues: JobQueues): Router {
  const r = Router();
  r.use('/admin/api/jobs', authenticate(identity, { accept: ['session', 'api_key'] }));
  r.get('/admin/api/jobs/counts', async (req: Request, res: Response) => {
    await identity.access.require(req.ctx, 'platform:jobs:read');
    res.json({ object: 'job_counts', queues: await queues.counts() });
  });
  r.get('/admin/api/jobs/failed', async (req: Request, res: Response) => {
    await identity.access.require(req.ctx, 'platform:jobs:read');
    const q = failedQuery.safeParse(req.query);
    if (!q.success) throw new AppError(400, 'invalid_request', `queue must be one of ${LANES.join(', ')}; limit 1..500`);
    res.json({ object: 'list', data: await queues.listFailed({ limit: q.data.limit, ...(q.data.queue ? { queue: q.data.queue } : {}) }) });
  });
  for (const op of ['retry', 'discard'] as const) {
    r.post(`/admin/api/jobs/:queue/:id/${op}`, async (req: Request, res: Response) => {
      const lane = laneParam.safeParse(req.params.queue);
      if (!lane.success) throw new AppError(404, 'job_not_found', `No queue ${String(req.params.queue)}.`);
      const id = String(req.params.id);
      await identity.access.require(req.ctx, 'platform:jobs:write', {}, { type: 'job', id });
      const job = op === 'retry' ? await queues.retry(lane.data, id) : await queues.discard(lane.data, id);
      await identity.audit.record(req.ctx, { action: `jobs.${op}`, tenantId: job.tenant_id, target: { type: 'job', id: `${lane.data}:${id}` }, details: { name: job.name } });
      res.json({ object: 'job', ...job });
    });
  }
  return r;
}
