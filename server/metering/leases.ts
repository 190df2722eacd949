import type { Redis } from 'ioredis';
import { LEASE_COMMON, levelKeys, type LevelSpec, type LevelStats } from './store.js';

/**
 * Leases (issue 23): far from a limit, each process takes a share of each level's remaining
 * allowance — requests and tokens of the minute's buckets, concurrency slots, monthly tokens
 * and cost — in one script call, spends it in process (no Redis on the call's path), and
 * settles in bulk every SYNC_MS: it declares the actual usage, tops the lease up, or — near
 * a limit, or when the lease is refused — returns what is left and goes back to exact
 * per-call admission.
 *
 * Accounting per level and kind (the invariant that makes "never charged twice" checkable):
 *   Redis charges this process H = I + F + A beyond synced usage, where I = reservations of
 *   calls in flight, F = free lease, A = actual usage of settled calls not yet declared.
 *   Admission moves e from F to I; settlement moves e out of I, a into A, (e − a) back to F.
 *   A sync declares A (turns it into usage), returns F when draining and adds a top-up D.
 * The lease is charged in Redis when granted, so leases by themselves never pass a limit;
 * what they can cost is refusals while allowance sits unused in another process's lease
 * (at most one sync interval), and after a crash the holder's unsynced usage (≤ its lease
 * and in-flight reservations), returned with the lease when it expires (LEASE_TTL_MS).
 *
 * Expiry: monthly holds and concurrency slots are recorded per process with an expiry
 * (`<counter>:h`, `<conc>:l` hashes) that every sync refreshes; any script touching the
 * level returns expired ones. Leased requests/tokens of the minute come back by the
 * buckets' refill (a lease is at most SHARE of the limit: ≤ SHARE × 60 s).
 */
export const SYNC_MS = 200;
export const LEASE_TTL_MS = 3000;
/** A lease is not used locally longer than this after Redis last confirmed it (it expires in Redis at LEASE_TTL_MS). */
export const LEASE_LOCAL_MS = 2000;
/** Lease size: this share of each per-minute / concurrency limit, MONTH_SHARE of monthly budgets. */
export const SHARE = 0.02;
export const MONTH_SHARE = 0.005;
/** Leases only while this much of each limit stays unleased and unused after the lease (else exact admission). */
export const HEADROOM = 0.1;
export const MONTH_HEADROOM = 0.02;
/** A lease must cover at least this many calls like the one asking; smaller limits stay exact. */
export const MIN_LEASE_CALLS = 8;
/** A lease nobody used for this long is returned (no syncs for levels without traffic). */
export const IDLE_MS = 10_000;

/** One level's lease in this process. */
export interface Lease {
  readonly key: string;
  readonly tenantId: string;
  readonly spec: LevelSpec;
  readonly monthId: string;
  readonly keys: string[];
  /** May admit (false: draining — returns its free part at the next sync, removed when idle). */
  active: boolean;
  /** Date.now() until which it may admit. */
  okUntil: number;
  /** Date.now() of the last call admitted from it (an unused lease is returned after IDLE_MS). */
  lastUsed: number;
  /** Free (F): requests, tokens/min, slots, month tokens, month cost. */
  fr: number;
  ft: number;
  fc: number;
  fm: number;
  fmc: number;
  /** In flight (I): calls, month tokens, month cost. */
  ic: number;
  im: number;
  imc: number;
  /** Settled, not yet declared (A): month tokens, month cost. */
  am: number;
  amc: number;
  /** Target sizes (for top-ups). */
  readonly target: { r: number; t: number; c: number; m: number; mc: number };
  syncing: boolean;
  /** Redis's last answer for this level (x-ratelimit-* headers), less what was spent since. */
  stats: LevelStats;
  /** Tenant month usage after the last sync (-1 unknown). */
  monthTokens: number;
  monthCost: number;
}

