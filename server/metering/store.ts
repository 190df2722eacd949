import type { Redis } from 'ioredis';
import type { AdmissionLimit } from './limits.js';

/**
 * The counters behind admission, for every level of one request at once:
 *   - requests/min and tokens/min: token buckets (capacity = the per-minute limit, refilled
 *     continuously), so "remaining" and "reset" are exact and Retry-After is honest;
 *   - concurrency: a sorted set of in-flight reservation ids scored by expiry (a crashed
 *     process's slots free themselves after `concurrencyTtlMs`);
 *   - monthly tokens / cost: counters per calendar month (tenant time zone), reserved with
 *     the estimate at admission and corrected by (actual − estimate) at settlement. A
 *     counter that does not exist yet is seeded from the SQLite ledger (rollups) first.
 *
 * RedisStore runs this as one Lua script per admission and one per settlement — one round
 * trip each, for every level together. MemoryStore is the same algorithm in process, used
 * when Redis is unavailable and the deployment fails open.
 */
export interface LevelSpec {
  readonly level: 'key' | 'user' | 'team' | 'tenant';
  readonly id: string;
  /** The team's name (team level): refusals name it. */
  readonly name?: string;
  /** -1 = no limit. */
  readonly rpm: number;
  readonly tpm: number;
  readonly conc: number;
  readonly mtok: number;
  readonly mcost: number;
}

export interface AdmitInput {
  readonly now: number;
  readonly rid: string;
  readonly tenantId: string;
  readonly est: number;
  readonly estCost: number;
  readonly monthId: string;
  readonly monthEnd: number;
  readonly concurrencyTtlMs: number;
  readonly levels: readonly LevelSpec[];
}

export interface LevelStats {
  /** -1 when the level has no such limit. */
  readonly rpmRemaining: number;
  readonly rpmResetMs: number;
  readonly tpmRemaining: number;
  readonly tpmResetMs: number;
  /** Calls in flight at this level, this one included (-1: no concurrency limit). */
  readonly inFlight: number;
  /** The month's counters after this reservation (-1: not counted at this level). */
  readonly monthTokens: number;
  readonly monthCost: number;
}

export type AdmitOutcome =
  | { readonly ok: true; readonly stats: LevelStats[]; readonly masks: number[] }
  | { readonly ok: false; readonly levelIdx: number; readonly limit: AdmissionLimit; readonly retryMs: number }
  | { readonly ok: 'seed'; readonly missing: { levelIdx: number; kind: 'tokens' | 'cost' }[] };

export interface SettleInput {
  readonly now: number;
  readonly rid: string;
  readonly tenantId: string;
  readonly monthId: string;
  readonly levels: readonly LevelSpec[];
  readonly masks: readonly number[];
  readonly est: number;
  readonly estCost: number;
  readonly actual: number;
  readonly actualCost: number;
}

/** Month usage of the tenant level after settlement (-1 = not counted). */
export interface SettleOutcome {
  readonly tenantTokens: number;
  readonly tenantCost: number;
}

export interface CounterStore {
  /** `later`: the caller does not wait on a call's critical path (a store may batch it). */
  admit(i: AdmitInput, later?: boolean): Promise<AdmitOutcome> | AdmitOutcome;
  seed(i: AdmitInput, values: { levelIdx: number; kind: 'tokens' | 'cost'; value: number }[]): Promise<void> | void;
  settle(i: SettleInput): Promise<SettleOutcome> | SettleOutcome;
}

const CODES: AdmissionLimit[] = ['requests_per_minute', 'requests_per_minute', 'tokens_per_minute', 'concurrent_requests', 'monthly_tokens', 'monthly_cost_micros'];
const PER_LEVEL = 5;
/** Values per level in an admission's answer: rpm remaining/reset, tpm remaining/reset, in flight, month tokens, month cost, mask. */
const OUT_PER_LEVEL = 8;

export function levelKeys(tenantId: string, l: LevelSpec, monthId: string): string[] {
  const b = `enc:m:${tenantId}:${l.level}:${l.id}`;
  return [`${b}:rpm`, `${b}:tpm`, `${b}:conc`, `${b}:${monthId}:tok`, `${b}:${monthId}:cost`];
}

/**
 * Lua shared by every metering script (admission, settlement, lease sync): expired holds of a
 * monthly counter returned (every script that reads the counter runs it first), the
 * concurrency slots leased by live processes, and a per-minute bucket's current level.
 */
