import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import type { Limits } from '../../server/metering/limits.js';
import { testConfig } from '../helpers/app.js';
import { sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Admission without waiting for Redis (server/metering/admission.ts): far from every limit a
 * call reserves in Redis without waiting for the answer; near a limit every call waits, so
 * refusals stay exact. Checked through /v1 against the real redis-server, counting Redis's
 * own counters and the admission metric.
 */
const clock = { t: Date.UTC(2025, 5, 15, 12), now(): number { return this.t; } };
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv({ clock, entitlements: unrestricted });
  env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
});
afterAll(async () => env?.close());

const s = () => env.app.services;
function plan(limits: Limits, name: string): void {
  s().metering.plans.upsert(sys(s()), { name, limits });
  s().metering.plans.assign(sys(s()), env.tenant.tenant.id, name);
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

describe('admission without waiting for Redis', () => {
  it('far from every limit, calls after the first do not wait; Redis still counts every call exactly and frees every slot', async () => {
    nextMonth();
    plan({ requests_per_minute: 100_000, tokens_per_minute: 10_000_000, concurrent_requests: 1000, monthly_tokens: 100_000_000 }, 'roomy');
    const [waited0, unconfirmed0] = [await admissions('redis'), await admissions('redis_unconfirmed')];
    const n = 25;
    for (let i = 0; i < n; i++) expect((await chat()).status).toBe(200);
    expect((await admissions('redis')) - waited0).toBe(1); // the first call fetched the counters
    expect((await admissions('redis_unconfirmed')) - unconfirmed0).toBe(n - 1);
    // Every call reserved and settled in Redis: n requests taken from the bucket, the month's
    // tokens are the usage records' tokens, no concurrency slot left behind.
    await waitFor(() => env.usage().length, { until: (k) => k >= n, what: `${n} usage records` });
    const used = env.usage().reduce((t, u) => t + (u.promptTokens + u.completionTokens), 0);
    await expect.poll(async () => Number(await s().redis.get(await monthTokensKey()))).toBe(used);
    expect(Number(await s().redis.hget(`${keyBase()}:rpm`, 'v'))).toBeCloseTo(100_000 - n, 0);
    expect(await s().redis.zcard(`${keyBase()}:conc`)).toBe(0);
  });

  it('near a limit every call waits: a 30 requests/minute plan admits exactly 30 of 40 sequential calls', async () => {
    nextMonth();
    plan({ requests_per_minute: 30 }, 'tight');
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await chat()).status);
    expect(statuses.filter((x) => x === 200)).toHaveLength(30);
    expect(statuses.slice(30)).toEqual(Array(10).fill(429));
  });

  it('another process used the headroom unseen: the call already admitted runs and is charged, counted; the next call waits and is refused', async () => {
    nextMonth();
    plan({ requests_per_minute: 1000, monthly_tokens: 100_000_000 }, 'shared');
    for (let i = 0; i < 3; i++) expect((await chat()).status).toBe(200); // counters known, far from the limit
    // As if other API processes had just taken every remaining request of the minute.
    await s().redis.hset(`${keyBase()}:rpm`, 'v', '0', 't', String(clock.t));
    const over0 = (await s().metrics.ratelimitUnconfirmedOver.get()).values[0]?.value ?? 0;
    await waitFor(() => env.usage().length, { until: (k) => k >= 3, what: '3 usage records' });
    const tokensBefore = Number(await s().redis.get(await monthTokensKey()));

    const admitted = await chat(); // admitted on the last counters; Redis refuses its reservation
    expect(admitted.status).toBe(200);
    await expect.poll(async () => ((await s().metrics.ratelimitUnconfirmedOver.get()).values[0]?.value ?? 0) - over0).toBe(1);
    // Charged what it used (settled as unreserved), so the month's counter stays exact.
    await waitFor(() => env.usage().length, { until: (k) => k >= 4, what: '4 usage records' });
    await expect.poll(async () => Number(await s().redis.get(await monthTokensKey()))).toBe(tokensBefore + (env.usage().at(-1)!.promptTokens + env.usage().at(-1)!.completionTokens));

    const refused = await chat();
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: 'rate_limit_exceeded', level: 'tenant', limit: 'requests_per_minute' });
  });

  it('a fail-closed deployment always waits', async () => {
    const closed = await gatewayEnv({ clock, entitlements: unrestricted, config: testConfig({ ENCLAVE_RATE_LIMIT_FAILURE_MODE: 'fail-closed' }) });
    try {
      closed.addProvider({ name: 'ollama-c', kind: 'ollama', base_url: closed.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
      const cs = closed.app.services;
      cs.metering.plans.upsert(sys(cs), { name: 'roomy', limits: { requests_per_minute: 100_000 } });
      cs.metering.plans.assign(sys(cs), closed.tenant.tenant.id, 'roomy');
      for (let i = 0; i < 5; i++) expect((await closed.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] })).choices).toHaveLength(1);
      const v = (await cs.metrics.ratelimitAdmissions.get()).values;
      expect(v.find((x) => x.labels.store === 'redis')?.value).toBe(5);
      expect(v.find((x) => x.labels.store === 'redis_unconfirmed')?.value ?? 0).toBe(0);
    } finally {
      await closed.close();
    }
  });
});