export function leaseTargets(l: LevelSpec, est: number, estCost: number): Lease['target'] | undefined {
  const t = { r: 0, t: 0, c: 0, m: 0, mc: 0 };
  const size = (limit: number, share: number, need: number): number | undefined => {
    if (limit < 0) return 0;
    const s = Math.floor(limit * share);
    return s >= Math.max(1, need * MIN_LEASE_CALLS) ? s : undefined;
  };
  const r = size(l.rpm, SHARE, 1);
  const tt = size(l.tpm, SHARE, est);
  const c = size(l.conc, SHARE, 1);
  const m = size(l.mtok, MONTH_SHARE, est);
  const mc = size(l.mcost, MONTH_SHARE, estCost);
  if (r === undefined || tt === undefined || c === undefined || m === undefined || mc === undefined) return undefined;
  t.r = r;
  t.t = tt;
  t.c = c;
  t.m = m;
  t.mc = mc;
  return t;
}

/** Whether Redis's last answer for a level (after an exact admission) leaves room for a lease of `t`. */
export function roomFor(l: LevelSpec, s: LevelStats, t: Lease['target']): boolean {
  if (l.rpm >= 0 && s.rpmRemaining - t.r < l.rpm * HEADROOM) return false;
  if (l.tpm >= 0 && s.tpmRemaining - t.t < l.tpm * HEADROOM) return false;
  if (l.conc >= 0 && (s.inFlight < 0 || l.conc - s.inFlight - t.c < l.conc * HEADROOM)) return false;
  if (l.mtok >= 0 && (s.monthTokens < 0 || l.mtok - s.monthTokens - t.m < l.mtok * MONTH_HEADROOM)) return false;
  if (l.mcost >= 0 && (s.monthCost < 0 || l.mcost - s.monthCost - t.mc < l.mcost * MONTH_HEADROOM)) return false;
  return true;
}

/**
 * The sync of several leases in one call. KEYS: 5 per level (levelKeys). ARGV: now, ttl,
 * proc, n, then per level (25 values): 5 limits; want (1 = top up / acquire, 0 = drain);
 * rpm: R, D; tpm: R, D; conc: hold (I + F at send), R, D; month tokens: H, A, R, D;
 * month cost: H, A, R, D; headroom, month headroom (‰). Answers per level: status
 * (1 granted/kept, 0 near a limit: nothing added, 2 lost: the hold had expired), Dr, Dt, Dc,
 * Dm, Dmc, rpm remaining, tpm remaining, slots in use, month tokens, month cost.
 */
