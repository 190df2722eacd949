import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, RedisStore, type AdmitInput, type AdmitOutcome, type CounterStore, type LevelSpec, type SettleOutcome } from '../../server/metering/store.js';
import { testRedisUrl } from '../helpers/app.js';

/**
 * One scenario table, two counter stores: the Lua scripts in the real Redis (RedisStore) and
 * the in-process store the gateway falls back to when Redis is down (MemoryStore, fail-open).
 * Each scenario is a sequence of admissions, seeds and settlements with the outcome each step
 * must have; both stores must give exactly those outcomes, so the fallback enforces the same
 * limits the same way (issue 17 gap: the in-memory store ran on its own cases only).
 */
const lvl = (level: LevelSpec['level'], o: Partial<LevelSpec> = {}): LevelSpec => ({ level, id: level, rpm: -1, tpm: -1, conc: -1, mtok: -1, mcost: -1, ...o });
const T0 = 1_000_000;

type Step =
  | { readonly admit: Partial<AdmitInput>; readonly expect: Partial<AdmitOutcome> | Record<string, unknown> }
  | { readonly seed: { levelIdx: number; kind: 'tokens' | 'cost'; value: number }[] }
  | { readonly settle: { rid: string; actual: number; now?: number }; readonly expect: Partial<SettleOutcome> };

interface Scenario {
  readonly name: string;
  readonly levels: LevelSpec[];
  readonly steps: Step[];
}

const SCENARIOS: Scenario[] = [
  {
    name: 'monthly tokens: seeded first, then reserved per call, settled to the actual use',
    levels: [lvl('tenant', { mtok: 25 })],
    steps: [
      { admit: { rid: 'first' }, expect: { ok: 'seed', missing: [{ levelIdx: 0, kind: 'tokens' }] } },
      { seed: [{ levelIdx: 0, kind: 'tokens', value: 3 }] },
      { admit: { rid: 'a' }, expect: { ok: true } }, // 3 + 10
      { admit: { rid: 'b' }, expect: { ok: true } }, // 13 + 10
      { admit: { rid: 'c' }, expect: { ok: false, levelIdx: 0, limit: 'monthly_tokens' } }, // 23 + 10 > 25
      { settle: { rid: 'a', actual: 2 }, expect: { tenantTokens: 15 } }, // 3 + 2 + 10 reserved by b
      { admit: { rid: 'd' }, expect: { ok: true } }, // 15 + 10 = 25: at the limit is allowed
      { admit: { rid: 'e' }, expect: { ok: false, limit: 'monthly_tokens' } },
    ],
  },
  {
    name: 'requests per minute: the bucket refills continuously',
    levels: [lvl('key', { rpm: 2 })],
    steps: [
      { admit: { rid: 'a' }, expect: { ok: true } },
      { admit: { rid: 'b' }, expect: { ok: true } },
      { admit: { rid: 'c' }, expect: { ok: false, levelIdx: 0, limit: 'requests_per_minute', retryMs: 30_000 } },
      { admit: { rid: 'd', now: T0 + 30_000 }, expect: { ok: true } }, // one request back after half a minute
      { admit: { rid: 'e', now: T0 + 30_000 }, expect: { ok: false, limit: 'requests_per_minute' } },
    ],
  },
  {
    name: 'tokens per minute: a call needs its estimate in the bucket',
    levels: [lvl('tenant', { tpm: 20 })],
    steps: [
      { admit: { rid: 'a' }, expect: { ok: true } },
      { admit: { rid: 'b' }, expect: { ok: true } },
      { admit: { rid: 'c' }, expect: { ok: false, levelIdx: 0, limit: 'tokens_per_minute', retryMs: 30_000 } },
      { admit: { rid: 'd', now: T0 + 30_000 }, expect: { ok: true } },
    ],
  },
  {
    name: 'concurrency: a slot is freed at settlement and expires on its own',
    levels: [lvl('tenant', { conc: 1 })],
    steps: [
      { admit: { rid: 'x' }, expect: { ok: true } },
      { admit: { rid: 'y' }, expect: { ok: false, levelIdx: 0, limit: 'concurrent_requests' } },
      { settle: { rid: 'x', actual: 10 }, expect: {} },
      { admit: { rid: 'z' }, expect: { ok: true } },
      { admit: { rid: 'w', now: T0 + 60_001 }, expect: { ok: true } }, // z's slot expired (60 s)
    ],
  },
  {
    name: 'several levels: the first refusing level is named; a refusal reserves nothing',
    levels: [lvl('key', { rpm: 10 }), lvl('tenant', { conc: 1 })],
    steps: [
      { admit: { rid: 'a' }, expect: { ok: true } },
      { admit: { rid: 'b' }, expect: { ok: false, levelIdx: 1, limit: 'concurrent_requests' } },
      { settle: { rid: 'a', actual: 1 }, expect: {} },
      // b's refusal took no request from the key's bucket: 8 of 10 left after a and c.
      { admit: { rid: 'c' }, expect: { ok: true } },
    ],
  },
];

async function play(store: CounterStore, sc: Scenario): Promise<void> {
  const tenantId = `t_${randomBytes(6).toString('hex')}`;
  const base: AdmitInput = { now: T0, rid: '', tenantId, est: 10, estCost: 0, monthId: 'm', monthEnd: T0 + 30 * 86_400_000, concurrencyTtlMs: 60_000, levels: sc.levels };
  const admitted = new Map<string, { masks: number[]; now: number }>();
  for (const [i, step] of sc.steps.entries()) {
    const at = `${sc.name}, step ${i + 1}`;
    if ('seed' in step) {
      await store.seed(base, step.seed);
    } else if ('admit' in step) {
      const input = { ...base, ...step.admit };
      const out = await store.admit(input);
      expect(out, at).toMatchObject(step.expect);
      if (out.ok === true) admitted.set(input.rid, { masks: out.masks, now: input.now });
    } else {
      const a = admitted.get(step.settle.rid)!;
      const out = await store.settle({ now: step.settle.now ?? a.now, rid: step.settle.rid, tenantId, monthId: base.monthId, levels: sc.levels, masks: a.masks, est: base.est, estCost: 0, actual: step.settle.actual, actualCost: 0 });
      expect(out, at).toMatchObject(step.expect);
    }
  }
}

let redis: Redis;
beforeAll(async () => {
  redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
});
afterAll(() => redis?.disconnect());

describe.each([
  ['Redis (Lua)', () => new RedisStore(redis) as CounterStore],
  ['in-process (fail-open)', () => new MemoryStore() as CounterStore],
])('counter store: %s', (_name, make) => {
  for (const sc of SCENARIOS) {
    it(sc.name, async () => {
      await play(make(), sc);
    });
  }
});
