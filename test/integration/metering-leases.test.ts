import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import type { Limits } from '../../server/metering/limits.js';
import { testConfig } from '../helpers/app.js';
import { sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Leases (server/metering/leases.ts, issue 23): far from every limit a process spends a leased
 * share of each level's allowance without Redis on the call's path and settles in bulk; near a
 * limit every call is admitted exactly in Redis. Checked through /v1 against the real
 * redis-server, counting Redis's own counters, the lease holds and the admission metric.
 * The multi-process guarantees are in metering-leases-processes.test.ts.
 */
const clock = { t: Date.UTC(2025, 5, 15, 12), now(): number { return this.t; } };
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv({ clock, entitlements: unrestricted });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
});
afterAll(async () => env?.close());

const s = () => env.app.services;
async function plan(limits: Limits, name: string): Promise<void> {
  await s().metering.plans.upsert(sys(s()), { name, limits });
  await s().metering.plans.assign(sys(s()), env.tenant.tenant.id, name);
}
/** A fresh month and full buckets for each test (the clock moves; Redis keys are per month). */
function nextMonth(): void {
  const d = new Date(clock.t);
  clock.t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 15, 12);
}
async function chat(): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(`${env.app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
  });
  return { status: r.status, body: await r.json(), headers: r.headers };
}
async function admissions(store: string): Promise<number> {
  return (await s().metrics.ratelimitAdmissions.get()).values.find((v) => v.labels.store === store)?.value ?? 0;
}
const keyBase = () => `enc:m:${env.tenant.tenant.id}:tenant:${env.tenant.tenant.id}`;
/** This month's token counter (the tenant's time zone is UTC here; keys are per month). */
const monthTokensKey = async () => {
  const keys = await s().redis.keys(`${keyBase()}:${new Date(clock.t).toISOString().slice(0, 7)}@*:tok`);
  expect(keys).toHaveLength(1);
  return keys[0]!;
};

/** Holds recorded in Redis for this month's token counter (process → held tokens). */
async function holds(): Promise<number> {
  const h = await s().redis.hgetall(`${await monthTokensKey()}:h`);
  return Object.values(h).reduce((t, v) => t + Number(v.split(':')[0]), 0);
}

describe('leases', () => {
  it('far from every limit, calls after the first are served from a lease; Redis holds usage + lease, and settles to the exact usage', async () => {
    nextMonth();
    await plan({ requests_per_minute: 100_000, tokens_per_minute: 10_000_000, concurrent_requests: 1000, monthly_tokens: 100_000_000 }, 'roomy');
    const [waited0, leased0] = [await admissions('redis'), await admissions('lease')];
    expect((await chat()).status).toBe(200); // exact: fetches the counters, asks for a lease
    await waitFor(() => s().metering.admission.activeLeases, { until: (n) => n >= 1, what: 'a lease granted' });
    const n = 25;
    for (let i = 0; i < n; i++) expect((await chat()).status).toBe(200);
    expect((await admissions('redis')) - waited0).toBe(1);
    expect((await admissions('lease')) - leased0).toBe(n);
    // No double charge, nothing lost: once synced, the month's counter less the lease holds is
    // exactly the usage records' tokens; the minute's bucket and the slots reflect the lease.
    // This month's records only (the clock moved here in nextMonth): other tests' calls, in any order, are in earlier months.
    const monthStart = Date.UTC(new Date(clock.t).getUTCFullYear(), new Date(clock.t).getUTCMonth(), 1);
    const thisMonth = async () => (await env.usage()).filter((u) => u.createdAt >= monthStart);
    await waitFor(async () => (await thisMonth()).length, { until: (k) => k >= n + 1, what: `${n + 1} usage records` });
    const used = (await thisMonth()).reduce((t, u) => t + (u.promptTokens + u.completionTokens), 0);
    await expect.poll(async () => Number(await s().redis.get(await monthTokensKey())) - (await holds())).toBe(used);
    expect(await holds()).toBeGreaterThan(0);
    expect(await s().redis.zcard(`${keyBase()}:conc`)).toBe(0); // no per-call slot: the lease holds them
    // Shutdown returns the lease: counter = usage, no holds.
    await s().metering.admission.stopLeases();
    expect(await holds()).toBe(0);
    expect(Number(await s().redis.get(await monthTokensKey()))).toBe(used);
    expect(await s().redis.hlen(`${keyBase()}:conc:l`)).toBe(0);
    s().metering.admission.startLeases();
  });

  it('near a limit every call waits: a 30 requests/minute plan admits exactly 30 of 40 sequential calls', async () => {
    nextMonth();
    await plan({ requests_per_minute: 30 }, 'tight');
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await chat()).status);
    expect(statuses.filter((x) => x === 200)).toHaveLength(30);
    expect(statuses.slice(30)).toEqual(Array(10).fill(429));
  });

  it('another process used the allowance: calls continue within this lease, the next sync sees the limit near, then every call is exact and refused', async () => {
    nextMonth();
    await plan({ requests_per_minute: 10_000, monthly_tokens: 100_000_000 }, 'shared');
    expect((await chat()).status).toBe(200);
    await waitFor(() => s().metering.admission.activeLeases, { until: (k) => k >= 1, what: 'a lease granted' });
    // As if other API processes had just taken every remaining request of the minute.
    await s().redis.hset(`${keyBase()}:rpm`, 'v', '0', 't', String(clock.t));
    expect((await chat()).status).toBe(200); // from the lease (leased before: no overshoot)
    await waitFor(() => s().metering.admission.activeLeases, { until: (k) => k === 0, what: 'the lease given up near the limit' });
    // What was left of it went back to the bucket (2 % of 10,000 leased, 1 call served from it) …
    await expect.poll(async () => Number(await s().redis.hget(`${keyBase()}:rpm`, 'v'))).toBe(199);
    // … and the other processes take that too: from now on every call is admitted exactly.
    await s().redis.hset(`${keyBase()}:rpm`, 'v', '0', 't', String(clock.t));
    const refused = await chat();
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: 'rate_limit_exceeded', level: 'tenant', limit: 'requests_per_minute' });
  });

  it('a fail-closed deployment never leases: every call is admitted in Redis', async () => {
    const closed = await gatewayEnv({ clock, entitlements: unrestricted, config: testConfig({ ENCLAVE_RATE_LIMIT_FAILURE_MODE: 'fail-closed' }) });
    try {
      await closed.addProvider({ name: 'ollama-c', kind: 'ollama', base_url: closed.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
      const cs = closed.app.services;
      await cs.metering.plans.upsert(sys(cs), { name: 'roomy', limits: { requests_per_minute: 100_000 } });
      await cs.metering.plans.assign(sys(cs), closed.tenant.tenant.id, 'roomy');
      for (let i = 0; i < 5; i++) expect((await closed.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] })).choices).toHaveLength(1);
      const v = (await cs.metrics.ratelimitAdmissions.get()).values;
      expect(v.find((x) => x.labels.store === 'redis')?.value).toBe(5);
      expect(v.find((x) => x.labels.store === 'lease')?.value ?? 0).toBe(0);
    } finally {
      await closed.close();
    }
  });
});
