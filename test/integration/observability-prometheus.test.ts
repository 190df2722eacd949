import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { familyOf, metricNames, parseExposition, RULES_DIR, shippedQueries } from '../helpers/promql.js';
import { waitFor } from '../helpers/wait.js';
import { observedStack, scrape, startPrometheus, workload, type ObservedStack, type PromServer } from './observability-env.js';

/**
 * The shipped dashboards and alert rules against what the processes really export: names
 * looked up in real scrapes of the api and the worker after a scripted workload, and every
 * query run by a real Prometheus scraping both on 127.0.0.1.
 */
let stack: ObservedStack;
let prom: PromServer;
const CORE = new Set<string>();

beforeAll(async () => {
  stack = await observedStack();
  await workload(stack);
  prom = await startPrometheus(
    { 'enclave-api': new URL(stack.env.app.url).host, 'enclave-worker': new URL(stack.worker.url).host },
    readdirSync(RULES_DIR).map((f) => path.join(RULES_DIR, f)),
  );
  // Traffic while Prometheus picks the targets up (its discovery hands them over after ~5 s)
  // and then scrapes them a few times, so rates have samples to work with.
  let upSince = 0;
  await waitFor(
    async () => {
      await workload(stack);
      if (!upSince && ((await prom.query('up == 1')).data?.result.length ?? 0) === 2) upSince = Date.now();
      return upSince;
    },
    { until: (since) => since > 0 && Date.now() - since > 3000, interval: 0, timeout: 30_000, what: 'Prometheus scraping both targets for 3 s' },
  );
  // Job histograms reach the api's /metrics from the worker through Redis with its heartbeat
  // (every 5 s) once a job has run. Not left to the schedules: a scheduler that already exists
  // in Redis keeps its next run (up to an hour away), so waiting for "the first scheduled job"
  // passed or failed by when the run started. One job of our own runs now.
  await stack.env.app.services.jobs.queues.add('maintenance', 'session-cleanup', {});
  const jobSamples = (text: string) => text.split('\n').filter((l) => /^enclave_(job_duration|queue_wait)_seconds_count/.test(l));
  await waitFor(async () => jobSamples(await scrape(stack.env.app.url)), {
    until: (lines) => lines.some((l) => l.startsWith('enclave_job_duration_seconds_count{') && l.includes('name="session-cleanup"')),
    timeout: 25_000,
    what: 'job metrics from the worker in the api’s /metrics',
  });
  const { DASHBOARDS } = await import('../../scripts/grafana-dashboards.js');
  for (const d of DASHBOARDS) for (const r of d.rows) for (const p of r.panels) if (p.core) CORE.add(`${d.file}: ${p.title}`);
}, 90_000);
afterAll(async () => {
  await prom?.close();
  await stack?.close();
});

const grafanaVars = (expr: string) => expr.replaceAll('$__rate_interval', '15s').replaceAll('$__range', '5m').replaceAll('$__interval', '2s');

