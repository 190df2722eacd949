import { afterAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOllama } from '../fakes/fake-ollama.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { FAST } from './gateway-env.js';

const started: { app?: TestApp; redis?: PrivateRedis; ollama?: FakeOllama }[] = [];
afterAll(async () => {
  for (const s of started) {
    await s.app?.close();
    await s.redis?.close();
    await s.ollama?.close();
  }
});

async function setup(mode: 'fail-open' | 'fail-closed') {
  const redis = await startPrivateRedis();
  const ollama = await new FakeOllama().start();
  const app = await startTestApp({ env: { REDIS_URL: redis.url(), ENCLAVE_RATE_LIMIT_FAILURE_MODE: mode }, entitlements: unrestricted });
  const s = app.services;
  const holder = { app, redis, ollama };
  started.push(holder);
  await s.gateway.deployments.create(sys(s), { options: FAST, name: 'ollama-1', kind: 'ollama', base_url: ollama.url, boundary: 'local', models: 'llama3.1:8b' });
  const t = await seedTenant(s, `rd${mode === 'fail-open' ? 'o' : 'c'}`, ['owner', 'member']);
  const { secret } = await s.identity.keys.create(t.ctx, { name: 'k', ownerUserId: t.users.member!.id });
  const chat = async () => {
    const r = await fetch(`${app.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
    });
    return { status: r.status, headers: r.headers, body: (await r.json()) as any };
  };
  const plan = async (limits: Record<string, number>) => {
    await s.metering.plans.upsert(sys(s), { name: `p-${mode}`, limits });
    await s.metering.plans.assign(sys(s), t.tenant.id, `p-${mode}`);
  };
  const metric = async (name: string) => {
    const text = await s.metrics.registry.metrics();
    return text.split('\n').filter((l) => l.startsWith(name));
  };
  return { app, s, holder, chat, plan, metric };
}

describe('Redis stopped mid-test', () => {
  it('fail-open keeps serving with approximate limits and exact budgets; Redis back → exact limits resume', async () => {
    const e = await setup('fail-open');
    // 'hi' → reservation 1 + 10 = 11; each call uses 7 (fake Ollama: 1 prompt + 6 completion)
    await e.plan({ monthly_tokens: 30, requests_per_minute: 100 });
    let r = await e.chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('99');

    await e.holder.redis.stop();
    await waitFor(() => e.s.redis.status, { until: (s) => s !== 'ready', what: 'the Redis connection lost' });
    r = await e.chat();
    expect(r.status).toBe(200); // served from the in-process limiter
    expect(await e.metric('enclave_ratelimit_degraded')).toContain('enclave_ratelimit_degraded 1');
    expect((await e.metric('enclave_ratelimit_redis_unavailable_total')).join()).toMatch(/outcome="fail_open"/);
    expect((await e.chat()).status).toBe(200); // 21 used
    r = await e.chat(); // 21 + 11 > 30: the budget is exact without Redis (ledger + in-memory counters)
    expect(r.status).toBe(429);
    expect(r.body.error).toMatchObject({ code: 'quota_exceeded', level: 'tenant', limit: 'monthly_tokens' });

    await e.holder.redis.start();
    await waitFor(() => e.s.redis.status, { until: (s) => s === 'ready', what: 'the Redis connection back' });
    r = await e.chat(); // Redis is empty: its counter is seeded from the ledger, still exact
    expect(r.status).toBe(429);
    await e.plan({ monthly_tokens: 1000, requests_per_minute: 100 });
    r = await e.chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('100');
    expect(await e.metric('enclave_ratelimit_degraded')).toContain('enclave_ratelimit_degraded 0');
    const keys = await e.s.redis.keys('enc:m:*:tok');
    expect(keys.length).toBe(1);
    // four successful calls of 7 tokens (the refusals used none): Redis's counter equals the ledger
    await waitFor(() => e.s.metering.admission.memory.touched.size, { until: (n) => n === 0, what: 'the in-process counters handed back to Redis' });
    expect(Number(await e.s.redis.get(keys[0]!))).toBe(4 * 7);
  }, 30_000);

  it('Redis fails a lease sync (writes refused, connection up): the lease is dropped, later calls are served from the in-process counters, exact counting resumes', async () => {
    const e = await setup('fail-open');
    await e.plan({ monthly_tokens: 100_000_000, requests_per_minute: 100_000 });
    const admissions = async (store: string) => Number(/ (\d+)$/.exec((await e.metric(`enclave_ratelimit_admissions_total{store="${store}"}`))[0] ?? ' 0')![1]);
    expect((await e.chat()).status).toBe(200); // exact; asks for a lease
    await waitFor(() => e.s.metering.admission.activeLeases, { until: (n) => n >= 1, what: 'a lease granted' });
    expect((await e.chat()).status).toBe(200);
    expect(await admissions('lease')).toBe(1);
    // Redis answers every write with an error (out of memory, noeviction) while its connection stays up.
    await e.s.redis.config('SET', 'maxmemory', '1');
    try {
      await expect.poll(async () => (await e.metric('enclave_ratelimit_degraded')).join()).toContain('enclave_ratelimit_degraded 1'); // the next sync failed
      expect(e.s.metering.admission.activeLeases).toBe(0);
      expect((await e.chat()).status).toBe(200); // counted in process (fail-open)
      expect(await admissions('memory')).toBeGreaterThanOrEqual(1);
    } finally {
      await e.s.redis.config('SET', 'maxmemory', '0');
    }
    expect((await e.chat()).status).toBe(200);
    await expect.poll(async () => (await e.metric('enclave_ratelimit_degraded')).join()).toContain('enclave_ratelimit_degraded 0');
  }, 30_000);

  it('fail-closed answers 503 rate_limiter_unavailable', async () => {
    const e = await setup('fail-closed');
    await e.plan({ requests_per_minute: 100 });
    expect((await e.chat()).status).toBe(200);
    await e.holder.redis.stop();
    await waitFor(() => e.s.redis.status, { until: (s) => s !== 'ready', what: 'the Redis connection lost' });
    const r = await e.chat();
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('rate_limiter_unavailable');
    await e.holder.redis.start();
    await waitFor(() => e.s.redis.status, { until: (s) => s === 'ready', what: 'the Redis connection back' });
    expect((await e.chat()).status).toBe(200);
  }, 30_000);
});