const SYNC_FN = `
local now = tonumber(ARGV[1]); local ttl = tonumber(ARGV[2]); local proc = ARGV[3]; local n = tonumber(ARGV[4])
local exp = now + ttl
local out = {}
for i = 0, n - 1 do
  local a = 5 + i * 25; local k = i * 5
  local rpm = tonumber(ARGV[a]); local tpm = tonumber(ARGV[a + 1]); local conc = tonumber(ARGV[a + 2])
  local mtok = tonumber(ARGV[a + 3]); local mcost = tonumber(ARGV[a + 4]); local want = tonumber(ARGV[a + 5])
  local Rr = tonumber(ARGV[a + 6]); local Dr = tonumber(ARGV[a + 7])
  local Rt = tonumber(ARGV[a + 8]); local Dt = tonumber(ARGV[a + 9])
  local Hc = tonumber(ARGV[a + 10]); local Rc = tonumber(ARGV[a + 11]); local Dc = tonumber(ARGV[a + 12])
  local Hm = tonumber(ARGV[a + 13]); local Am = tonumber(ARGV[a + 14]); local Rm = tonumber(ARGV[a + 15]); local Dm = tonumber(ARGV[a + 16])
  local Hmc = tonumber(ARGV[a + 17]); local Amc = tonumber(ARGV[a + 18]); local Rmc = tonumber(ARGV[a + 19]); local Dmc = tonumber(ARGV[a + 20])
  local hr = tonumber(ARGV[a + 21]) / 1000; local mhr = tonumber(ARGV[a + 22]) / 1000
  local status = 1
  if want == 0 then Dr = 0; Dt = 0; Dc = 0; Dm = 0; Dmc = 0 end
  -- return what is handed back (buckets capped at their capacity)
  local vr = -1; local vt = -1
  if rpm >= 0 then vr = bucket(KEYS[k + 1], rpm, now) + Rr; if vr > rpm then vr = rpm end end
  if tpm >= 0 then vt = bucket(KEYS[k + 2], tpm, now) + Rt; if vt > tpm then vt = tpm end end
  -- monthly: declare usage, return, detect a hold that expired meanwhile
  local ms = {}
  for j = 0, 1 do
    local ck = KEYS[k + 4 + j]; local lim = mtok; local H = Hm; local A = Am; local R = Rm
    if j == 1 then lim = mcost; H = Hmc; A = Amc; R = Rmc end
    local m = -1
    if redis.call('EXISTS', ck) == 1 then
      sweep(ck, now)
      if lim >= 0 then
        if H > 0 and redis.call('HEXISTS', ck .. ':h', proc) == 0 then
          -- swept while this process was away: charge what it still holds or used, lease nothing more
          redis.call('INCRBY', ck, H - R); status = 2
        elseif R ~= 0 then redis.call('DECRBY', ck, R) end
      elseif A ~= 0 then redis.call('INCRBY', ck, A) end
      m = tonumber(redis.call('GET', ck))
    elseif lim >= 0 then status = 0 end
    ms[j] = m
  end
  -- concurrency: slots in use by calls and by other processes' leases
  local used = -1
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
    local own = redis.call('HGET', KEYS[k + 3] .. ':l', proc)
    local ownn = 0
    if own then ownn = tonumber(string.sub(own, 1, string.find(own, ':', 1, true) - 1)) end
    used = redis.call('ZCARD', KEYS[k + 3]) + leasedSlots(KEYS[k + 3], now) - ownn + Hc - Rc
  end
  if status == 2 then Dr = 0; Dt = 0; Dc = 0; Dm = 0; Dmc = 0 end
  -- every sync of a lease in use checks the headroom (another process may have used it): near a limit, it drains
  if status == 1 and want == 1 then
    local ok = true
    if rpm >= 0 and vr - Dr < rpm * hr then ok = false end
    if tpm >= 0 and vt - Dt < tpm * hr then ok = false end
    if conc >= 0 and conc - used - Dc < conc * hr then ok = false end
    if mtok >= 0 and mtok - ms[0] - Dm < mtok * mhr then ok = false end
    if mcost >= 0 and mcost - ms[1] - Dmc < mcost * mhr then ok = false end
    if not ok then status = 0; Dr = 0; Dt = 0; Dc = 0; Dm = 0; Dmc = 0 end
  end
  if status == 0 then Dr = 0; Dt = 0; Dc = 0; Dm = 0; Dmc = 0 end
  if rpm >= 0 then vr = vr - Dr; redis.call('HSET', KEYS[k + 1], 'v', vr, 't', now); redis.call('PEXPIRE', KEYS[k + 1], 120000) end
  if tpm >= 0 then vt = vt - Dt; redis.call('HSET', KEYS[k + 2], 'v', vt, 't', now); redis.call('PEXPIRE', KEYS[k + 2], 120000) end
  if conc >= 0 then
    local hold = Hc - Rc + Dc
    if hold > 0 then redis.call('HSET', KEYS[k + 3] .. ':l', proc, hold .. ':' .. exp); redis.call('PEXPIRE', KEYS[k + 3] .. ':l', 86400000)
    else redis.call('HDEL', KEYS[k + 3] .. ':l', proc) end
    used = used + Dc
  end
  for j = 0, 1 do
    local ck = KEYS[k + 4 + j]; local lim = mtok; local H = Hm; local A = Am; local R = Rm; local D = Dm
    if j == 1 then lim = mcost; H = Hmc; A = Amc; R = Rmc; D = Dmc end
    if lim >= 0 and ms[j] >= 0 then
      if D ~= 0 then ms[j] = redis.call('INCRBY', ck, D) end
      local hold = H - A - R + D
      if hold > 0 then redis.call('HSET', ck .. ':h', proc, hold .. ':' .. exp); redis.call('PEXPIRE', ck .. ':h', 86400000)
      else redis.call('HDEL', ck .. ':h', proc) end
    end
  end
  local fr = -1; local ft = -1
  if vr >= 0 then fr = math.floor(vr) end
  if vt >= 0 then ft = math.floor(vt) end
  out[#out + 1] = {status, Dr, Dt, Dc, Dm, Dmc, fr, ft, used, ms[0], ms[1]}
end
return out
`;

