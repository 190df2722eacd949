import type { RequestListener } from 'node:http';
import express from 'express';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import { secureDataDir } from './config/data-dir.js';
import { resolveMasterKey } from './config/master-key.js';
import { RuntimeSettings } from './config/runtime-settings.js';
import type { SecretBox } from './config/secret-box.js';
import type { Config } from './config/settings.js';
import type { Db } from './db/connection.js';
import { openStore } from './db/open-store.js';
import { instrumentPool } from './metrics/db-pool.js';
import { createTenantStore, type TenantStore } from './db/tenant-store.js';
import type { Store } from './db/store.js';
import { Readiness } from './health/readiness.js';
import { healthRouter } from './health/routes.js';
import { errorHandler, notFoundHandler } from './http/errors.js';
import { requestContext } from './http/request-context.js';
import { jsonBody } from './http/json-body.js';
import { securityHeaders } from './http/security-headers.js';
import { closeInReverse, type Closer } from './lifecycle.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics/registry.js';
import { metricsRouter } from './metrics/routes.js';
import { APP_VERSION } from './paths.js';
import { egressPolicy } from './providers/egress.js';
import { configureContentScan } from './routing/content.js';
import { createRedis, pingRedis, waitForConnection } from './redis/client.js';
import { startEmbeddedRedis } from './redis/embedded.js';
import { createIdentity, ensureFirstAdmin, systemContext, type Identity } from './identity/index.js';
import { authRouter } from './identity/routes.js';
import { adminRouter, tenantIdGuard } from './admin/routes.js';
import { countAuthFailures } from './metrics/auth-failures.js';
import { licenseAdminRouter } from './admin/license-routes.js';
import { ChatAttachments } from './chat/attachments.js';
import { chatKnowledge } from './knowledge/chat.js';
import { chatRouter } from './chat/routes.js';
import { ChatService } from './chat/service.js';
import { ChatRepo } from './db/repos/chat.js';
import { ChatFeaturesRepo } from './db/repos/chat-features.js';
import { AdoptionRepo } from './db/repos/adoption.js';
import { adoptionRouter } from './adoption/routes.js';
import { AdoptionService } from './adoption/service.js';
import { assistantsRouter } from './assistants/routes.js';
import { AssistantService } from './assistants/service.js';
import { feedbackRouter } from './feedback/routes.js';
import { FeedbackService } from './feedback/service.js';
import { promptsRouter } from './prompts/routes.js';
import { PromptService } from './prompts/service.js';
import { webRouter } from './web/static.js';
import { uiRouter } from './web/ui-routes.js';
import { SsoService } from './sso/service.js';
import { authorityRouter } from './identity/authority-routes.js';
import { createJobs, type Jobs } from './jobs/index.js';
import { jobsAdminRouter } from './jobs/admin-routes.js';
import { enqueueWebhook } from './jobs/webhooks.js';
import { batchRouter } from './batch/routes.js';
import { createKnowledge } from './knowledge/index.js';
import { fileSearchHook } from './knowledge/file-search.js';
import { knowledgeRouter, vectorStoresRouter } from './knowledge/routes.js';
import { ssoAdminRouter, ssoRouter } from './sso/routes.js';
import { SamlLogin } from './sso/saml/login.js';
import { samlRouter } from './sso/saml/routes.js';
import type { Entitlements } from './access/entitlements.js';
import { startLicense } from '../license/boot.js';
import { defaultUsage, type LicenseService } from '../license/service.js';
import { createGateway, type Gateway } from './gateway/index.js';
import { ollamaRoutes, v1Routes } from './gateway/routes.js';
import { fastPath } from './http/fast-path.js';
import { isClusterWorker } from './cluster-env.js';
import { clusterMetrics } from './cluster.js';
import { gatewayAdminRouter } from './gateway/admin-routes.js';
import { tenantProvidersRouter } from './gateway/tenant-provider-routes.js';
import { contentLogRouter } from './gateway/content-routes.js';
import { callTraceRouter } from './traces/routes.js';
import { createMetering, type Metering } from './metering/index.js';
import { meteringRouter } from './metering/routes.js';
import { createScim, type Scim } from './scim/index.js';
import { scimRouter } from './scim/routes.js';
import { createSiem, type Siem } from './siem/index.js';
import { siemAdminRouter } from './siem/admin-routes.js';
import { scimAdminRouter } from './scim/admin-routes.js';
import { startTelemetry } from './telemetry/index.js';
import { TeamsRepo } from './db/repos/teams.js';
import { TeamService } from './teams/service.js';
import { teamsRouter } from './teams/routes.js';
import { responseCacheRouter } from './gateway/cache/routes.js';

