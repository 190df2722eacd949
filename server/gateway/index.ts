import type { Logger } from 'pino';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import type { CheckResult, ReadinessCheck } from '../health/readiness.js';
import type { Identity } from '../identity/index.js';
import { Revision } from '../identity/revision.js';
import { UsageWriter } from '../metering/usage.js';
import type { MeteringHook } from '../metering/index.js';
import type { Metrics } from '../metrics/registry.js';
import { egressPolicy, type EgressPolicy } from '../providers/egress.js';
import { Catalogue } from '../routing/catalogue.js';
import { DeploymentService } from '../routing/deployments.js';
import { TenantDeployments } from '../routing/tenant-deployments.js';
import type { Redis } from 'ioredis';
import { CacheAdmin } from './cache/admin.js';
import { ResponseCache } from './cache/index.js';
import { ContentLog } from './content-log.js';
import { CallTraces } from '../traces/service.js';
import { PolicyCache } from './policy-cache.js';
import { RefusalAudit } from './refusal-audit.js';
import { ResponseStore } from './faces/response-store.js';
import { GatewayService } from './service.js';
import type { FileSearchHook } from '../knowledge/file-search.js';
import { deploymentMetrics } from '../metrics/deployment-label.js';
import type { Telemetry } from '../telemetry/index.js';

/**
 * The AI gateway's services, built once by createServices: the catalogue (deployments,
 * adapters, breakers), tenant policies, the usage writer, opt-in content logging, the
 * deployment admin services (platform-wide and tenant-private) and the call service. start()
 * begins the `gateway` revision poll (changes reach this process within pollMs); stop()
 * flushes usage records and contents.
 */
export interface Gateway {
  readonly catalogue: Catalogue;
  readonly policies: PolicyCache;
  readonly usage: UsageWriter;
  /** Per-tenant opt-in content logging: capture, encrypted batched writes, reads, retention. */
  readonly content: ContentLog;
  /** Call traces (server/traces): each AI call's decision record, batched writes, explorer reads, retention. */
  readonly traces: CallTraces;
  readonly deployments: DeploymentService;
  /** Tenant-private deployments as tenant administrators (and platform administrators for a tenant) manage them. */
  readonly tenantDeployments: TenantDeployments;
  readonly service: GatewayService;
  /** `store: true` responses of the Responses face (sealed, per tenant and key). */
  readonly responses: ResponseStore;
  readonly revision: Revision;
  /** Metering admission/settlement, for pipelines built elsewhere (batches) so no route skips it. */
  readonly metering?: MeteringHook;
  /** OpenTelemetry traces (server/telemetry); undefined when no collector is configured. */
  readonly telemetry: Telemetry | undefined;
  /** The response cache's settings, stats and purge (server/gateway/cache). */
  readonly cacheAdmin: CacheAdmin;
  /** The Responses face's file_search tool (server/knowledge/file-search.ts), set by the composition root once knowledge is built. */
  fileSearch?: FileSearchHook;
  readinessCheck(): ReadinessCheck;
  /** Loads the catalogue and starts the revision poll; awaited before serving. */
  start(pollMs?: number): Promise<void>;
  /** Stops polling and writes the pending usage records and contents (awaited before the database closes). */
  stop(): Promise<void>;
}

