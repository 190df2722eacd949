import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { APP_VERSION } from '../paths.js';
import { initKnownSeries, LICENSE_STATES, type LicenseMetricsSource } from './known-series.js';

/** One tenant's monthly usage against a plan limit (enclave_quota_used_ratio). */
export interface QuotaRatio {
  readonly tenant: string;
  readonly limit: 'monthly_tokens' | 'monthly_cost_micros';
  readonly ratio: number;
}

const BREAKER_CODE = { closed: 0, half_open: 1, open: 2 } as const;

/** Seconds buckets for HTTP handling of non-AI routes (sub-millisecond to seconds). */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Seconds buckets for AI calls (tens of milliseconds to minutes). */
const LLM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600];

const children = new WeakMap<object, Map<string, unknown>>();

/**
 * `metric.labels(...values)`, kept: prom-client builds and hashes a label object on every
 * `labels()` call, and the gateway updates about a dozen series per AI call. Label values are
 * bounded (route templates, deployment names, closed sets), so the cache is too. Not for
 * series that are ever `remove()`d (the breaker gauges).
 */
export function child<C>(metric: { labels(...values: string[]): C }, ...values: string[]): C {
  let m = children.get(metric) as Map<string, C> | undefined;
  if (!m) children.set(metric, (m = new Map()));
  const key = values.length === 1 ? values[0]! : values.join('\u0001');
  let c = m.get(key);
  if (c === undefined) {
    c = metric.labels(...values);
    m.set(key, c);
  }
  return c;
}

/**
 * One registry per process (per Services instance, so tests can build several), with every
 * instrument defined here. Names: `enclave_` prefix, base units, `_total` counters. Labels
 * are bounded: route templates, methods, status classes — never ids, e-mails or content.
 */
export class Metrics {
  readonly registry = new Registry();
  // Gauges say how their values combine across api worker processes (ENCLAVE_API_WORKERS,
  // server/cluster.ts): the aggregated /metrics sums in-flight calls, but takes the worst
  // breaker state, the lowest `up`, and one copy of values every process reads alike.