/** Everything the process builds once and shares. Built only here (and by tests through here). */
export interface Services {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  /** The database (server/db/store.ts): SQLite in the data dir or PostgreSQL (issue 22). */
  readonly store: Store;
  /** The SQLite handle (embedded only; undefined on PostgreSQL): tests' raw inspection and the data-dir tools. */
  readonly sqlite: Db | undefined;
  readonly tenantStore: TenantStore;
  readonly secrets: SecretBox;
  readonly settings: RuntimeSettings;
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly readiness: Readiness;
  /** The installed licence: status, install, trusted time, usage export (license/service.ts). */
  readonly license: LicenseService;
  /** What the licence allows; authorize() and growth paths ask this (the LicenseService). */
  readonly entitlements: Entitlements;
  readonly metrics: Metrics;
  /** Tenants, users, sessions, API keys, authorize() and the audit log (server/identity/index.ts). */
  readonly identity: Identity;
  /** The AI gateway: catalogue, policies, usage writer, deployments admin, calls (server/gateway/index.ts). */
  readonly gateway: Gateway;
  /** Plans, prices, limits and quotas (admission), usage rollups and reports (server/metering). */
  readonly metering: Metering;
  /** OpenID Connect SSO: platform and tenant IdPs, login, mapping, logout (server/sso). */
  readonly sso: SsoService;
  /** Lanes (producer side), failed-jobs admin, queue metrics, the Batch API (server/jobs/index.ts). */
  readonly jobs: Jobs;
  /** SCIM 2.0 provisioning per tenant: tokens, Users and Groups (server/scim, issue 24). */
  readonly scim: Scim;
  /** Audit streaming to SIEM sinks (server/siem, issue 25); the worker role starts its forwarder. */
  readonly siem: Siem;
  /** Teams inside a tenant: members, team admins, models, ceiling, limits (server/teams, issue 24). */
  readonly teams: TeamService;
  /** Closes Redis, the database and an embedded redis-server this process started. */
  close(): Promise<void>;
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export async function createServices(
  config: Config,
  opts: {
    log?: Logger;
    clock?: Clock;
    /** scrypt cost (log2 N) for new passwords; tests lower it. */
    passwordLogN?: number;
    /** Tests only: what identity growth and feature checks ask instead of the licence. */
    entitlements?: Entitlements;
  } = {},
): Promise<Services> {
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? systemClock;
  // 0700 data dir, 0600 files, umask 077 for what is created later (server/config/data-dir.ts).
  secureDataDir(config.dataDir, log);
  const master = resolveMasterKey(config, log);

  // SQLite in the data dir, or PostgreSQL (ENCLAVE_DATABASE_URL), migrated to this version (issue 22).
  const opened = await openStore(config, { appVersion: APP_VERSION, now: () => clock.now(), applicationName: `enclave ${process.pid}` });
  if (opened.applied.length) log.info({ applied: opened.applied, dialect: opened.store.dialect }, 'applied database migrations');
  const { store } = opened;
  const tenantStore = createTenantStore(store);
  const closers: Closer[] = [() => opened.close()];
  // Once only: a second call (e.g. a signal during start-up failure handling) waits for the first.
  let closing: Promise<void> | undefined;
  const closeAll = (): Promise<void> => (closing ??= closeInReverse(closers, log));
  try {
    configureContentScan({ sliceChars: config.contentScanSliceChars });

    const settings = new RuntimeSettings(store, master.box, clock);
    await settings.ensureSelfTest();
    const selftest = await settings.checkSelfTest();
    if (!selftest.ok) {
      throw new StartupError(
        `master key does not decrypt this database's secrets (${selftest.reason}); set the ENCLAVE_MASTER_KEY it was created with, or add it to ENCLAVE_PREVIOUS_MASTER_KEYS`,
      );
    }

    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const embedded = await startEmbeddedRedis({ bin: config.redisServerBin, dataDir: config.dataDir, log });
      closers.push(() => embedded.stop());
      redisUrl = embedded.url;
    }
    const redis = createRedis(redisUrl, log);
    closers.push(async () => {
      redis.disconnect();
    });
    if (!(await waitForConnection(redis))) log.warn('redis not reachable yet; /readyz reports it until it is');

    const readiness = new Readiness();
    const metrics = new Metrics();
    if (opened.pg) instrumentPool(opened.pg.$client, metrics.registry, config.databasePoolMax); // pool saturation (PostgreSQL)
    // The database answers (a query), and its schema is this version's.
    readiness.register({
      name: 'database',
      critical: true,
      run: async () => {
        await opened.ping();
        return { status: 'ok', dialect: opened.store.dialect };
      },
    });
    readiness.register({
      name: 'migrations',
      critical: true,
      run: async () => {
        const c = await opened.check();
        return { status: c.status, head: c.head, pending: c.pending };
      },
    });
    readiness.register({
      name: 'redis',
      critical: true,
      run: async () => {
        await pingRedis(redis);
        return { status: 'ok' };
      },
    });

    // Never fails start-up: a missing or broken licence means community entitlements and a log line.
    const license = await startLicense({ config, store, settings, clock, log });
    closers.push(() => license.stop());
    metrics.trackLicense(() => license.metrics());
    readiness.register(license.readinessCheck());

    let gatewayRef: Gateway | undefined;
    let identityRef: Identity | undefined;
    const metering = createMetering({
      store,
      redis,
      clock,
      log,
      metrics,
      entitlements: opts.entitlements ? () => opts.entitlements! : () => license,
      audit: () => identityRef?.audit,
      failureMode: config.rateLimitFailureMode,
      flushLedger: () => gatewayRef?.usage.flush(),
      secrets: master.box,
      webhookEgress: egressPolicy(config.tenantProviderNetworks),
    });
    await metering.start(); // loads the plan and price caches before the first request
    closers.push(() => metering.stop());
    const identity = createIdentity({
      plans: () => metering.plans,
      store,
      tenantStore,
      clock,
      log,
      entitlements: opts.entitlements ? () => opts.entitlements! : () => license,
      ...(opts.passwordLogN ? { passwordLogN: opts.passwordLogN } : {}),
      sessionIdleMs: config.sessionIdleMinutes * 60_000,
      sessionMaxMs: config.sessionMaxHours * 3600_000,
      metrics,
    });
    const firstAdmin = await ensureFirstAdmin(identity, systemContext(log, clock, 'bootstrap'), config.adminEmail, config.adminPassword);
    if (firstAdmin) log.info({ userId: firstAdmin }, 'created the first platform administrator from ENCLAVE_ADMIN_EMAIL');
    identity.start();
    closers.push(() => identity.stop());
    identityRef = identity;
    const teams = new TeamService({ repo: new TeamsRepo(store), revision: metering.revision, clock, access: identity.access, audit: identity.audit, keys: identity.keys });
    identity.teamOf = (tenantId, userId, keyTeamId) => teams.resolve(tenantId, userId, keyTeamId);
    identity.teamDirectory = (tenantId, userId, groups, source) => teams.syncDirectory(tenantId, userId, groups, source);
    // OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set (nothing loaded otherwise); shut down after the gateway's last calls.
    const telemetry = await startTelemetry(config, { log, registry: metrics.registry });
    if (telemetry) closers.push(() => telemetry.shutdown());
    const gateway = createGateway({ telemetry, store, tenantStore, secrets: master.box, clock, log, metrics, identity, entitlements: opts.entitlements ? () => opts.entitlements! : () => license, metering: metering.hook, contentCapable: (tenantId) => metering.plans.has(tenantId, 'content_logging'), tenantEgress: egressPolicy(config.tenantProviderNetworks), redis });
    gatewayRef = gateway;
    await gateway.usage.loadMonth(); // the licence's token count starts from this month's ledger
    await gateway.start();
    closers.push(() => gateway.stop()); // flushes pending usage records before the database closes
    readiness.register(gateway.readinessCheck());
    // The licence's view of usage: seats, tenants and keys from the identity tables, this
    // month's tokens from the usage ledger (over-limit reports and `license show`).
    const countUsage = defaultUsage(store);
    license.setUsageSource(async () => ({ ...(await countUsage()), tokensMonth: gateway.usage.tokensThisMonth() }));
    // Installs, rejections, state changes and clock events land in the audit log.
    // The listener's promise (the audit append) is awaited by the licence operation that emitted it.
    license.onEvent((e) =>
      identity.audit.record(undefined, {
        action: `license.${e.type}`,
        actor: { type: 'system', id: 'license' },
        target: { type: 'license', id: typeof e.detail.lid === 'string' ? e.detail.lid : null },
        outcome: e.type === 'rejected' ? 'denied' : 'allowed',
        tenantId: null,
        details: e.detail,
      }),
    );
    const entitlementsNow = opts.entitlements ?? license;
    const jobs = createJobs({ config, redisUrl, redis, store, tenantStore, access: identity.access, keys: identity.keys, clock, log });
    closers.push(() => jobs.close());
    // Soft-limit webhooks are delivered by the worker (maintenance lane), never from here.
    metering.onNotification((n) => void enqueueWebhook(jobs.queues, n).catch((e: Error) => log.warn({ err: e.message, notificationId: n.notificationId }, 'could not queue the quota webhook; the reconciler retries')));
    const siem = createSiem({ store, box: master.box, clock, log, audit: identity.audit, egress: egressPolicy(config.tenantProviderNetworks), redis, registry: metrics.registry });
    closers.push(() => siem.stop()); // before Redis and the database close
    const sso = new SsoService({ config, log, clock, store, tenantStore, secrets: master.box, settings, redis, metrics, identity, entitlements: () => entitlementsNow });

    return {
      config,
      log,
      clock,
      store,
      sqlite: opened.sqlite,
      tenantStore,
      secrets: master.box,
      settings,
      redis,
      redisUrl,
      readiness,
      license,
      entitlements: opts.entitlements ?? license,
      metrics,
      identity,
      gateway,
      metering,
      sso,
      jobs,
      siem,
      scim: createScim({ store, tenantStore, identity, clock, entitlements: () => entitlementsNow }),
      teams,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** The HTTP application: /v1 on the fast path; the rest through express — middleware in order, then routers, then 404 and errors. */
export function buildApp(services: Services): RequestListener {
  const { config } = services;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  app.use(requestContext(services.log, services.clock, services.metrics));
  // helmet's headers for this configuration, precomputed (server/http/security-headers.ts).
  app.use(securityHeaders());
  // Before the API's JSON parser: /scim/v2 parses its own bodies (application/scim+json) and answers in SCIM's error shape.
  app.use(scimRouter(services.scim, { maxBodyBytes: config.maxBodyBytes, publicUrl: config.publicUrl, entitlements: () => services.entitlements }));
  app.use(jsonBody(config.maxBodyBytes));

  app.use(healthRouter(services.readiness));
  app.use(countAuthFailures(services.metrics));
  app.use(metricsRouter(services.metrics, { token: config.metricsToken, public: config.metricsPublic, trustProxy: config.trustProxy }, () => services.jobs.metricsText(), isClusterWorker() ? clusterMetrics : undefined));
  app.use(authRouter(services.identity, { cookieSecure: config.cookieSecure, maxAgeMs: config.sessionMaxHours * 3600_000 }));
  app.use(ssoRouter(services.sso, services.identity, { cookieSecure: config.cookieSecure, maxAgeMs: config.sessionMaxHours * 3600_000 }));
  app.use(tenantIdGuard());
  app.use(ssoAdminRouter(services.sso, services.identity));
  app.use(samlRouter(new SamlLogin(services.sso, { config, redis: services.redis }), services.identity, { cookieSecure: config.cookieSecure, maxAgeMs: config.sessionMaxHours * 3600_000 }));
  app.use(adminRouter(services.identity));
  app.use(authorityRouter(services.identity, { cookieSecure: config.cookieSecure, maxAgeMs: config.sessionMaxHours * 3600_000 }));
  app.use(gatewayAdminRouter(services.identity, services.gateway));
  app.use(tenantProvidersRouter(services.identity, services.gateway));
  app.use(contentLogRouter(services.identity, services.gateway.content));
  app.use(callTraceRouter(services.identity, services.gateway));
  app.use(responseCacheRouter(services.identity, services.gateway.cacheAdmin));
  app.use(meteringRouter(services.identity, services.metering));
  app.use(scimAdminRouter(services.identity, services.scim));
  app.use(teamsRouter(services.identity, services.teams, { plans: services.metering.plans, clock: services.clock, flush: () => services.gateway.usage.flush() }));
  // Knowledge (issue 20): files for retrieval, /v1/vector_stores, the console's collections, file_search.
  const knowledge = createKnowledge(services).service;
  services.gateway.fileSearch = fileSearchHook(knowledge);
  app.use(vectorStoresRouter(services.identity, knowledge));
  app.use(knowledgeRouter(services.identity, knowledge, { maxFileBytes: config.batchMaxFileBytes }));
  app.use(batchRouter(services.identity, services.jobs.batches, { maxFileBytes: config.batchMaxFileBytes, files: knowledge }));
  app.use(jobsAdminRouter(services.identity, services.jobs.queues));
  app.use(siemAdminRouter(services.identity, services.siem.sinks));
  app.use(licenseAdminRouter(services.identity, services.license));
  app.use(uiRouter(services.identity, services.license, { metering: services.metering, policy: (ctx) => services.gateway.policies.load(ctx), siemSinks: services.siem.sinks }));
  // The web UI's chat calls the same gateway pipeline as /v1 (workflow `chat`), with the session.
  // Chat features of issue 21: assistants (presets), feedback on answers, the prompt library.
  const chatRepo = new ChatRepo(services.store, services.tenantStore);
  const features = new ChatFeaturesRepo(services.store, services.tenantStore);
  const assistants = new AssistantService(features, services.identity, async (ctx) => ((await services.gateway.service?.listModels(ctx)) ?? []).filter((m) => !m.type || m.type === 'chat').map((m) => m.id));
  const feedback = new FeedbackService(features, chatRepo, services.identity);
  app.use(assistantsRouter(services.identity, assistants));
  app.use(promptsRouter(services.identity, new PromptService(features, services.identity)));
  app.use(feedbackRouter(services.identity, feedback));
  app.use(adoptionRouter(services.identity, new AdoptionService(new AdoptionRepo(services.store), services.identity, (id) => services.metering.plans.tenant(id)?.timezone ?? 'UTC', () => services.gateway.usage.flush())));
  const chatAttachments = new ChatAttachments(services.tenantStore); // images in chat (issue 20)
  app.use(
    chatRouter(services.identity, new ChatService(chatRepo, { assistants, feedbackOf: (ctx, ids) => feedback.mine(ctx, ids), attachments: chatAttachments }), {
      pipeline: () => services.gateway.service,
      policy: (ctx) => services.gateway.policies.load(ctx),
      images: { attachments: chatAttachments, acceptsImages: (ctx, model) => !!ctx.tenant && services.gateway.catalogue.acceptsImages(model, ctx.tenant.id) },
      knowledge: () => chatKnowledge(knowledge),
    }),
  );
  // Last before 404: the built UI (dist/web) with SPA fallback; never shadows the API paths.
  app.use(webRouter());

  app.use(notFoundHandler);
  app.use(errorHandler());
  // /v1 (every AI call) is served without express, by the same request pieces (server/http/fast-path.ts).
  return fastPath({
    routes: [...v1Routes(services.gateway), ...ollamaRoutes(services.gateway)],
    identity: services.identity,
    log: services.log,
    clock: services.clock,
    metrics: services.metrics,
    maxBodyBytes: config.maxBodyBytes,
    trustProxy: config.trustProxy,
    fallback: app,
    telemetry: services.gateway.telemetry,
  });
}
