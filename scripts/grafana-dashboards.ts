/**
 * Generates the provisioned Grafana dashboards (grafana/dashboards/*.json) from the panel
 * lists below, so every dashboard has the same shape: fixed uid, the fixed datasource uid
 * "prometheus" on every panel and query (no __inputs / ${DS_…} placeholders), counters as
 * rate() over $__rate_interval, histograms as p50/p95/p99.
 *   node --import tsx scripts/grafana-dashboards.ts          # check (exit 1 when stale)
 *   node --import tsx scripts/grafana-dashboards.ts --write  # regenerate
 * test/unit/metrics-dashboards.test.ts fails when the files differ from this output;
 * test/integration/observability-prometheus.test.ts runs every query against Prometheus.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DS = { type: 'prometheus', uid: 'prometheus' } as const;
const R = '$__rate_interval';

export interface PanelSpec {
  title: string;
  type?: 'timeseries' | 'stat' | 'table';
  unit?: string;
  description?: string;
  /** Core panels must return data after the scripted workload (observability test). */
  core?: boolean;
  w?: number;
  h?: number;
  targets: { expr: string; legend?: string; instant?: boolean }[];
}
export interface DashboardSpec {
  uid: string;
  title: string;
  file: string;
  description: string;
  rows: { title: string; panels: PanelSpec[] }[];
}

const q = (p: number, metric: string, by = '', filter = ''): string =>
  `histogram_quantile(${p}, sum by (le${by ? ', ' + by : ''}) (rate(${metric}_bucket${filter}[${R}])))`;
const quantiles = (metric: string, by = '', filter = '', legendPrefix = ''): PanelSpec['targets'] =>
  [0.5, 0.95, 0.99].map((p) => ({ expr: q(p, metric, by, filter), legend: `${legendPrefix}p${Math.round(p * 100)}` }));

const SERVER_ERRORS = 'provider_error|server_error|unavailable_error';
const CALLER_REFUSALS = 'authentication_error|permission_error|policy_error|rate_limit_error|quota_error';

