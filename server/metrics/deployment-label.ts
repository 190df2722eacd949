import type { Metrics } from './registry.js';

/**
 * Tenant-private deployments (a tenant administrator's own provider endpoints) never appear
 * by name in /metrics: their names are the tenant's business (they often name a customer,
 * a project or a host), and /metrics is read by whoever operates the platform. Their series
 * carry the generic label value TENANT_PRIVATE; their breaker state is not exported per
 * deployment (/readyz counts them without names).
 *
 * The catalogue (server/routing/catalogue.ts) reports every deployment with its privacy
 * before the first call can use it (breakerChanged at creation); from then on every
 * deployment-labelled gateway instrument maps the name on its way into a label, so callers
 * keep passing deployment names.
 */
export const TENANT_PRIVATE = 'tenant_private';

type BreakerState = 'closed' | 'half_open' | 'open';

interface Guard {
  readonly names: Set<string>;
  breakerChanged(deployment: string, state: BreakerState | null, tenantPrivate: boolean): void;
}

const guards = new WeakMap<Metrics, Guard>();

/** The deployment-labelled instruments and the position of their `deployment` label. */
function instruments(m: Metrics): [{ labels: (...a: never[]) => unknown }, number][] {
  return [
    [m.gatewayRequests, 1],
    [m.gatewayDuration, 1],
    [m.gatewayTtft, 0],
    [m.gatewayTokens, 0],
    [m.gatewayUpstreamAttempts, 0],
    [m.gatewayUpstreamDuration, 0],
  ];
}

/** The privacy-aware view of a Metrics instance (made once per instance). */
export function deploymentMetrics(m: Metrics): Guard {
  let g = guards.get(m);
  if (g) return g;
  const names = new Set<string>();
  const map = (v: unknown): unknown => (typeof v === 'string' && names.has(v) ? TENANT_PRIVATE : v);
  for (const [metric, at] of instruments(m)) {
    const original = metric.labels.bind(metric) as (...a: unknown[]) => unknown;
    // Positional (labels('chat', 'dep', …)) and object (labels({ deployment: 'dep' })) calls alike.
    (metric as { labels: (...a: unknown[]) => unknown }).labels = (...a: unknown[]) => {
      if (a.length === 1 && a[0] !== null && typeof a[0] === 'object') {
        const o = a[0] as Record<string, unknown>;
        return original('deployment' in o ? { ...o, deployment: map(o.deployment) } : o);
      }
      return original(...a.map((v, i) => (i === at ? map(v) : v)));
    };
  }
  g = {
    names,
    breakerChanged(deployment, state, tenantPrivate) {
      if (tenantPrivate) {
        if (state === null) names.delete(deployment);
        else names.add(deployment);
        return;
      }
      m.breakerChanged(deployment, state);
    },
  };
  guards.set(m, g);
  return g;
}