describe('dashboards and alert rules against real scrapes', () => {
  it('every metric a dashboard panel or alert rule names has samples in a scrape of the api or the worker', async () => {
    const api = parseExposition(await scrape(stack.env.app.url));
    const wrk = parseExposition(await scrape(stack.worker.url));
    // Both endpoints are real: the worker serves its own process, not the api's.
    expect(wrk.samples.some((s) => s.name === 'process_resident_memory_bytes')).toBe(true);
    expect(wrk.samples.some((s) => s.name === 'enclave_http_requests_total')).toBe(false);
    const families = new Set([...api.types.keys(), ...wrk.types.keys()]);
    const sampled = new Set([...api.samples, ...wrk.samples].map((s) => familyOf(s.name, families)));
    const missing: string[] = [];
    for (const { where, expr } of shippedQueries()) {
      // The PostgreSQL pool's metrics exist only with ENCLAVE_DATABASE_URL (this stack runs on
      // SQLite); metrics-catalogue.test.ts checks their names and types, postgres-replicas.test.ts their values.
      for (const n of metricNames(expr)) if (n !== 'up' && !n.startsWith('enclave_db_pool_') && !sampled.has(familyOf(n, families))) missing.push(`${where}: ${n}`);
    }
    expect(missing).toEqual([]);
  });

  it('Prometheus scrapes both targets', async () => {
    const r = await prom.query('up');
    const up = (r.data!.result as { metric: { job: string }; value: [number, string] }[]).map((x) => `${x.metric.job}=${x.value[1]}`).sort();
    expect(up).toEqual(['enclave-api=1', 'enclave-worker=1']);
  });

  it('every dashboard query runs without error, and the core panels return data', async () => {
    const failures: string[] = [];
    const empty: string[] = [];
    const dash = shippedQueries().filter((q) => q.file.endsWith('.json'));
    for (const q of dash) {
      const r = await prom.query(grafanaVars(q.expr));
      if (r.status !== 'success') failures.push(`${q.where}: ${r.error}`);
      else if (CORE.has(q.where) && r.data!.result.length === 0) empty.push(`${q.where}: ${q.expr}`);
    }
    expect(failures).toEqual([]);
    expect(empty).toEqual([]);
    expect(CORE.size).toBeGreaterThan(30);
  });

  it('gateway traffic is visible through Prometheus: calls, tokens, latency, upstream retries, policy blocks, auth failures', async () => {
    const value = async (expr: string) => Number(((await prom.query(expr)).data!.result[0] as { value: [number, string] } | undefined)?.value[1] ?? NaN);
    expect(await value('sum(enclave_gateway_requests_total{outcome="ok"})')).toBeGreaterThan(8);
    expect(await value('sum(enclave_gateway_tokens_total)')).toBeGreaterThan(0);
    expect(await value('sum(enclave_gateway_upstream_attempts_total{result!="ok"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_gateway_requests_total{outcome="policy_error"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_auth_failures_total{reason=~"auth_key_.*"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_auth_failures_total{reason="auth_required"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_auth_failures_total{reason="auth_invalid_credentials"})')).toBeGreaterThan(0);
    expect(await value('max(enclave_workers)')).toBeGreaterThanOrEqual(1);
    expect(await value('max(enclave_license_state{state="unlicensed"})')).toBe(1);
  });

  it('cost, upstream time, provider up, quota ratio, local sign-ins, sessions and audit events are visible through Prometheus', async () => {
    const value = async (expr: string) => Number(((await prom.query(expr)).data!.result[0] as { value: [number, string] } | undefined)?.value[1] ?? NaN);
    const tenant = stack.env.tenant.tenant.slug;
    // gpt-fake has a price (observability-env.ts), the local model none: both are counted, only one costs.
    expect(await value(`sum(enclave_gateway_cost_micros_total{tenant="${tenant}", model="gpt-fake", provider="openai"})`)).toBeGreaterThan(0);
    expect(await value(`sum(enclave_gateway_cost_micros_total{tenant="${tenant}", provider="ollama"})`)).toBe(0);
    expect(await value('sum(enclave_gateway_upstream_duration_seconds_count{deployment="cloud-1", endpoint="chat"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_gateway_upstream_duration_seconds_count{endpoint="embeddings"})')).toBeGreaterThan(0);
    expect(await value('min(enclave_provider_up{deployment="down-1"})')).toBe(0);
    expect(await value('min(enclave_provider_up{deployment="ollama-1"})')).toBe(1);
    expect(await value('max(enclave_gateway_breaker_state{deployment="cloud-1"})')).toBe(0);
    const tokens = await value(`max(enclave_quota_used_ratio{tenant="${tenant}", limit="monthly_tokens"})`);
    expect(tokens).toBeGreaterThan(0);
    expect(tokens).toBeLessThan(0.9);
    expect(await value(`max(enclave_quota_used_ratio{tenant="${tenant}", limit="monthly_cost_micros"})`)).toBeGreaterThan(0);
    expect(await value('sum(enclave_auth_logins_total{method="local", outcome="success"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_auth_logins_total{method="local", outcome="invalid_credentials"})')).toBeGreaterThan(0);
    expect(await value('max(max_over_time(enclave_sessions_active[1m]))')).toBeGreaterThanOrEqual(1);
    expect(await value('sum(enclave_audit_events_total{category="auth", outcome="denied"})')).toBeGreaterThan(0);
    expect(await value('sum(enclave_audit_events_total{category="auth", outcome="allowed"})')).toBeGreaterThan(0);
  });

  it('every alert rule evaluates without error', async () => {
    const rules = await waitFor(
      async () => {
        const r = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } };
        return r.data.groups.flatMap((g) => g.rules);
      },
      { until: (rs) => rs.length > 0 && rs.every((x) => x.health !== 'unknown'), interval: 250, what: 'every alert rule evaluated once' },
    );
    expect(rules.filter((x) => x.health === 'err').map((x) => `${x.name}: ${x.lastError}`)).toEqual([]);
    expect(rules.length).toBeGreaterThan(20);
  });
});