  readonly buildInfo = new Gauge({
    aggregator: 'first',
    name: 'enclave_build_info',
    help: 'Build information; always 1.',
    labelNames: ['version', 'node_version'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'enclave_http_requests_total',
    help: 'HTTP requests handled, by route template, method and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'enclave_http_request_duration_seconds',
    help: 'Time to handle an HTTP request (until the response is finished), by route template.',
    labelNames: ['route', 'method'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  // ---- AI gateway (issue 5). Labels: endpoint (chat|embeddings), deployment (admin-configured
  // name, bounded), kind, boundary, outcome (closed set) — never tenants, users, keys or content.

  readonly gatewayRequests = new Counter({
    name: 'enclave_gateway_requests_total',
    help: 'AI calls, by endpoint, final deployment (or "none"), boundary and outcome (ok, client_disconnect, or the error type).',
    labelNames: ['endpoint', 'deployment', 'boundary', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly gatewayApiCalls = new Counter({
    name: 'enclave_gateway_api_calls_total',
    help: 'AI calls by API face (chat = OpenAI /v1, responses, messages, ollama, batch), endpoint and outcome.',
    labelNames: ['api', 'endpoint', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly gatewayDuration = new Histogram({
    name: 'enclave_gateway_request_duration_seconds',
    help: 'Total time of an AI call, from arrival to last byte.',
    labelNames: ['endpoint', 'deployment'] as const,
    buckets: LLM_BUCKETS,
    registers: [this.registry],
  });

  readonly gatewayTtft = new Histogram({
    name: 'enclave_gateway_time_to_first_token_seconds',
    help: 'Time from arrival to the first streamed token sent to the client.',
    labelNames: ['deployment'] as const,
    buckets: LLM_BUCKETS,
    registers: [this.registry],
  });

  readonly gatewayOverhead = new Histogram({
    name: 'enclave_gateway_overhead_seconds',
    help: 'Time spent inside Enclave for an AI call (total minus time waiting for the upstream), by endpoint and API face.',
    labelNames: ['endpoint', 'api'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [this.registry],
  });

  /** Per pipeline stage of an AI call (server/traces, issue 25): the latency breakdown without a tracing backend. */
  readonly gatewayStage = new Histogram({
    name: 'enclave_gateway_stage_duration_seconds',
    help: 'Time an AI call spent in each pipeline stage: plan (policy, classification, content rules, candidates), admission (limits and quotas), upstream (admission to the first byte of the answer, retries and fallbacks included), relay (first byte to the end of the answer).',
    labelNames: ['stage'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  readonly gatewayTokens = new Counter({
    name: 'enclave_gateway_tokens_total',
    help: 'Tokens processed, by deployment and type (prompt|completion).',
    labelNames: ['deployment', 'type'] as const,
    registers: [this.registry],
  });

  readonly gatewayUpstreamAttempts = new Counter({
    name: 'enclave_gateway_upstream_attempts_total',
    help: 'Calls made to upstream deployments, by result (ok or the provider_* error code).',
    labelNames: ['deployment', 'result'] as const,
    registers: [this.registry],
  });

  readonly gatewayFallbacks = new Counter({
    name: 'enclave_gateway_fallbacks_total',
    help: 'Times a call moved on to the next candidate deployment.',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly gatewayPolicyDecisions = new Counter({
    name: 'enclave_gateway_policy_decisions_total',
    help: 'Data-boundary decisions, by classification and content action (allow, redact, route_local, block).',
    labelNames: ['classification', 'action'] as const,
    registers: [this.registry],
  });

  /** Response cache (server/gateway/cache): no tenant label, by design. */
  readonly cacheLookups = new Counter({
    name: 'enclave_gateway_cache_lookups_total',
    help: 'Response cache decisions by result: hit, miss, bypass (not cacheable, or the client sent no-store/bypass), error (Redis unavailable: served as a miss).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly cacheBytes = new Counter({
    name: 'enclave_gateway_cache_bytes_total',
    help: 'Encrypted bytes the response cache stored and served.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  readonly cacheEvictions = new Counter({
    name: 'enclave_gateway_cache_evictions_total',
    help: 'Response cache entries evicted to keep a tenant under its size cap.',
    registers: [this.registry],
  });

  readonly gatewayRuleHits = new Counter({
    name: 'enclave_gateway_content_rule_hits_total',
    help: 'Content rule detections, by detector type (never the matched text).',
    labelNames: ['detector'] as const,
    registers: [this.registry],
  });

  readonly gatewayBreakerState = new Gauge({
    aggregator: 'max',
    name: 'enclave_gateway_breaker_state',
    help: 'Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.',
    labelNames: ['deployment'] as const,
    registers: [this.registry],
  });

  readonly gatewayUpstreamDuration = new Histogram({
    name: 'enclave_gateway_upstream_duration_seconds',
    help: 'Time an AI call spent waiting for upstream deployments (all attempts), by final deployment and endpoint.',
    labelNames: ['deployment', 'endpoint'] as const,
    buckets: LLM_BUCKETS,
    registers: [this.registry],
  });

  /** Cost in micro-units of the price currency (integer; the usage record's cost_micros). */
  readonly gatewayCost = new Counter({
    name: 'enclave_gateway_cost_micros_total',
    help: 'Cost of AI calls in micro-units of the price currency (1e-6), by tenant slug, upstream model and provider kind.',
    labelNames: ['tenant', 'model', 'provider'] as const,
    registers: [this.registry],
  });

  readonly providerUp = new Gauge({
    aggregator: 'min',
    name: 'enclave_provider_up',
    help: 'Whether a provider deployment takes calls: 1 unless its circuit breaker is open.',
    labelNames: ['deployment'] as const,
    registers: [this.registry],
  });

  /**
   * Breaker state changes (server/routing/catalogue.ts: at creation, on every change, and
   * null when the deployment is gone): enclave_gateway_breaker_state and enclave_provider_up.
   */
  breakerChanged(deployment: string, state: 'closed' | 'half_open' | 'open' | null): void {
    if (state === null) {
      this.gatewayBreakerState.remove(deployment);
      this.providerUp.remove(deployment);
      return;
    }
    this.gatewayBreakerState.labels(deployment).set(BREAKER_CODE[state]);
    this.providerUp.labels(deployment).set(state === 'open' ? 0 : 1);
  }

  readonly gatewayInflight = new Gauge({
    aggregator: 'sum',
    name: 'enclave_gateway_inflight_requests',
    help: 'AI calls in progress.',
    registers: [this.registry],
  });

  // ---- Metering (issue 7). Labels: level (key|user|tenant|licence), limit (closed set), store,
  // threshold — never tenant, user or key ids.

  readonly quotaRefusals = new Counter({
    name: 'enclave_quota_refusals_total',
    help: 'Calls refused at admission, by level (key, user, tenant, licence) and limit (requests_per_minute, tokens_per_minute, concurrent_requests, monthly_tokens, monthly_cost_micros).',
    labelNames: ['level', 'limit'] as const,
    registers: [this.registry],
  });

  readonly ratelimitAdmissions = new Counter({
    name: 'enclave_ratelimit_admissions_total',
    help: 'Calls admitted with limits checked, by counter store: redis (exact, one script call), lease (from this process\'s lease, far from every limit: docs/quotas.md), or memory while Redis is unavailable and the deployment fails open.',
    labelNames: ['store'] as const,
    registers: [this.registry],
  });
  readonly ratelimitUnavailable = new Counter({
    name: 'enclave_ratelimit_redis_unavailable_total',
    help: 'Admissions that found Redis unavailable, by what happened (fail_open: counted in process; refused: 503 under fail-closed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly ratelimitDegraded = new Gauge({
    aggregator: 'max',
    name: 'enclave_ratelimit_degraded',
    help: '1 while the rate limiter runs without Redis (fail-open: per-process limits), else 0.',
    registers: [this.registry],
  });

  readonly quotaAlerts = new Counter({
    name: 'enclave_quota_alerts_total',
    help: 'Soft-limit notifications raised (once per tenant, window, limit and threshold), by limit and threshold percentage.',
    labelNames: ['limit', 'threshold'] as const,
    registers: [this.registry],
  });

  /** Sign-ins by method (local, oidc, saml) and outcome (success or a bounded failure class; server/sso/service.ts LOGIN_OUTCOMES). */
  readonly authLogins = new Counter({
    name: 'enclave_auth_logins_total',
    help: 'Sign-in attempts by method and outcome (success or a bounded failure class).',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });

  // ---- Tenant quotas (issue 9): read from metering at scrape time (trackQuotas, server/metering).

  private quotaSource: (() => readonly QuotaRatio[] | Promise<readonly QuotaRatio[]>) | undefined;

  readonly quotaUsedRatio = new Gauge({
    aggregator: 'max',
    name: 'enclave_quota_used_ratio',
    help: 'Share of a tenant plan monthly limit used this month (monthly_tokens, monthly_cost_micros), by tenant slug; only limits the plan sets.',
    labelNames: ['tenant', 'limit'] as const,
    registers: [this.registry],
    collect: () => this.collectQuotas(),
  });

  /** Lets enclave_quota_used_ratio read the tenants' monthly usage at scrape time (server/metering/index.ts). */
  trackQuotas(source: () => readonly QuotaRatio[] | Promise<readonly QuotaRatio[]>): void {
    this.quotaSource = source;
  }

  private async collectQuotas(): Promise<void> {
    let rows: readonly QuotaRatio[];
    try {
      rows = (await this.quotaSource?.()) ?? [];
    } catch {
      return; // database closed during shutdown: keep the last values
    }
    this.quotaUsedRatio.reset();
    for (const r of rows) this.quotaUsedRatio.labels(r.tenant, r.limit).set(r.ratio);
  }

  // ---- Sessions and audit (issue 9).

  private sessionSource: (() => number | Promise<number>) | undefined;

  readonly sessionsActive = new Gauge({
    aggregator: 'max',
    name: 'enclave_sessions_active',
    help: 'Web sessions neither ended nor expired (absolute and idle timeouts).',
    registers: [this.registry],
    collect: async () => {
      try {
        if (this.sessionSource) this.sessionsActive.set(await this.sessionSource());
      } catch {
        /* database closed during shutdown */
      }
    },
  });

  /** Lets enclave_sessions_active count the sessions at scrape time (server/identity; the source caches). */
  trackSessions(source: () => number | Promise<number>): void {
    this.sessionSource = source;
  }

  readonly auditEvents = new Counter({
    name: 'enclave_audit_events_total',
    help: 'Audit log entries appended, by category (first segment of the action, closed list) and outcome (allowed, denied).',
    labelNames: ['category', 'outcome'] as const,
    registers: [this.registry],
  });

  /** Where the backup gauges read the last-success / last-verified records (server/ops/backup/records.ts). */
  private backupSource: (() => { lastSuccess?: { at: number }; lastVerified?: { at: number } }) | undefined;

  readonly backupLastSuccess = new Gauge({
    aggregator: 'max',
    name: 'enclave_backup_last_success_timestamp_seconds',
    help: 'Unix time of the last successful backup (enclave backup create or the scheduled job); 0 = never.',
    registers: [this.registry],
    collect: () => this.collectBackups(),
  });

  readonly backupLastVerified = new Gauge({
    aggregator: 'max',
    name: 'enclave_backup_last_verified_timestamp_seconds',
    help: 'Unix time of the last backup that passed enclave backup verify; 0 = never.',
    registers: [this.registry],
    collect: () => this.collectBackups(),
  });

  /** Lets the gauges above read the backup records at scrape time (wired in server/main.ts). */
  trackBackups(source: () => { lastSuccess?: { at: number }; lastVerified?: { at: number } }): void {
    this.backupSource = source;
  }

  private collectBackups(): void {
    let r: { lastSuccess?: { at: number }; lastVerified?: { at: number } } = {};
    try {
      r = this.backupSource?.() ?? {};
    } catch {
      /* database closed during shutdown */
    }
    this.backupLastSuccess.set(r.lastSuccess ? r.lastSuccess.at / 1000 : 0);
    this.backupLastVerified.set(r.lastVerified ? r.lastVerified.at / 1000 : 0);
  }

  // ---- Licence (issue 9): read from services.license.metrics() at scrape time (trackLicense).

  private licenseSource: (() => LicenseMetricsSource) | undefined;

  readonly licenseExpiry = new Gauge({
    aggregator: 'max',
    name: 'enclave_license_expiry_timestamp_seconds',
    help: 'Unix time the installed licence expires; 0 = no licence installed (community edition).',
    registers: [this.registry],
    collect: () => this.collectLicense(),
  });

  readonly licenseState = new Gauge({
    aggregator: 'max',
    name: 'enclave_license_state',
    help: 'Licence state, one series per state: 1 for the current one, 0 for the others (unlicensed, valid, expiring, grace, lapsed, invalid).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly licenseSeatsUsed = new Gauge({
    aggregator: 'max',
    name: 'enclave_license_seats_used',
    help: 'Seats in use as the licence counts them (active users).',
    registers: [this.registry],
  });

  readonly licenseSeatsLimit = new Gauge({
    aggregator: 'max',
    name: 'enclave_license_seats_limit',
    help: 'Seats the licence allows; 0 = unlimited.',
    registers: [this.registry],
  });

  /** Lets the licence gauges read services.license.metrics() at scrape time (wired in server/app.ts). */
  trackLicense(source: () => LicenseMetricsSource): void {
    this.licenseSource = source;
  }

  private collectLicense(): void {
    let m: LicenseMetricsSource | undefined;
    try {
      m = this.licenseSource?.();
    } catch {
      /* database closed during shutdown: keep the last values */
      return;
    }
    if (!m) return;
    this.licenseExpiry.set(m.expiryTimestampSeconds ?? 0);
    for (const s of LICENSE_STATES) this.licenseState.labels(s).set(s === m.state ? 1 : 0);
    this.licenseSeatsUsed.set(m.seatsUsed);
    this.licenseSeatsLimit.set(m.seatsLimit ?? 0);
  }

  // ---- Authentication failures (issue 9): 401/403/429 answers with an auth_* code, counted by
  // server/metrics/auth-failures.ts. `reason` is the closed AUTH_FAILURE_REASONS list.

  readonly authFailures = new Counter({
    name: 'enclave_auth_failures_total',
    help: 'Requests refused by authentication, by reason code (auth_key_invalid, auth_session_expired, … or other).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.buildInfo.labels(APP_VERSION, process.versions.node).set(1);
    initKnownSeries(this);
  }

  observeHttp(route: string, method: string, status: number, seconds: number): void {
    child(this.httpRequests, route, method, statusClass(status)).inc();
    child(this.httpDuration, route, method).observe(seconds);
  }
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
