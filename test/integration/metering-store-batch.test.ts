import { randomUUID } from 'node:crypto';
import { Redis, type Command } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRedisUrl } from '../helpers/app.js';
import { levelKeys, RedisStore, type AdmitInput, type LevelSpec } from '../../server/metering/store.js';

/**
 * RedisStore's batch (server/metering/store.ts): work nobody waits for — settlements and
 * admissions without waiting — leaves once per event-loop turn, many operations in one script
 * call. Against the real redis-server: the batch must decide exactly what the same operations
 * would decide one by one, in order.
 */
let redis: Redis;
const scriptCalls: { name: string }[] = [];
beforeAll(async () => {
  redis = new Redis(testRedisUrl());
  await redis.ping();
  // The commands this client sends (INFO commandstats would count other test files' too).
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((c: Command) => {
    if (c.name === 'evalsha' || c.name === 'eval') scriptCalls.push({ name: c.name });
    return send(c);
  }) as typeof redis.sendCommand;
});
afterAll(async () => {
  redis?.disconnect();
});

const now = Date.UTC(2026, 0, 10, 12);
function input(tenantId: string, level: LevelSpec, rid = randomUUID()): AdmitInput {
  return { now, rid, tenantId, est: 10, estCost: 0, monthId: '2026-01@0', monthEnd: Date.UTC(2026, 1, 1), concurrencyTtlMs: 60_000, levels: [level] };
}

describe('RedisStore batch', () => {
  it('admissions sent together decide in order, exactly as one by one: 5 of 8 pass a 5 requests/minute limit', async () => {
    const store = new RedisStore(redis);
    const tenant = `t-${randomUUID()}`;
    const level: LevelSpec = { level: 'tenant', id: tenant, rpm: 5, tpm: -1, conc: -1, mtok: -1, mcost: -1 };
    const before = scriptCalls.length;
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => store.admit(input(tenant, level), true)));
    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true, true, false, false, false]);
    const refused = outcomes[5]!;
    expect(refused).toMatchObject({ ok: false, levelIdx: 0, limit: 'requests_per_minute' });
    expect(outcomes[4]).toMatchObject({ ok: true, stats: [{ rpmRemaining: 0 }] });
    // One script call carried all eight (a first use may be EVALSHA answered NOSCRIPT, then EVAL).
    expect(scriptCalls.slice(before).filter((c) => c.name === 'evalsha')).toHaveLength(1);
  });

  it('settlements batched with admissions free concurrency slots and correct monthly counters', async () => {
    const store = new RedisStore(redis);
    const tenant = `t-${randomUUID()}`;
    const level: LevelSpec = { level: 'tenant', id: tenant, rpm: -1, tpm: -1, conc: 2, mtok: 1_000_000, mcost: -1 };
    const keys = levelKeys(tenant, level, '2026-01@0');
    await redis.set(keys[3]!, '100'); // the month's counter, as seeded from the ledger
    const [a, b] = [input(tenant, level), input(tenant, level)];
    const [oa, ob, oc] = await Promise.all([store.admit(a, true), store.admit(b, true), store.admit(input(tenant, level), true)]);
    expect([oa.ok, ob.ok, oc.ok]).toEqual([true, true, false]); // two slots
    expect(oc).toMatchObject({ limit: 'concurrent_requests' });
    expect(await redis.zcard(keys[2]!)).toBe(2);
    expect(await redis.get(keys[3]!)).toBe('120'); // reserved 10 + 10
    const masks = (o: typeof oa) => (o.ok === true ? o.masks : []);
    // Both settle (7 and 3 tokens used) in one batch with a new admission that needs a free slot.
    const settle = (i: AdmitInput, actual: number, m: number[]) =>
      store.settle({ now, rid: i.rid, tenantId: tenant, monthId: i.monthId, levels: i.levels, masks: m, est: i.est, estCost: 0, actual, actualCost: 0 });
    const [sa, sb, od] = await Promise.all([settle(a, 7, masks(oa)), settle(b, 3, masks(ob)), store.admit(input(tenant, level), true)]);
    expect(sa.tenantTokens).toBe(117);
    expect(sb.tenantTokens).toBe(110);
    expect(od.ok).toBe(true); // the slots were free by then: same order as one by one
    expect(await redis.get(keys[3]!)).toBe('120');
    expect(await redis.zcard(keys[2]!)).toBe(1);
  });

  it('a waiting admission goes out at once, on its own', async () => {
    const store = new RedisStore(redis);
    const tenant = `t-${randomUUID()}`;
    const level: LevelSpec = { level: 'tenant', id: tenant, rpm: 100, tpm: -1, conc: -1, mtok: -1, mcost: -1 };
    const o = await store.admit(input(tenant, level));
    expect(o).toMatchObject({ ok: true, stats: [{ rpmRemaining: 99, inFlight: -1, monthTokens: -1 }] });
  });
});

