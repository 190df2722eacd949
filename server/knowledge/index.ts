import type { Services } from '../app.js';
import { ChatRepo } from '../db/repos/chat.js';
import { IdentityRepo } from '../db/repos/identity.js';
import { KnowledgeRepo } from '../db/repos/knowledge.js';
import { gatewayEmbedder, type Embedder } from './embed.js';
import { ingestProcessor } from './ingest.js';
import { INGEST_JOB, KnowledgeService } from './service.js';

export { INGEST_JOB, KnowledgeService } from './service.js';
export { retrieve, raised } from './retrieve.js';

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
  return { service, repo, handlers: { [INGEST_JOB]: handler } };
}
