import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LANES } from '../../server/jobs/lanes.js';
import { WorkerMetrics, queueMetricsText } from '../../server/jobs/metrics.js';
import type { JobQueues } from '../../server/jobs/queues.js';
import { instrumentPool } from '../../server/metrics/db-pool.js';
import { auditCategory } from '../../server/metrics/known-series.js';
import { Metrics } from '../../server/metrics/registry.js';
import { parseExposition } from '../helpers/promql.js';

/**
 * docs/metrics.md ⇄ what the processes register, both ways: name, type and label names.
 * Sources: the process registry (server/metrics/registry.ts), the workers' instruments
 * (server/jobs/metrics.ts WorkerMetrics), the PostgreSQL pool's (server/metrics/db-pool.ts,
 * registered only with ENCLAVE_DATABASE_URL) and the queue view the api appends to /metrics.
 */
interface Entry {
  type: string;
  labels: string[];
  help: string;
}

function catalogue(): Map<string, Entry> {
  const text = readFileSync(path.join(process.cwd(), 'docs/metrics.md'), 'utf8');
  const out = new Map<string, Entry>();
  for (const m of text.matchAll(/^\| `(enclave_[a-z0-9_]+)` \| (counter|gauge|histogram|summary) \| ([^|]*) \| ([^|]+) \|$/gm)) {
    expect(out.has(m[1]!), `${m[1]} listed twice`).toBe(false);
    out.set(m[1]!, { type: m[2]!, labels: m[3]!.split(',').map((l) => l.trim()).filter(Boolean).sort(), help: m[4]!.trim() });
  }
  return out;
}

async function registered(): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  type Instrument = { name: string; help: string; labelNames?: readonly string[]; get(): Promise<{ type: unknown }> };
  // A pool that never connects (pg connects lazily): only its instruments are read here.
  const pool = new pg.Pool({ max: 1 });
  const poolRegistry = new Registry();
  instrumentPool(pool, poolRegistry, 1);
  for (const reg of [new Metrics().registry, new WorkerMetrics().registry, poolRegistry]) {
    for (const m of reg.getMetricsAsArray() as unknown as Instrument[]) {
      out.set(m.name, { type: String((await m.get()).type), labels: [...(m.labelNames ?? [])].sort(), help: m.help });
    }
  }
  await pool.end();
  // The api's queue view, from fakes of the queues and Redis (one fresh worker heartbeat).
  const now = Date.now();
  const queues = {
    counts: async () => Object.fromEntries(LANES.map((q) => [q, { waiting: 1 }])),
    oldestWaitingAge: async () => 3,
  } as unknown as JobQueues;
  const redis = {
    hgetall: async () => ({ w1: JSON.stringify({ at: now, metrics: await new WorkerMetrics().snapshot() }) }),
    hdel: async () => 0,
  } as unknown as Redis;
  const { samples, types } = parseExposition(await queueMetricsText(queues, redis, now));
  for (const [name, type] of types) {
    if (out.has(name)) continue;
    const labels = new Set<string>();
    for (const s of samples) if (s.name === name || s.name.startsWith(name + '_')) for (const l of Object.keys(s.labels)) if (l !== 'le') labels.add(l);
    out.set(name, { type, labels: [...labels].sort(), help: '' });
  }
  return out;
}