export const LEASE_SYNC_LUA = LEASE_COMMON + SYNC_FN;

export interface SyncItem {
  readonly lease: Lease;
  /** Values sent (subtracted from the lease when sent, so admissions meanwhile cannot spend them twice). */
  readonly want: boolean;
  readonly R: { r: number; t: number; c: number; m: number; mc: number };
  readonly D: { r: number; t: number; c: number; m: number; mc: number };
  readonly A: { m: number; mc: number };
  readonly Hc: number;
  readonly Hm: number;
  readonly Hmc: number;
}

export interface SyncAnswer {
  readonly status: 0 | 1 | 2;
  readonly D: { r: number; t: number; c: number; m: number; mc: number };
  readonly rpmRemaining: number;
  readonly tpmRemaining: number;
  readonly inUse: number;
  readonly monthTokens: number;
  readonly monthCost: number;
}

interface Scripted {
  enclaveLeaseSync(numKeys: number, ...args: (string | number)[]): Promise<number[][]>;
}

/** Runs one sync script call for the given leases. */
export async function syncLeases(redis: Redis, proc: string, now: number, items: readonly SyncItem[]): Promise<SyncAnswer[]> {
  if (!('enclaveLeaseSync' in redis)) redis.defineCommand('enclaveLeaseSync', { lua: LEASE_SYNC_LUA });
  const keys: string[] = [];
  const argv: (string | number)[] = [now, LEASE_TTL_MS, proc, items.length];
  for (const it of items) {
    const l = it.lease.spec;
    for (const k of it.lease.keys) keys.push(k);
    argv.push(l.rpm, l.tpm, l.conc, l.mtok, l.mcost, it.want ? 1 : 0, it.R.r, it.D.r, it.R.t, it.D.t, it.Hc, it.R.c, it.D.c, it.Hm, it.A.m, it.R.m, it.D.m, it.Hmc, it.A.mc, it.R.mc, it.D.mc, HEADROOM * 1000, MONTH_HEADROOM * 1000, 0, 0);
  }
  const rs = await (redis as unknown as Scripted).enclaveLeaseSync(keys.length, ...keys, ...argv);
  return rs.map((r) => ({
    status: Number(r[0]) as 0 | 1 | 2,
    D: { r: Number(r[1]), t: Number(r[2]), c: Number(r[3]), m: Number(r[4]), mc: Number(r[5]) },
    rpmRemaining: Number(r[6]),
    tpmRemaining: Number(r[7]),
    inUse: Number(r[8]),
    monthTokens: Number(r[9]),
    monthCost: Number(r[10]),
  }));
}

export function newLease(tenantId: string, spec: LevelSpec, monthId: string, target: Lease['target']): Lease {
  return {
    key: `${tenantId}|${spec.level}|${spec.id}`,
    tenantId,
    spec,
    monthId,
    keys: levelKeys(tenantId, spec, monthId),
    active: false,
    okUntil: 0,
    lastUsed: Date.now(),
    fr: 0,
    ft: 0,
    fc: 0,
    fm: 0,
    fmc: 0,
    ic: 0,
    im: 0,
    imc: 0,
    am: 0,
    amc: 0,
    target,
    syncing: false,
    stats: { rpmRemaining: -1, rpmResetMs: 0, tpmRemaining: -1, tpmResetMs: 0, inFlight: -1, monthTokens: -1, monthCost: -1 },
    monthTokens: -1,
    monthCost: -1,
  };
}