export function createGateway(o: {
  /** The database (server/db/store.ts, issue 22). */
  store: Store;
  /** Tenant-scoped access over `store` (content log, stored responses). */
  tenantStore: TenantStore;
  secrets: SecretBox;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  identity: Identity;
  entitlements: () => Entitlements;
  usageFlushMs?: number;
  metering?: MeteringHook;
  /** Plan capability `content_logging` of a tenant; absent = allowed (no plans wired). */
  contentCapable?: (tenantId: string) => boolean;
  /** Where tenant-private deployments may connect (ENCLAVE_TENANT_PROVIDER_NETWORKS); absent = the default rule. */
  tenantEgress?: EgressPolicy;
  /** OpenTelemetry traces (server/telemetry/index.ts startTelemetry); absent = none. */
  telemetry?: Telemetry | undefined;
  /** Redis for the response cache; absent = no cache (every call a plain call). */
  redis?: Redis;
}): Gateway {
  const tenantEgress = o.tenantEgress ?? egressPolicy(undefined);
  const revision = new Revision(o.store, 'gateway');
  const catalogue = new Catalogue(o.store, o.secrets, o.clock, tenantEgress, (name, s, tenantPrivate) => deploymentMetrics(o.metrics).breakerChanged(name, s, tenantPrivate));
  const policies = new PolicyCache(o.store, o.tenantStore, revision);
  const usage = new UsageWriter(o.store, o.clock, o.log, { intervalMs: o.usageFlushMs ?? 50, maxBatch: 500 });
  const content = new ContentLog({ store: o.store, tenantStore: o.tenantStore, secrets: o.secrets, clock: o.clock, log: o.log, policies, audit: o.identity.audit, capable: o.contentCapable ?? (() => true) });
  const deployments = new DeploymentService({ store: o.store, secrets: o.secrets, clock: o.clock, revision, entitlements: o.entitlements, audit: o.identity.audit, tenants: o.identity.tenants, tenantEgress });
  const tenantDeployments = new TenantDeployments({ deployments, access: o.identity.access, audit: o.identity.audit });
  const refusals = new RefusalAudit(o.identity.audit, o.clock);
  const traces = new CallTraces({ store: o.store, tenantStore: o.tenantStore, clock: o.clock, log: o.log, metrics: o.metrics });
  const cache = o.redis ? new ResponseCache({ redis: o.redis, secrets: o.secrets, policies, metrics: o.metrics, clock: o.clock, log: o.log }) : undefined;
  const cacheAdmin = new CacheAdmin({ store: o.store, tenantStore: o.tenantStore, policies, revision, audit: o.identity.audit, redis: cache?.redis, flushUsage: () => usage.flush() });
  const service = new GatewayService({ catalogue, policies, usage, access: o.identity.access, entitlements: o.entitlements, metrics: o.metrics, clock: o.clock, log: o.log, content, refusals, traces, ...(o.metering ? { metering: o.metering } : {}), ...(cache ? { cache } : {}), ...(o.telemetry ? { telemetry: o.telemetry } : {}) });
  // The first revision check (start()) loads the catalogue; every later move reloads it.
  revision.onChange(async () => {
    policies.clear();
    await catalogue.reload(revision.current());
  });
  o.identity.revision.onChange(() => policies.clear());
  return {
    catalogue,
    policies,
    usage,
    content,
    traces,
    deployments,
    tenantDeployments,
    service,
    responses: new ResponseStore({ store: o.store, tenantStore: o.tenantStore, secrets: o.secrets, clock: o.clock }),
    revision,
    ...(o.metering ? { metering: o.metering } : {}),
    telemetry: o.telemetry,
    cacheAdmin,
    readinessCheck: () => ({
      name: 'providers',
      critical: false,
      run: () => {
        // The platform's deployments decide readiness. /readyz is unauthenticated, and a
        // tenant's own deployment is that tenant's business: its breakers show as a count,
        // never by name, and a tenant's broken endpoint does not make the appliance degraded.
        const live = catalogue.all().filter((d) => d.approved && d.enabled);
        const all = live.filter((d) => d.tenantRef === null);
        const open = all.filter((d) => d.breaker.state === 'open').map((d) => d.name);
        return {
          status: all.length === 0 ? 'degraded' : open.length === all.length ? 'fail' : open.length ? 'degraded' : 'ok',
          ...(all.length === 0 ? { detail: 'no platform provider deployment configured' } : {}),
          deployments: all.length,
          open_breakers: open,
          tenant_deployments: live.length - all.length,
          tenant_open_breakers: live.filter((d) => d.tenantRef !== null && d.breaker.state === 'open').length,
        } satisfies CheckResult;
      },
    }),
    start: async (pollMs = 200) => {
      await revision.check(); // loads the catalogue before the first call
      revision.start(pollMs);
    },
    stop: async () => {
      revision.stop();
      await usage.flush();
      await content.close();
      await traces.close();
    },
  };
}
