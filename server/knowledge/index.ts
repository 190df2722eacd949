import type { Services } from '../app.js';
import { ChatRepo } from '../db/repos/chat.js';
import { IdentityRepo } from '../db/repos/identity.js';
import { KnowledgeRepo } from '../db/repos/knowledge.js';
import { gatewayEmbedder, type Embedder } from './embed.js';
import { ingestProcessor } from './ingest.js';
import { INGEST_JOB, KnowledgeService } from './service.js';

export { INGEST_JOB, KnowledgeService } from './service.js';
export { retrieve, raised } from './retrieve.js';

/** An ingestion not heard from for this long is re-enqueued by the reconciler (a running one updates its row per batch). */
const STALE_MS = 5 * 60_000;

/**
 * Knowledge over a process's services (issue 20): the service (routes, chat, Responses) and
 * the ingest-lane handler (worker). Stateless: building it twice (api and worker roles of one
 * process) costs nothing.
 */
export function createKnowledge(services: Pick<Services, 'config' | 'store' | 'tenantStore' | 'jobs' | 'identity' | 'gateway' | 'clock' | 'log'>, o: { embedder?: Embedder } = {}) {
  const repo = new KnowledgeRepo(services.store, services.tenantStore);
  const embedder = o.embedder ?? gatewayEmbedder(services.gateway.service);
  const chats = new ChatRepo(services.store, services.tenantStore);
  const service = new KnowledgeService({
    config: services.config,
    repo,
    files: services.jobs.repo,
    queues: services.jobs.queues,
    access: services.identity.access,
    embedder,
    // The tenant's embedding models under its policy (listed as the system: a key needs no models:list scope for this).
    // Those with a local or private deployment first: a confidential file can be embedded by them.
    embeddingModels: async (ctx) => {
      const models = (await services.gateway.service.listModels({ ...ctx, principal: { kind: 'system', id: 'knowledge' } })).filter((m) => m.type === 'embedding');
      const inside = (m: (typeof models)[number]) => m.boundaries.some((b) => b !== 'public');
      return [...models.filter(inside), ...models.filter((m) => !inside(m))].map((m) => m.id);
    },
    conversationOwned: async (ctx, id) => !!ctx.principal?.userId && !!(await chats.conversation(ctx, ctx.principal.userId, id)),
    clock: services.clock,
    log: services.log,
  });
  const handler = {
    lane: 'ingest' as const,
    run: ingestProcessor({ config: services.config, repo, files: services.jobs.repo, identity: services.identity, identityRepo: new IdentityRepo(services.store, services.tenantStore), embedder, clock: services.clock }),
  };
  // Ingestions whose job was lost (Redis lost it, or the file was attached while Redis was
  // down) are enqueued again; the job id is the attachment's, so a job still queued or
  // running is not doubled. Files changed in the last STALE_MS are left to their job.
  const reconcile = {
    id: 'knowledge-ingest-reconcile',
    every: 60_000,
    run: async () => {
      const now = services.clock.now();
      let enqueued = 0;
      for (const f of await repo.unfinishedFiles(500)) {
        if (now - f.updatedAt < STALE_MS) continue;
        await service.enqueue(f.tenantId, f.vectorStoreId, f.fileId, f.createdAt);
        enqueued++;
      }
      return { enqueued };
    },
  };
  return { service, repo, handlers: { [INGEST_JOB]: handler }, schedules: [reconcile] };
}