describe('metrics catalogue (docs/metrics.md)', () => {
  it('lists every registered enclave_ metric with its type and labels, and nothing else', async () => {
    const docs = catalogue();
    const reg = await registered();
    const ours = [...reg.keys()].filter((n) => n.startsWith('enclave_'));
    const missing = ours.filter((n) => !docs.has(n));
    const stale = [...docs.keys()].filter((n) => !reg.has(n));
    expect(missing, 'registered but not in docs/metrics.md').toEqual([]);
    expect(stale, 'in docs/metrics.md but not registered').toEqual([]);
    for (const n of ours) {
      expect(docs.get(n)!.type, `${n} type`).toBe(reg.get(n)!.type);
      expect(docs.get(n)!.labels, `${n} labels`).toEqual(reg.get(n)!.labels);
    }
  });

  it('every metric follows the naming conventions', async () => {
    const reg = await registered();
    const forbidden = /^(user|user_id|email|e_mail|key|key_id|key_prefix|api_key|tenant_id|prompt|content|request_id|session|ip)$/;
    for (const [name, e] of reg) {
      if (!name.startsWith('enclave_')) {
        expect(name, 'only prom-client defaults lack the prefix').toMatch(/^(process_|nodejs_)/);
        continue;
      }
      expect(name).toMatch(/^enclave_[a-z][a-z0-9_]*[a-z0-9]$/);
      if (e.type === 'counter') expect(name, 'counters end in _total').toMatch(/_total$/);
      else expect(name, `${e.type} must not end in _total`).not.toMatch(/_total$/);
      if (e.type === 'histogram') expect(name, 'histograms carry a base unit').toMatch(/_(seconds|bytes|ratio)$/);
      expect(name, 'base units only').not.toMatch(/_(ms|milliseconds|minutes|hours|mb|kb|percent)(_|$)/);
      if (name.endsWith('_timestamp')) throw new Error(`${name}: use _timestamp_seconds`);
      expect(e.labels.length, `${name}: few labels`).toBeLessThanOrEqual(4);
      for (const l of e.labels) expect(l, `${name} label ${l}`).not.toMatch(forbidden);
    }
  });

  it('known series are exported at zero before any event', async () => {
    const m = new Metrics();
    const { samples } = parseExposition(await m.registry.metrics());
    const has = (name: string, labels: Record<string, string>) =>
      samples.some((s) => s.name === name && s.value === 0 && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    expect(has('enclave_auth_failures_total', { reason: 'auth_key_invalid' })).toBe(true);
    expect(has('enclave_auth_failures_total', { reason: 'other' })).toBe(true);
    expect(has('enclave_quota_refusals_total', { level: 'tenant', limit: 'monthly_tokens' })).toBe(true);
    expect(has('enclave_ratelimit_admissions_total', { store: 'memory' })).toBe(true);
    expect(has('enclave_gateway_policy_decisions_total', { classification: 'restricted', action: 'block' })).toBe(true);
    expect(has('enclave_gateway_fallbacks_total', { endpoint: 'chat' })).toBe(true);
    expect(has('enclave_license_state', { state: 'lapsed' })).toBe(true);
    expect(has('enclave_ratelimit_degraded', {})).toBe(true);
    expect(has('enclave_auth_logins_total', { method: 'local', outcome: 'invalid_credentials' })).toBe(true);
    expect(has('enclave_auth_logins_total', { method: 'local', outcome: 'success' })).toBe(true);
    expect(has('enclave_audit_events_total', { category: 'auth', outcome: 'denied' })).toBe(true);
    expect(has('enclave_audit_events_total', { category: 'other', outcome: 'allowed' })).toBe(true);
    expect(has('enclave_sessions_active', {})).toBe(true);
    const w = parseExposition(await new WorkerMetrics().registry.metrics());
    for (const q of LANES) expect(w.samples.some((s) => s.name === 'enclave_jobs_total' && s.labels.queue === q && s.labels.outcome === 'failed')).toBe(true);
  });

  it('licence gauges follow the licence service at scrape time', async () => {
    const m = new Metrics();
    let src = { expiryTimestampSeconds: 1_900_000_000 as number | null, state: 'expiring', seatsUsed: 3, seatsLimit: 5 as number | null };
    m.trackLicense(() => src);
    let { samples } = parseExposition(await m.registry.metrics());
    const v = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, x]) => s.labels[k] === x))?.value;
    expect(v('enclave_license_expiry_timestamp_seconds')).toBe(1_900_000_000);
    expect(v('enclave_license_state', { state: 'expiring' })).toBe(1);
    expect(v('enclave_license_state', { state: 'valid' })).toBe(0);
    expect(samples.filter((s) => s.name === 'enclave_license_state')).toHaveLength(6);
    expect(v('enclave_license_seats_used')).toBe(3);
    expect(v('enclave_license_seats_limit')).toBe(5);
    src = { expiryTimestampSeconds: null, state: 'unlicensed', seatsUsed: 1, seatsLimit: null };
    ({ samples } = parseExposition(await m.registry.metrics()));
    expect(v('enclave_license_expiry_timestamp_seconds')).toBe(0);
    expect(v('enclave_license_state', { state: 'unlicensed' })).toBe(1);
    expect(v('enclave_license_state', { state: 'expiring' })).toBe(0);
    expect(v('enclave_license_seats_limit')).toBe(0);
    m.trackLicense(() => {
      throw new Error('database closed');
    });
    await expect(m.registry.metrics()).resolves.toContain('enclave_license_state');
  });

  it('breaker changes drive breaker state and provider up; a deleted deployment leaves no series', async () => {
    const m = new Metrics();
    const series = async (name: string) => parseExposition(await m.registry.metrics()).samples.filter((s) => s.name === name);
    m.breakerChanged('dep-a', 'closed');
    m.breakerChanged('dep-b', 'closed');
    m.breakerChanged('dep-b', 'open');
    expect((await series('enclave_provider_up')).map((s) => `${s.labels.deployment}=${s.value}`).sort()).toEqual(['dep-a=1', 'dep-b=0']);
    expect((await series('enclave_gateway_breaker_state')).map((s) => `${s.labels.deployment}=${s.value}`).sort()).toEqual(['dep-a=0', 'dep-b=2']);
    m.breakerChanged('dep-b', 'half_open');
    expect((await series('enclave_provider_up')).find((s) => s.labels.deployment === 'dep-b')?.value).toBe(1);
    m.breakerChanged('dep-b', null);
    expect((await series('enclave_provider_up')).map((s) => s.labels.deployment)).toEqual(['dep-a']);
    expect((await series('enclave_gateway_breaker_state')).map((s) => s.labels.deployment)).toEqual(['dep-a']);
  });

  it('quota ratios and active sessions are read at scrape time; a failing source keeps the scrape working', async () => {
    const m = new Metrics();
    let rows = [
      { tenant: 'acme', limit: 'monthly_tokens' as const, ratio: 0.95 },
      { tenant: 'acme', limit: 'monthly_cost_micros' as const, ratio: 0.1 },
    ];
    let sessions = 3;
    m.trackQuotas(() => rows);
    m.trackSessions(() => sessions);
    let { samples } = parseExposition(await m.registry.metrics());
    expect(samples.filter((s) => s.name === 'enclave_quota_used_ratio').map((s) => `${s.labels.tenant}/${s.labels.limit}=${s.value}`).sort()).toEqual([
      'acme/monthly_cost_micros=0.1',
      'acme/monthly_tokens=0.95',
    ]);
    expect(samples.find((s) => s.name === 'enclave_sessions_active')?.value).toBe(3);
    rows = [{ tenant: 'beta', limit: 'monthly_tokens', ratio: 0.5 }]; // acme's plan lost its limits: its series go
    sessions = 0;
    ({ samples } = parseExposition(await m.registry.metrics()));
    expect(samples.filter((s) => s.name === 'enclave_quota_used_ratio').map((s) => s.labels.tenant)).toEqual(['beta']);
    expect(samples.find((s) => s.name === 'enclave_sessions_active')?.value).toBe(0);
    m.trackQuotas(() => {
      throw new Error('database closed');
    });
    m.trackSessions(() => {
      throw new Error('database closed');
    });
    await expect(m.registry.metrics()).resolves.toContain('enclave_quota_used_ratio{tenant="beta"');
  });

  it('audit categories are a closed list', () => {
    expect(auditCategory('auth.login')).toBe('auth');
    expect(auditCategory('sso.idp.create')).toBe('sso');
    expect(auditCategory('models:invoke')).toBe('access');
    expect(auditCategory('jobs.retry')).toBe('jobs');
    expect(auditCategory('something.new')).toBe('other');
    expect(auditCategory('')).toBe('other');
  });
});