export const DASHBOARDS: DashboardSpec[] = [
  {
    uid: 'enclave-overview',
    title: 'Enclave / Overview',
    file: 'overview.json',
    description: 'Traffic, errors, latency, Enclave overhead, tokens and cost across the appliance.',
    rows: [
      {
        title: 'AI gateway',
        panels: [
          { title: 'AI calls per second', type: 'stat', unit: 'reqps', core: true, w: 6, h: 4, targets: [{ expr: `sum(rate(enclave_gateway_requests_total[${R}]))` }] },
          {
            title: 'Server/provider error ratio',
            type: 'stat',
            unit: 'percentunit',
            w: 6,
            h: 4,
            targets: [{ expr: `sum(rate(enclave_gateway_requests_total{outcome=~"${SERVER_ERRORS}"}[${R}])) / clamp_min(sum(rate(enclave_gateway_requests_total[${R}])), 1e-9)` }],
          },
          { title: 'AI calls in flight', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'sum(enclave_gateway_inflight_requests)' }] },
          { title: 'Targets up', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'up{job=~"enclave-.*"}', legend: '{{job}}' }] },
          { title: 'AI calls by outcome', unit: 'reqps', core: true, targets: [{ expr: `sum by (outcome) (rate(enclave_gateway_requests_total[${R}]))`, legend: '{{outcome}}' }] },
          { title: 'AI calls by deployment', unit: 'reqps', core: true, targets: [{ expr: `sum by (deployment, endpoint) (rate(enclave_gateway_requests_total[${R}]))`, legend: '{{deployment}} {{endpoint}}' }] },
          { title: 'AI call duration (p50/p95/p99)', unit: 's', core: true, targets: quantiles('enclave_gateway_request_duration_seconds') },
          { title: 'Enclave overhead per AI call (p50/p95/p99)', unit: 's', core: true, description: 'Total time minus time waiting for the upstream: auth, policy, limits, metering. Target p99 ≤ 2 ms.', targets: quantiles('enclave_gateway_overhead_seconds') },
          { title: 'Tokens per second by deployment and type', unit: 'short', core: true, targets: [{ expr: `sum by (deployment, type) (rate(enclave_gateway_tokens_total[${R}]))`, legend: '{{deployment}} {{type}}' }] },
          { title: 'Tokens in the selected range by deployment', type: 'table', unit: 'short', core: true, targets: [{ expr: 'sum by (deployment, type) (increase(enclave_gateway_tokens_total[$__range]))', legend: '{{deployment}} {{type}}', instant: true }] },
        ],
      },
      {
        // Issue 25: the stage view without a tracing backend (server/traces records the stages of every call).
        title: 'Latency breakdown by pipeline stage',
        panels: [
          {
            title: 'Mean time per AI call by stage',
            unit: 's',
            description: 'plan: policy, classification, content rules, candidates; admission: limits and quotas; upstream: admission to the first byte of the answer (retries and fallbacks included); relay: first byte to the end of the answer. Per call: the request explorer (Admin → Calls).',
            targets: [{ expr: `sum by (stage) (rate(enclave_gateway_stage_duration_seconds_sum[${R}])) / sum by (stage) (clamp_min(rate(enclave_gateway_stage_duration_seconds_count[${R}]), 1e-9))`, legend: '{{stage}}' }],
          },
          { title: 'p99 per stage', unit: 's', targets: [{ expr: q(0.99, 'enclave_gateway_stage_duration_seconds', 'stage'), legend: '{{stage}} p99' }] },
          { title: 'p50 per stage', unit: 's', targets: [{ expr: q(0.5, 'enclave_gateway_stage_duration_seconds', 'stage'), legend: '{{stage}} p50' }] },
        ],
      },
      {
        title: 'Cost',
        panels: [
          {
            title: 'Cost per hour by tenant',
            unit: 'currencyUSD',
            core: true,
            description: 'Priced usage (enclave_gateway_cost_micros_total, micro-units of the price currency) at the current rate, per hour.',
            targets: [{ expr: `sum by (tenant) (rate(enclave_gateway_cost_micros_total[${R}])) * 3600 / 1e6`, legend: '{{tenant}}' }],
          },
          {
            title: 'Cost per hour by provider and model',
            unit: 'currencyUSD',
            core: true,
            targets: [{ expr: `sum by (provider, model) (rate(enclave_gateway_cost_micros_total[${R}])) * 3600 / 1e6`, legend: '{{provider}} {{model}}' }],
          },
          {
            title: 'Cost in the selected range by tenant, model and provider',
            type: 'table',
            unit: 'currencyUSD',
            core: true,
            w: 24,
            description: 'Currency units of the price list (bundled prices: USD); unpriced and local models show 0.',
            targets: [{ expr: 'sum by (tenant, model, provider) (increase(enclave_gateway_cost_micros_total[$__range])) / 1e6', legend: '{{tenant}} {{model}} {{provider}}', instant: true }],
          },
        ],
      },
      {
        title: 'HTTP and processes',
        panels: [
          { title: 'HTTP requests by status class', unit: 'reqps', core: true, targets: [{ expr: `sum by (status_class) (rate(enclave_http_requests_total[${R}]))`, legend: '{{status_class}}' }] },
          { title: 'HTTP p99 by route', unit: 's', core: true, targets: [{ expr: q(0.99, 'enclave_http_request_duration_seconds', 'route'), legend: '{{route}}' }] },
          { title: 'Resident memory', unit: 'bytes', core: true, targets: [{ expr: 'process_resident_memory_bytes{job=~"enclave-.*"}', legend: '{{job}}' }] },
          { title: 'CPU', unit: 'percentunit', core: true, targets: [{ expr: `rate(process_cpu_seconds_total{job=~"enclave-.*"}[${R}])`, legend: '{{job}}' }] },
          { title: 'Event loop lag p99', unit: 's', core: true, targets: [{ expr: 'nodejs_eventloop_lag_p99_seconds{job=~"enclave-.*"}', legend: '{{job}}' }] },
          { title: 'Version', type: 'table', core: true, targets: [{ expr: 'enclave_build_info', legend: '{{job}} {{version}}', instant: true }] },
        ],
      },
    ],
  },
  {
    uid: 'enclave-providers',
    title: 'Enclave / Providers',
    file: 'providers.json',
    description: 'Provider deployments: health (provider up, circuit breakers), attempts and retries, fallbacks, upstream latency and time to first token.',
    rows: [
      {
        title: 'Health',
        panels: [
          { title: 'Provider up (0 = circuit breaker open)', unit: 'short', core: true, targets: [{ expr: 'min by (deployment) (enclave_provider_up)', legend: '{{deployment}}' }] },
          { title: 'Circuit breaker state (0 closed, 1 half-open, 2 open)', unit: 'short', core: true, targets: [{ expr: 'max by (deployment) (enclave_gateway_breaker_state)', legend: '{{deployment}}' }] },
          { title: 'Upstream attempts by result', unit: 'reqps', core: true, targets: [{ expr: `sum by (deployment, result) (rate(enclave_gateway_upstream_attempts_total[${R}]))`, legend: '{{deployment}} {{result}}' }] },
          { title: 'Failed upstream attempts (retried or final)', unit: 'reqps', targets: [{ expr: `sum by (deployment, result) (rate(enclave_gateway_upstream_attempts_total{result!="ok"}[${R}]))`, legend: '{{deployment}} {{result}}' }] },
          { title: 'Fallbacks to the next candidate', unit: 'reqps', core: true, targets: [{ expr: `sum by (endpoint) (rate(enclave_gateway_fallbacks_total[${R}]))`, legend: '{{endpoint}}' }] },
          { title: 'AI call errors by type', unit: 'reqps', targets: [{ expr: `sum by (outcome) (rate(enclave_gateway_requests_total{outcome!="ok"}[${R}]))`, legend: '{{outcome}}' }] },
          { title: 'AI calls by data boundary', unit: 'reqps', core: true, targets: [{ expr: `sum by (boundary) (rate(enclave_gateway_requests_total[${R}]))`, legend: '{{boundary}}' }] },
        ],
      },
      {
        title: 'Latency',
        panels: [
          { title: 'Upstream time (p50/p95/p99)', unit: 's', core: true, description: 'Time spent waiting for the deployments per call, retries included.', targets: quantiles('enclave_gateway_upstream_duration_seconds') },
          { title: 'Upstream time p99 by deployment', unit: 's', core: true, targets: [{ expr: q(0.99, 'enclave_gateway_upstream_duration_seconds', 'deployment'), legend: '{{deployment}}' }] },
          { title: 'AI call duration p95 by deployment', unit: 's', core: true, targets: [{ expr: q(0.95, 'enclave_gateway_request_duration_seconds', 'deployment', '{deployment!="none"}'), legend: '{{deployment}}' }] },
          { title: 'Time to first token (p50/p95/p99)', unit: 's', core: true, targets: quantiles('enclave_gateway_time_to_first_token_seconds') },
          { title: 'Time to first token p95 by deployment', unit: 's', core: true, targets: [{ expr: q(0.95, 'enclave_gateway_time_to_first_token_seconds', 'deployment'), legend: '{{deployment}}' }] },
        ],
      },
      {
        title: 'Response cache',
        panels: [
          {
            title: 'Response cache hit ratio',
            unit: 'percentunit',
            description: 'Hits over hits and misses (bypassed calls not counted), all tenants; per tenant: the Usage page or GET /admin/api/tenants/:id/response-cache (docs/cache.md).',
            targets: [{ expr: `sum(rate(enclave_gateway_cache_lookups_total{result="hit"}[${R}])) / sum(rate(enclave_gateway_cache_lookups_total{result=~"hit|miss"}[${R}]))`, legend: 'hit ratio' }],
          },
          {
            title: 'Response cache lookups, bytes and evictions',
            unit: 'short',
            description: 'Lookups by result (error = Redis unavailable, answered as a miss), encrypted bytes stored and served, evictions to keep a tenant under its size cap; per second.',
            targets: [
              { expr: `sum by (result) (rate(enclave_gateway_cache_lookups_total[${R}]))`, legend: '{{result}}' },
              { expr: `sum by (direction) (rate(enclave_gateway_cache_bytes_total[${R}]))`, legend: 'bytes {{direction}}' },
              { expr: `sum(rate(enclave_gateway_cache_evictions_total[${R}]))`, legend: 'evictions' },
            ],
          },
        ],
      },
    ],
  },
  {
    uid: 'enclave-tenants',
    title: 'Enclave / Tenants and quotas',
    file: 'tenants-quotas.json',
    description: 'Admission: rate limits and quotas by level and limit, soft-limit alerts, monthly quota used per tenant, the rate limiter store, licensed seats.',
    rows: [
      {
        title: 'Admission',
        panels: [
          { title: 'Refusals by level and limit', unit: 'reqps', core: true, targets: [{ expr: `sum by (level, limit) (rate(enclave_quota_refusals_total[${R}]))`, legend: '{{level}} {{limit}}' }] },
          { title: 'Admissions by counter store', unit: 'reqps', core: true, targets: [{ expr: `sum by (store) (rate(enclave_ratelimit_admissions_total[${R}]))`, legend: '{{store}}' }] },
          { title: 'Rate limiter degraded (no Redis)', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'max(enclave_ratelimit_degraded)' }] },
          { title: 'Redis unavailable at admission', unit: 'reqps', core: true, w: 18, targets: [{ expr: `sum by (outcome) (rate(enclave_ratelimit_redis_unavailable_total[${R}]))`, legend: '{{outcome}}' }] },
          { title: 'Soft-limit alerts raised in the range', type: 'table', unit: 'short', core: true, targets: [{ expr: 'sum by (limit, threshold) (increase(enclave_quota_alerts_total[$__range]))', legend: '{{limit}} {{threshold}}%', instant: true }] },
          { title: 'Refused AI calls by error type', unit: 'reqps', targets: [{ expr: `sum by (outcome) (rate(enclave_gateway_requests_total{outcome=~"rate_limit_error|quota_error"}[${R}]))`, legend: '{{outcome}}' }] },
        ],
      },
      {
        title: 'Monthly quotas',
        panels: [
          { title: 'Monthly quota used by tenant', unit: 'percentunit', core: true, description: 'Usage this month over the tenant plan limit (only limits the plan sets); 1 = used up.', targets: [{ expr: 'max by (tenant, limit) (enclave_quota_used_ratio)', legend: '{{tenant}} {{limit}}' }] },
          { title: 'Tenants at 80 % or more of a monthly limit', type: 'table', unit: 'percentunit', targets: [{ expr: 'max by (tenant, limit) (enclave_quota_used_ratio) >= 0.8', legend: '{{tenant}} {{limit}}', instant: true }] },
        ],
      },
      {
        title: 'Seats',
        panels: [
          { title: 'Seats used and licensed', unit: 'short', core: true, targets: [{ expr: 'max(enclave_license_seats_used)', legend: 'used' }, { expr: 'max(enclave_license_seats_limit > 0)', legend: 'limit' }] },
        ],
      },
    ],
  },
  {
    uid: 'enclave-queues',
    title: 'Enclave / Queues and jobs',
    file: 'queues-jobs.json',
    description: 'BullMQ lanes: depth, oldest waiting job, wait and run time, outcomes, worker liveness, backups.',
    rows: [
      {
        title: 'Workers',
        panels: [
          { title: 'Seconds since the newest worker heartbeat', type: 'stat', unit: 's', core: true, w: 6, h: 4, targets: [{ expr: 'time() - max(enclave_worker_heartbeat_timestamp_seconds)' }] },
          { title: 'Workers alive', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'max(enclave_workers)' }] },
          { title: 'Queue metrics readable', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'max(enclave_queue_up)' }] },
          { title: 'Worker scrape up', type: 'stat', unit: 'short', core: true, w: 6, h: 4, targets: [{ expr: 'up{job="enclave-worker"}', legend: '{{instance}}' }] },
        ],
      },
      {
        title: 'Queues',
        panels: [
          { title: 'Depth by queue and state', unit: 'short', core: true, targets: [{ expr: 'sum by (queue, state) (enclave_queue_jobs{state!="completed"})', legend: '{{queue}} {{state}}' }] },
          { title: 'Oldest waiting job age', unit: 's', core: true, targets: [{ expr: 'max by (queue) (enclave_queue_oldest_job_age_seconds)', legend: '{{queue}}' }] },
          { title: 'Job outcomes', unit: 'ops', core: true, targets: [{ expr: `sum by (queue, outcome) (rate(enclave_jobs_total[${R}]))`, legend: '{{queue}} {{outcome}}' }] },
          { title: 'Queue wait p95', unit: 's', targets: [{ expr: q(0.95, 'enclave_queue_wait_seconds', 'queue'), legend: '{{queue}}' }] },
          { title: 'Job run time p95 by job', unit: 's', targets: [{ expr: q(0.95, 'enclave_job_duration_seconds', 'queue, name'), legend: '{{queue}} {{name}}' }] },
        ],
      },
      {
        title: 'Backups',
        panels: [
          { title: 'Hours since the last successful backup', type: 'stat', unit: 'h', core: true, w: 12, h: 4, targets: [{ expr: '(time() - max(enclave_backup_last_success_timestamp_seconds)) / 3600' }] },
          { title: 'Hours since the last verified backup', type: 'stat', unit: 'h', core: true, w: 12, h: 4, targets: [{ expr: '(time() - max(enclave_backup_last_verified_timestamp_seconds)) / 3600' }] },
        ],
      },
    ],
  },
  {
    uid: 'enclave-security',
    title: 'Enclave / Security',
    file: 'security.json',
    description: 'Authentication failures, sign-ins, active sessions, audit log rate, data-boundary policy decisions and content-rule hits.',
    rows: [
      {
        title: 'Authentication',
        panels: [
          { title: 'Authentication failures by reason', unit: 'reqps', core: true, targets: [{ expr: `sum by (reason) (rate(enclave_auth_failures_total[${R}]))`, legend: '{{reason}}' }] },
          { title: 'Sign-ins by method and outcome', unit: 'ops', core: true, targets: [{ expr: `sum by (method, outcome) (rate(enclave_auth_logins_total[${R}]))`, legend: '{{method}} {{outcome}}' }] },
          { title: 'Local password sign-ins by outcome', unit: 'ops', core: true, targets: [{ expr: `sum by (outcome) (rate(enclave_auth_logins_total{method="local"}[${R}]))`, legend: '{{outcome}}' }] },
          { title: 'Active web sessions', type: 'stat', unit: 'short', core: true, targets: [{ expr: 'max(enclave_sessions_active)' }] },
          { title: 'Refused AI calls (auth, permission, policy, limits)', unit: 'reqps', targets: [{ expr: `sum by (outcome) (rate(enclave_gateway_requests_total{outcome=~"${CALLER_REFUSALS}"}[${R}]))`, legend: '{{outcome}}' }] },
        ],
      },
      {
        title: 'Audit log',
        panels: [
          { title: 'Audit events by category', unit: 'ops', core: true, targets: [{ expr: `sum by (category) (rate(enclave_audit_events_total[${R}]))`, legend: '{{category}}' }] },
          { title: 'Denied actions in the audit log', unit: 'ops', core: true, targets: [{ expr: `sum by (category) (rate(enclave_audit_events_total{outcome="denied"}[${R}]))`, legend: '{{category}}' }] },
        ],
      },
      {
        title: 'Data boundary',
        panels: [
          { title: 'Policy decisions by classification and action', unit: 'reqps', core: true, targets: [{ expr: `sum by (classification, action) (rate(enclave_gateway_policy_decisions_total[${R}]))`, legend: '{{classification}} {{action}}' }] },
          { title: 'Blocked by policy', unit: 'reqps', core: true, targets: [{ expr: `sum by (classification) (rate(enclave_gateway_policy_decisions_total{action="block"}[${R}]))`, legend: '{{classification}}' }] },
          { title: 'Content rule hits by detector', unit: 'ops', core: true, targets: [{ expr: `sum by (detector) (rate(enclave_gateway_content_rule_hits_total[${R}]))`, legend: '{{detector}}' }] },
        ],
      },
    ],
  },
  {
    uid: 'enclave-licence',
    title: 'Enclave / Licence',
    file: 'licence.json',
    description: 'Licence state, expiry and seats.',
    rows: [
      {
        title: 'Licence',
        panels: [
          { title: 'Licence state', type: 'stat', core: true, w: 8, h: 5, targets: [{ expr: 'max by (state) (enclave_license_state) == 1', legend: '{{state}}' }] },
          { title: 'Days until the licence expires', type: 'stat', unit: 'd', w: 8, h: 5, description: 'No value without an installed licence (community edition).', targets: [{ expr: '(min(enclave_license_expiry_timestamp_seconds > 0) - time()) / 86400' }] },
          { title: 'Seats in use', type: 'stat', unit: 'short', core: true, w: 8, h: 5, targets: [{ expr: 'max(enclave_license_seats_used)', legend: 'used' }, { expr: 'max(enclave_license_seats_limit > 0)', legend: 'limit' }] },
          { title: 'Licence state over time', unit: 'short', core: true, targets: [{ expr: 'max by (state) (enclave_license_state)', legend: '{{state}}' }] },
          { title: 'Seat usage ratio', unit: 'percentunit', core: true, description: 'No value when seats are unlimited.', targets: [{ expr: 'max(enclave_license_seats_used) / min(enclave_license_seats_limit > 0)' }] },
        ],
      },
    ],
  },
];

