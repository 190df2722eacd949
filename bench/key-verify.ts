/**
 * API key verification on the hot path (cache hit): parse + checksum, cache lookup by
 * prefix, SHA-256 + timingSafeEqual, revocation/expiry/suspension checks. Builds the real
 * identity services on a temp database.
 *
 *   node --import tsx bench/key-verify.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { systemClock } from '../server/clock.js';
import { databaseFile, openDatabase } from '../server/db/connection.js';
import { migrate } from '../server/db/migrator.js';
import { sqliteStore } from '../server/db/store.js';
import { createTenantStore } from '../server/db/tenant-store.js';
import { createIdentity, systemContext } from '../server/identity/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-keys-'));
const db = openDatabase(databaseFile(dir));
migrate(db.$client, { appVersion: 'bench' });
const log = pino({ level: 'silent' });
const benchStore = sqliteStore(db);
const identity = createIdentity({ store: benchStore, tenantStore: createTenantStore(benchStore), clock: systemClock, log, passwordLogN: 10 });
const ctx = systemContext(log, systemClock, 'bench');
const tenant = await identity.tenants.create(ctx, { slug: 'bench' });
const tctx = await identity.tenants.scopeTo(ctx, tenant.id);
const secrets: string[] = [];
for (let i = 0; i < 1000; i++) secrets.push((await identity.keys.create(tctx, { name: `k${i}`, ownerUserId: null })).secret);

for (const s of secrets) (await identity.keys.verify(s)); // warm the cache
const N = 200_000;
for (let i = 0; i < 20_000; i++) (await identity.keys.verify(secrets[i % secrets.length]!)); // JIT warm-up
const samples: number[] = [];
const batch = 1000;
const t0 = process.hrtime.bigint();
for (let b = 0; b < N / batch; b++) {
  const s = process.hrtime.bigint();
  for (let i = 0; i < batch; i++) (await identity.keys.verify(secrets[(b * batch + i) % secrets.length]!));
  samples.push(Number(process.hrtime.bigint() - s) / batch / 1000);
}
const total = Number(process.hrtime.bigint() - t0) / 1e3;
samples.sort((a, b) => a - b);
const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!.toFixed(2);
const result = {
  verifications: N,
  keys: secrets.length,
  mean_us: (total / N).toFixed(2),
  p50_us: pct(50),
  p99_us: pct(99),
  target_us: 20,
};
console.log(JSON.stringify(result));
await identity.stop();
db.$client.close();
rmSync(dir, { recursive: true, force: true });
if (Number(result.p99_us) > 20) process.exitCode = 1;