export const LEASE_COMMON = `
local function sweep(ck, now)
  local hk = ck .. ':h'
  local h = redis.call('HGETALL', hk)
  if #h == 0 then return end
  local back = 0
  for j = 1, #h, 2 do
    local v = h[j + 1]; local sep = string.find(v, ':', 1, true)
    if tonumber(string.sub(v, sep + 1)) <= now then
      back = back + tonumber(string.sub(v, 1, sep - 1)); redis.call('HDEL', hk, h[j])
    end
  end
  if back ~= 0 and redis.call('EXISTS', ck) == 1 then redis.call('DECRBY', ck, back) end
end
local function leasedSlots(ck, now)
  local lk = ck .. ':l'
  local h = redis.call('HGETALL', lk)
  local n = 0
  for j = 1, #h, 2 do
    local v = h[j + 1]; local sep = string.find(v, ':', 1, true)
    if tonumber(string.sub(v, sep + 1)) <= now then redis.call('HDEL', lk, h[j])
    else n = n + tonumber(string.sub(v, 1, sep - 1)) end
  end
  return n
end
local function bucket(key, cap, now)
  local b = redis.call('HMGET', key, 'v', 't')
  local v = tonumber(b[1])
  if not v then return cap end
  local r = v + (now - tonumber(b[2])) * cap / 60000
  if r > cap then r = cap end
  return r
end
`;


/**
 * The admission as a Lua function of its own KEYS and ARGV (parameters named like Redis's
 * globals, so one body serves the single script and the batch).
 * KEYS: 5 per level. ARGV: now, rid, est, estCost, concTtl, monthEnd, n, then 5 limits per level.
 */
const ADMIT_FN = `
local function admit(KEYS, ARGV)
local now = tonumber(ARGV[1]); local rid = ARGV[2]; local est = tonumber(ARGV[3]); local estc = tonumber(ARGV[4])
local cttl = tonumber(ARGV[5]); local mend = tonumber(ARGV[6]); local n = tonumber(ARGV[7])
-- Monthly counters exist here only after seeding (SET … PX until a week after the month), so INCRBY keeps their expiry.
local best = nil
local missing = {}
local vals = {}
local function deny(i, code, retry)
  if (not best) or retry > best[3] then best = {i, code, retry} end
end
for i = 0, n - 1 do
  local a = 8 + i * 5; local k = i * 5
  local rpm = tonumber(ARGV[a]); local tpm = tonumber(ARGV[a + 1]); local conc = tonumber(ARGV[a + 2])
  local mtok = tonumber(ARGV[a + 3]); local mcost = tonumber(ARGV[a + 4])
  if rpm >= 0 then
    local v = bucket(KEYS[k + 1], rpm, now); vals[k + 1] = v
    if v < 1 then
      if rpm > 0 then deny(i, 1, math.ceil((1 - v) * 60000 / rpm)) else deny(i, 1, mend - now) end
    end
  end
  if tpm >= 0 then
    local v = bucket(KEYS[k + 2], tpm, now); vals[k + 2] = v
    local need = est
    if need > tpm then need = tpm end
    if tpm == 0 then deny(i, 2, mend - now)
    elseif v < need then deny(i, 2, math.ceil((need - v) * 60000 / tpm)) end
  end
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    -- slots in use: calls admitted here, and those leased to processes (leases.ts)
    local c = redis.call('ZCARD', KEYS[k + 3]) + leasedSlots(KEYS[k + 3], now); vals[k + 3] = c
    if c >= conc then deny(i, 3, 1000) end
  end
  if mtok >= 0 then sweep(KEYS[k + 4], now) end
  if mcost >= 0 then sweep(KEYS[k + 5], now) end
  if mtok >= 0 then
    local u = redis.call('GET', KEYS[k + 4])
    if not u then missing[#missing + 1] = k + 4
    elseif tonumber(u) + est > mtok or tonumber(u) >= mtok then deny(i, 4, mend - now) end
  end
  if mcost >= 0 then
    local u = redis.call('GET', KEYS[k + 5])
    if not u then missing[#missing + 1] = k + 5
    elseif tonumber(u) + estc > mcost or tonumber(u) >= mcost then deny(i, 5, mend - now) end
  end
end
if #missing > 0 then
  local r = {2}
  for j = 1, #missing do r[#r + 1] = missing[j] end
  return r
end
if best then return {0, best[1], best[2], best[3]} end
local out = {1}
for i = 0, n - 1 do
  local a = 8 + i * 5; local k = i * 5
  local rpm = tonumber(ARGV[a]); local tpm = tonumber(ARGV[a + 1]); local conc = tonumber(ARGV[a + 2])
  local mtok = tonumber(ARGV[a + 3]); local mcost = tonumber(ARGV[a + 4])
  if rpm >= 0 then
    local v = vals[k + 1] - 1
    redis.call('HSET', KEYS[k + 1], 'v', v, 't', now); redis.call('PEXPIRE', KEYS[k + 1], 120000)
    out[#out + 1] = math.floor(v)
    if rpm > 0 then out[#out + 1] = math.ceil((rpm - v) * 60000 / rpm) else out[#out + 1] = 0 end
  else out[#out + 1] = -1; out[#out + 1] = 0 end
  if tpm >= 0 then
    local v = vals[k + 2] - est
    redis.call('HSET', KEYS[k + 2], 'v', v, 't', now); redis.call('PEXPIRE', KEYS[k + 2], 120000)
    out[#out + 1] = math.floor(v)
    if tpm > 0 then out[#out + 1] = math.ceil((tpm - v) * 60000 / tpm) else out[#out + 1] = 0 end
  else out[#out + 1] = -1; out[#out + 1] = 0 end
  if conc >= 0 then
    redis.call('ZADD', KEYS[k + 3], now + cttl, rid); redis.call('PEXPIRE', KEYS[k + 3], cttl)
    out[#out + 1] = vals[k + 3] + 1
  else out[#out + 1] = -1 end
  local mask = 0
  local mt = -1; local mc = -1
  if mtok >= 0 or redis.call('EXISTS', KEYS[k + 4]) == 1 then
    mt = redis.call('INCRBY', KEYS[k + 4], est); mask = mask + 1
  end
  if mcost >= 0 or redis.call('EXISTS', KEYS[k + 5]) == 1 then
    mc = redis.call('INCRBY', KEYS[k + 5], estc); mask = mask + 2
  end
  out[#out + 1] = mt; out[#out + 1] = mc
  out[#out + 1] = mask
end
return out
end
`;

