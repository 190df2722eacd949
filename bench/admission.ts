/**
 * Metering admission + settlement on the hot path: the real Admission (plan/limit caches,
 * month window, licence check, one Lua round trip to a local redis-server for key + user +
 * tenant levels with every limit kind set, then the settlement script). Sequential calls,
 * so the numbers are latency, not throughput.
 *
 *   node --import tsx bench/admission.ts          (REDIS_URL, or a redis-server on PATH)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { unrestricted } from '../server/access/entitlements.js';
import { systemClock } from '../server/clock.js';
import { databaseFile, openDatabase } from '../server/db/connection.js';
import { migrate } from '../server/db/migrator.js';
import { sqliteStore } from '../server/db/store.js';
import { createTenantStore } from '../server/db/tenant-store.js';
import { createIdentity, systemContext } from '../server/identity/index.js';
import { createMetering } from '../server/metering/index.js';
import { Metrics } from '../server/metrics/registry.js';
import { findExecutable } from '../server/redis/embedded.js';
import { freePort, pingTcp } from '../server/redis/ping.js';
import type { RequestContext } from '../server/context.js';

const dir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-admission-'));
let url = process.env.REDIS_URL;
let child: ReturnType<typeof spawn> | undefined;
if (!url) {
  const port = await freePort();
  child = spawn(findExecutable('redis-server')!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], { stdio: 'ignore' });
  while (!(await pingTcp('127.0.0.1', port, 200))) await new Promise((r) => setTimeout(r, 25));
  url = `redis://127.0.0.1:${port}/0`;
}
const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
await new Promise((r) => redis.once('ready', r));
await redis.flushdb();

const db = openDatabase(databaseFile(dir));
migrate(db.$client, { appVersion: 'bench' });
const log = pino({ level: 'silent' });
const benchStore = sqliteStore(db);
const identity = createIdentity({ store: benchStore, tenantStore: createTenantStore(benchStore), clock: systemClock, log, passwordLogN: 10 });
const sctx = systemContext(log, systemClock, 'bench');
const metering = createMetering({ store: sqliteStore(db), redis, clock: systemClock, log, metrics: new Metrics(), entitlements: () => unrestricted, audit: () => identity.audit, failureMode: 'fail-open' });
const tenant = await identity.tenants.create(sctx, { slug: 'bench' });
const all = { requests_per_minute: 1e9, tokens_per_minute: 1e12, concurrent_requests: 1e6, monthly_tokens: 1e13, monthly_cost_micros: 1e13 };
await metering.plans.upsert(sctx, { name: 'bench', limits: all });
await metering.plans.assign(sctx, tenant.id, 'bench');
await metering.repo.setLimits(tenant.id, 'user', 'usr_bench', JSON.stringify(all), Date.now());
await metering.repo.setLimits(tenant.id, 'key', 'key_bench', JSON.stringify(all), Date.now());
await metering.revision.bump();
const ctx: RequestContext = { ...systemContext(log, systemClock, 'bench'), tenant: { id: tenant.id, slug: 'bench' }, principal: { kind: 'api_key', id: 'key_bench', keyId: 'key_bench', userId: 'usr_bench', role: 'member' } };
const ctxNone: RequestContext = { ...ctx, tenant: { id: (await identity.tenants.create(sctx, { slug: 'free' })).id, slug: 'free' } };

async function run(c: RequestContext, n: number) {
  const adm: number[] = [];
  const both: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await metering.hook.admit(c, { model: 'gpt-4o', promptTokens: 50, maxTokens: 200 });
    const t1 = process.hrtime.bigint();
    await metering.admission.settle(r, 180, 1234);
    const t2 = process.hrtime.bigint();
    adm.push(Number(t1 - t0) / 1e3);
    both.push(Number(t2 - t0) / 1e3);
  }
  const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]!.toFixed(1);
  return { admit_p50_us: pct(adm, 50), admit_p99_us: pct(adm, 99), admit_settle_p50_us: pct(both, 50), admit_settle_p99_us: pct(both, 99) };
}

await run(ctx, 3000); // warm-up (JIT, script cache, counters seeded)
const limited = await run(ctx, 20_000);
await run(ctxNone, 2000);
const unlimited = await run(ctxNone, 20_000);
const result = { calls: 20_000, levels: 3, limited, no_limits: unlimited, target_p50_us: 200 };
console.log(JSON.stringify(result));
await metering.stop();
redis.disconnect();
db.$client.close();
child?.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });
if (Number(limited.admit_settle_p50_us) > 200) process.exitCode = 1;