function panelJson(p: PanelSpec, id: number, x: number, y: number, w: number, h: number): object {
  const type = p.type ?? 'timeseries';
  return {
    id,
    type,
    title: p.title,
    ...(p.description ? { description: p.description } : {}),
    datasource: DS,
    gridPos: { x, y, w, h },
    fieldConfig: { defaults: { unit: p.unit ?? 'short', ...(type === 'timeseries' ? { custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never' } } : {}) }, overrides: [] },
    options:
      type === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' }
        : type === 'table'
          ? { showHeader: true }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    ...(type === 'table' ? { transformations: [{ id: 'labelsToFields', options: {} }] } : {}),
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr: t.expr,
      legendFormat: t.legend ?? '__auto',
      range: !t.instant,
      instant: Boolean(t.instant),
      ...(t.instant ? { format: 'table' } : {}),
    })),
  };
}

export function dashboardJson(d: DashboardSpec): object {
  const panels: object[] = [];
  let id = 1;
  let y = 0;
  for (const row of d.rows) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    let x = 0;
    let rowH = 0;
    for (const p of row.panels) {
      const w = p.w ?? 12;
      const h = p.h ?? 8;
      if (x + w > 24) {
        x = 0;
        y += rowH;
        rowH = 0;
      }
      panels.push(panelJson(p, id++, x, y, w, h));
      x += w;
      rowH = Math.max(rowH, h);
    }
    y += rowH;
  }
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ['enclave'],
    editable: false,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    templating: { list: [] },
    annotations: { list: [] },
    links: [{ type: 'dashboards', tags: ['enclave'], asDropdown: true, title: 'Enclave dashboards', includeVars: false, keepTime: true }],
    panels,
  };
}

export const DASHBOARD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'grafana', 'dashboards');
export const render = (d: DashboardSpec): string => JSON.stringify(dashboardJson(d), null, 2) + '\n';

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const write = process.argv.includes('--write');
  let stale = 0;
  for (const d of DASHBOARDS) {
    const file = path.join(DASHBOARD_DIR, d.file);
    const text = render(d);
    let current = '';
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      /* missing */
    }
    if (current === text) continue;
    if (write) writeFileSync(file, text);
    else {
      stale++;
      console.error(`${path.relative(process.cwd(), file)} is out of date; run node --import tsx scripts/grafana-dashboards.ts --write`);
    }
  }
  process.exit(stale ? 1 : 0);
}