/** The settlement. KEYS: 5 per level. ARGV: now, rid, dEst (actual-est), dEstCost, actual, actualCost, n, tenantIdx, then (tpm, mask) per level. */
const SETTLE_FN = `
local function settle(KEYS, ARGV)
local now = tonumber(ARGV[1]); local rid = ARGV[2]
local d = tonumber(ARGV[3]); local dc = tonumber(ARGV[4]); local act = tonumber(ARGV[5]); local actc = tonumber(ARGV[6])
local n = tonumber(ARGV[7]); local ti = tonumber(ARGV[8])
local tt = -1; local tc = -1
for i = 0, n - 1 do
  local k = i * 5; local tpm = tonumber(ARGV[9 + i * 2]); local mask = tonumber(ARGV[10 + i * 2])
  if tpm >= 0 and d ~= 0 then
    local v = bucket(KEYS[k + 2], tpm, now) - d
    if v > tpm then v = tpm end
    redis.call('HSET', KEYS[k + 2], 'v', v, 't', now); redis.call('PEXPIRE', KEYS[k + 2], 120000)
  end
  redis.call('ZREM', KEYS[k + 3], rid)
  local dt = act; if mask % 2 == 1 then dt = d end
  local dcc = actc; if mask >= 2 then dcc = dc end
  local t = -1; local c = -1
  if redis.call('EXISTS', KEYS[k + 4]) == 1 then t = redis.call('INCRBY', KEYS[k + 4], dt) end
  if redis.call('EXISTS', KEYS[k + 5]) == 1 then c = redis.call('INCRBY', KEYS[k + 5], dcc) end
  if i == ti then tt = t; tc = c end
end
return {tt, tc}
end
`;

export const ADMIT_LUA = LEASE_COMMON + ADMIT_FN + 'return admit(KEYS, ARGV)';
export const SETTLE_LUA = LEASE_COMMON + SETTLE_FN + 'return settle(KEYS, ARGV)';

/**
 * Several admissions and settlements in one script call (one command, one round trip, one
 * Lua set-up), in order. ARGV: count, then per operation its kind ('a' or 's'), its number of
 * keys and of arguments, and its arguments; KEYS: every operation's keys in order. Answers
 * one array per operation.
 */
