import type { Redis } from 'ioredis';

/**
 * The cache's Redis layout, per tenant (one hash tag per tenant, so a tenant's keys share a
 * slot and a script may touch them together):
 *   enclave:cache:{<tenant>}:e:<key>   the encrypted entry, with its TTL
 *   enclave:cache:{<tenant>}:z         sorted set: entry key → its expiry (ms)
 *   enclave:cache:{<tenant>}:s         hash: entry key → its size in bytes
 *   enclave:cache:{<tenant>}:b         the tenant's stored bytes
 * A store is one script: it forgets entries past their expiry, writes the new one and evicts
 * the soonest-expiring entries until the tenant is under its size cap (so the cap holds at
 * every moment, across processes and replicas). Nothing here sees plaintext.
 */
export function tenantPrefix(tenantId: string): string {
  return `enclave:cache:{${tenantId}}:`;
}

export function entryKey(tenantId: string, key: string): string {
  return `${tenantPrefix(tenantId)}e:${key}`;
}

const STORE_LUA = `
local p = KEYS[1]
local member, value = ARGV[1], ARGV[2]
local ttl, expiresAt, now, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local z, s, b = p .. 'z', p .. 's', p .. 'b'
local evicted = 0
local function forget(m)
  local sz = tonumber(redis.call('HGET', s, m) or '0')
  redis.call('HDEL', s, m)
  redis.call('ZREM', z, m)
  redis.call('DEL', p .. 'e:' .. m)
  return redis.call('DECRBY', b, sz)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 200)) do forget(m) end
if redis.call('HEXISTS', s, member) == 1 then forget(member) end
redis.call('SET', p .. 'e:' .. member, value, 'PX', ttl)
redis.call('ZADD', z, expiresAt, member)
redis.call('HSET', s, member, string.len(value))
local total = redis.call('INCRBY', b, string.len(value))
while total > cap do
  local first = redis.call('ZRANGE', z, 0, 0)
  if #first == 0 then break end
  total = forget(first[1])
  evicted = evicted + 1
end
for _, k in ipairs({z, s, b}) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return {evicted, total}
`;

const PURGE_LUA = `
local p = KEYS[1]
local n = 0
for _, m in ipairs(redis.call('ZRANGE', p .. 'z', 0, -1)) do
  n = n + redis.call('DEL', p .. 'e:' .. m)
end
redis.call('DEL', p .. 'z', p .. 's', p .. 'b')
return n
`;

interface CacheCommands {
  enclaveCacheStore(prefix: string, member: string, value: string, ttlMs: number, expiresAt: number, now: number, cap: number): Promise<[number, number]>;
  enclaveCachePurge(prefix: string): Promise<number>;
}

export class CacheRedis {
  private readonly r: Redis & CacheCommands;

  constructor(redis: Redis) {
    if (!('enclaveCacheStore' in redis)) {
      redis.defineCommand('enclaveCacheStore', { numberOfKeys: 1, lua: STORE_LUA });
      redis.defineCommand('enclaveCachePurge', { numberOfKeys: 1, lua: PURGE_LUA });
    }
    this.r = redis as Redis & CacheCommands;
    // Loaded ahead (and again after a reconnect: a restarted Redis forgot it), so a store is one
    // EVALSHA: a first NOSCRIPT round trip would let the next call's lookup overtake the store.
    const load = (): void => {
      for (const lua of [STORE_LUA, PURGE_LUA]) redis.script('LOAD', lua).catch(() => undefined);
    };
    if (redis.status === 'ready') load();
    redis.on('ready', load);
  }

  /** The entries under these keys (null where there is none), in order. */
  get(keys: readonly string[]): Promise<(string | null)[]> {
    return keys.length === 1 ? this.r.get(keys[0]!).then((v) => [v]) : this.r.mget(...keys);
  }

  /** Stores one entry; resolves with the entries evicted to stay under the cap. */
  async put(tenantId: string, key: string, value: string, ttlMs: number, capBytes: number, now: number): Promise<{ evicted: number; bytes: number }> {
    const [evicted, bytes] = await this.r.enclaveCacheStore(tenantPrefix(tenantId), key, value, ttlMs, now + ttlMs, now, capBytes);
    return { evicted: Number(evicted), bytes: Number(bytes) };
  }

  /** Drops every entry of the tenant (the cache turned off, or an administrator's purge). */
  async purge(tenantId: string): Promise<number> {
    return Number(await this.r.enclaveCachePurge(tenantPrefix(tenantId)));
  }

  /** The tenant's stored bytes (admin API). */
  async bytes(tenantId: string): Promise<number> {
    return Number((await this.r.get(`${tenantPrefix(tenantId)}b`)) ?? 0);
  }
}