export const BATCH_LUA =
  LEASE_COMMON +
  ADMIT_FN +
  SETTLE_FN +
  `
local n = tonumber(ARGV[1]); local ki = 1; local ai = 2; local out = {}
for op = 1, n do
  local kind = ARGV[ai]; local nk = tonumber(ARGV[ai + 1]); local na = tonumber(ARGV[ai + 2]); ai = ai + 3
  local K = {}; for j = 1, nk do K[j] = KEYS[ki + j - 1] end; ki = ki + nk
  local A = {}; for j = 1, na do A[j] = ARGV[ai + j - 1] end; ai = ai + na
  if kind == 'a' then out[op] = admit(K, A) else out[op] = settle(K, A) end
end
return out
`;

/** The scripts as ioredis custom commands (EVALSHA, with EVAL on NOSCRIPT). */
interface Scripted {
  enclaveAdmit(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  enclaveSettle(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  enclaveBatch(numKeys: number, ...args: (string | number)[]): Promise<number[][]>;
}

interface Queued {
  readonly kind: 'a' | 's';
  readonly keys: string[];
  readonly argv: (string | number)[];
  readonly resolve: (r: number[]) => void;
  readonly reject: (e: unknown) => void;
}

export class RedisStore implements CounterStore {
  private readonly cmd: Scripted;
  /** Work nobody waits for (settlements, admissions without waiting), sent together once per event-loop turn. */
  private queue: Queued[] = [];

  constructor(private readonly redis: Redis) {
    if (!('enclaveAdmit' in redis)) {
      redis.defineCommand('enclaveAdmit', { lua: ADMIT_LUA });
      redis.defineCommand('enclaveSettle', { lua: SETTLE_LUA });
      redis.defineCommand('enclaveBatch', { lua: BATCH_LUA });
    }
    this.cmd = redis as unknown as Scripted;
  }

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  /**
   * `later`: nobody waits for the answer on a call's critical path, so it goes out with the
   * rest of this event-loop turn's such work in one batch (under load one command carries many).
   */
  async admit(i: AdmitInput, later = false): Promise<AdmitOutcome> {
    const keys: string[] = [];
    const argv: (string | number)[] = [i.now, i.rid, i.est, i.estCost, i.concurrencyTtlMs, i.monthEnd, i.levels.length];
    for (const l of i.levels) {
      keys.push(...levelKeys(i.tenantId, l, i.monthId));
      argv.push(l.rpm, l.tpm, l.conc, l.mtok, l.mcost);
    }
    const r = later ? await this.enqueue('a', keys, argv) : await this.cmd.enclaveAdmit(keys.length, ...keys, ...argv);
    return decodeAdmit(r, i.levels.length);
  }

  async seed(i: AdmitInput, values: { levelIdx: number; kind: 'tokens' | 'cost'; value: number }[]): Promise<void> {
    const p = this.redis.pipeline();
    const ttl = i.monthEnd - i.now + 7 * 86_400_000;
    for (const v of values) {
      const keys = levelKeys(i.tenantId, i.levels[v.levelIdx]!, i.monthId);
      const k = keys[v.kind === 'tokens' ? 3 : 4]!;
      // A new counter starts without holds: leases of an older one (Redis lost it) are not its.
      p.eval("if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then redis.call('DEL', KEYS[2]) end return 1", 2, k, `${k}:h`, String(v.value), ttl);
    }
    const res = await p.exec();
    for (const [err] of res ?? []) if (err) throw err;
  }

  /** Always batched: a settlement is never on a call's critical path. */
  async settle(i: SettleInput): Promise<SettleOutcome> {
    const keys: string[] = [];
    const ti = i.levels.findIndex((l) => l.level === 'tenant');
    const argv: (string | number)[] = [i.now, i.rid, i.actual - i.est, i.actualCost - i.estCost, i.actual, i.actualCost, i.levels.length, ti];
    i.levels.forEach((l, n) => {
      keys.push(...levelKeys(i.tenantId, l, i.monthId));
      argv.push(l.tpm, i.masks[n] ?? 0);
    });
    const r = await this.enqueue('s', keys, argv);
    return { tenantTokens: Number(r[0]), tenantCost: Number(r[1]) };
  }

  private enqueue(kind: 'a' | 's', keys: string[], argv: (string | number)[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      if (this.queue.push({ kind, keys, argv, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const q = this.queue;
    this.queue = [];
    if (q.length === 1) {
      const o = q[0]!;
      (o.kind === 'a' ? this.cmd.enclaveAdmit(o.keys.length, ...o.keys, ...o.argv) : this.cmd.enclaveSettle(o.keys.length, ...o.keys, ...o.argv)).then(o.resolve, o.reject);
      return;
    }
    const keys: string[] = [];
    const argv: (string | number)[] = [q.length];
    for (const o of q) {
      for (const k of o.keys) keys.push(k);
      argv.push(o.kind, o.keys.length, o.argv.length);
      for (const a of o.argv) argv.push(a);
    }
    this.cmd.enclaveBatch(keys.length, ...keys, ...argv).then(
      (rs) => q.forEach((o, j) => o.resolve(rs[j]!)),
      (e: unknown) => q.forEach((o) => o.reject(e)),
    );
  }
}

function decodeAdmit(r: number[], n: number): AdmitOutcome {
  const code = Number(r[0]);
  if (code === 2) {
    return {
      ok: 'seed',
      missing: r.slice(1).map((k) => {
        const z = Number(k) - 1;
        return { levelIdx: Math.floor(z / PER_LEVEL), kind: z % PER_LEVEL === 3 ? ('tokens' as const) : ('cost' as const) };
      }),
    };
  }
  if (code === 0) return { ok: false, levelIdx: Number(r[1]), limit: CODES[Number(r[2])]!, retryMs: Math.max(0, Number(r[3])) };
  const stats: LevelStats[] = [];
  const masks: number[] = [];
  for (let j = 0; j < n; j++) {
    const o = 1 + j * OUT_PER_LEVEL;
    stats.push({
      rpmRemaining: Number(r[o]),
      rpmResetMs: Number(r[o + 1]),
      tpmRemaining: Number(r[o + 2]),
      tpmResetMs: Number(r[o + 3]),
      inFlight: Number(r[o + 4]),
      monthTokens: Number(r[o + 5]),
      monthCost: Number(r[o + 6]),
    });
    masks.push(Number(r[o + 7]));
  }
  return { ok: true, stats, masks };
}

// ---- in-process fallback ---------------------------------------------------------------------

interface Bucket {
  v: number;
  t: number;
}

/**
 * The same algorithm in this process only (fail-open while Redis is away): rate limits and
 * concurrency become per-process (approximate across processes); monthly counters are
 * seeded from the SQLite ledger, so budgets stay exact for this process's traffic.
 * `touched` lists monthly counters changed here, so Redis's copies are re-seeded from the
 * ledger when it is back.
 */
export class MemoryStore implements CounterStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly inflight = new Map<string, Map<string, number>>();
  private readonly counters = new Map<string, { value: number; expires: number }>();
  readonly touched = new Set<string>();

  private bucket(key: string, cap: number, now: number): number {
    const b = this.buckets.get(key);
    if (!b) return cap;
    return Math.min(cap, b.v + ((now - b.t) * cap) / 60000);
  }

  private counter(key: string, now: number): number | undefined {
    const c = this.counters.get(key);
    if (!c) return undefined;
    if (c.expires <= now) {
      this.counters.delete(key);
      return undefined;
    }
    return c.value;
  }

  private conc(key: string, now: number): Map<string, number> {
    let m = this.inflight.get(key);
    if (!m) this.inflight.set(key, (m = new Map()));
    for (const [id, exp] of m) if (exp <= now) m.delete(id);
    return m;
  }

  admit(i: AdmitInput): AdmitOutcome {
    const { now, est, estCost: estc, monthEnd: mend } = i;
    let best: { levelIdx: number; code: number; retry: number } | undefined;
    const deny = (levelIdx: number, code: number, retry: number): void => {
      if (!best || retry > best.retry) best = { levelIdx, code, retry };
    };
    const missing: { levelIdx: number; kind: 'tokens' | 'cost' }[] = [];
    const keys = i.levels.map((l) => levelKeys(i.tenantId, l, i.monthId));
    i.levels.forEach((l, idx) => {
      const k = keys[idx]!;
      if (l.rpm >= 0) {
        const v = this.bucket(k[0]!, l.rpm, now);
        if (v < 1) deny(idx, 1, l.rpm > 0 ? Math.ceil(((1 - v) * 60000) / l.rpm) : mend - now);
      }
      if (l.tpm >= 0) {
        const v = this.bucket(k[1]!, l.tpm, now);
        const need = Math.min(est, l.tpm);
        if (l.tpm === 0) deny(idx, 2, mend - now);
        else if (v < need) deny(idx, 2, Math.ceil(((need - v) * 60000) / l.tpm));
      }
      if (l.conc >= 0 && this.conc(k[2]!, now).size >= l.conc) deny(idx, 3, 1000);
      if (l.mtok >= 0) {
        const u = this.counter(k[3]!, now);
        if (u === undefined) missing.push({ levelIdx: idx, kind: 'tokens' });
        else if (u + est > l.mtok || u >= l.mtok) deny(idx, 4, mend - now);
      }
      if (l.mcost >= 0) {
        const u = this.counter(k[4]!, now);
        if (u === undefined) missing.push({ levelIdx: idx, kind: 'cost' });
        else if (u + estc > l.mcost || u >= l.mcost) deny(idx, 5, mend - now);
      }
    });
    if (missing.length) return { ok: 'seed', missing };
    if (best) return { ok: false, levelIdx: best.levelIdx, limit: CODES[best.code]!, retryMs: Math.max(0, best.retry) };
    const stats: LevelStats[] = [];
    const masks: number[] = [];
    i.levels.forEach((l, idx) => {
      const k = keys[idx]!;
      let rpmRemaining = -1;
      let rpmResetMs = 0;
      let tpmRemaining = -1;
      let tpmResetMs = 0;
      if (l.rpm >= 0) {
        const v = this.bucket(k[0]!, l.rpm, now) - 1;
        this.buckets.set(k[0]!, { v, t: now });
        rpmRemaining = Math.floor(v);
        rpmResetMs = l.rpm > 0 ? Math.ceil(((l.rpm - v) * 60000) / l.rpm) : 0;
      }
      if (l.tpm >= 0) {
        const v = this.bucket(k[1]!, l.tpm, now) - est;
        this.buckets.set(k[1]!, { v, t: now });
        tpmRemaining = Math.floor(v);
        tpmResetMs = l.tpm > 0 ? Math.ceil(((l.tpm - v) * 60000) / l.tpm) : 0;
      }
      let inFlight = -1;
      if (l.conc >= 0) {
        const m = this.conc(k[2]!, now);
        m.set(i.rid, now + i.concurrencyTtlMs);
        inFlight = m.size;
      }
      const month = [-1, -1];
      let mask = 0;
      const exp = mend + 7 * 86_400_000;
      for (const [j, bit, d, lim] of [
        [3, 1, est, l.mtok],
        [4, 2, estc, l.mcost],
      ] as const) {
        const u = this.counter(k[j]!, now);
        if (lim >= 0 || u !== undefined) {
          this.counters.set(k[j]!, { value: (u ?? 0) + d, expires: exp });
          this.touched.add(k[j]!);
          month[j - 3] = (u ?? 0) + d;
          mask += bit;
        }
      }
      stats.push({ rpmRemaining, rpmResetMs, tpmRemaining, tpmResetMs, inFlight, monthTokens: month[0]!, monthCost: month[1]! });
      masks.push(mask);
    });
    return { ok: true, stats, masks };
  }

  seed(i: AdmitInput, values: { levelIdx: number; kind: 'tokens' | 'cost'; value: number }[]): void {
    for (const v of values) {
      const k = levelKeys(i.tenantId, i.levels[v.levelIdx]!, i.monthId)[v.kind === 'tokens' ? 3 : 4]!;
      if (this.counter(k, i.now) === undefined) this.counters.set(k, { value: v.value, expires: i.monthEnd + 7 * 86_400_000 });
    }
  }

  settle(i: SettleInput): SettleOutcome {
    let tenantTokens = -1;
    let tenantCost = -1;
    const d = i.actual - i.est;
    const dc = i.actualCost - i.estCost;
    i.levels.forEach((l, idx) => {
      const k = levelKeys(i.tenantId, l, i.monthId);
      if (l.tpm >= 0 && d !== 0) this.buckets.set(k[1]!, { v: Math.min(l.tpm, this.bucket(k[1]!, l.tpm, i.now) - d), t: i.now });
      this.inflight.get(k[2]!)?.delete(i.rid);
      const mask = i.masks[idx] ?? 0;
      let t = -1;
      let c = -1;
      const ct = this.counters.get(k[3]!);
      if (ct) {
        ct.value += mask & 1 ? d : i.actual;
        t = ct.value;
        this.touched.add(k[3]!);
      }
      const cc = this.counters.get(k[4]!);
      if (cc) {
        cc.value += mask & 2 ? dc : i.actualCost;
        c = cc.value;
        this.touched.add(k[4]!);
      }
      if (l.level === 'tenant') {
        tenantTokens = t;
        tenantCost = c;
      }
    });
    return { tenantTokens, tenantCost };
  }

  /** Forget monthly counters (they are re-seeded from the ledger on next use). */
  resetCounters(): void {
    this.counters.clear();
  }
}
