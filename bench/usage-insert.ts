/**
 * Usage-record insert speed (issue 22): the metering flush writes one row per AI call. Same
 * run, same rows, alternating rounds: drizzle's multi-row INSERT builder (how UsageRepo wrote
 * before) against the Store's prepared insert (server/db/store.ts prepareInsert, what
 * UsageRepo.insertMany uses now), in the writer's slices of 64 rows. Reports this process's CPU
 * per row (user + system: what the api process pays) and wall time per row, median of rounds.
 *
 *   node --import tsx bench/usage-insert.ts [--rows 20000] [--rounds 5] [--slice 64]
 *   (--slice 1: one row per write, what a lone call costs now that each answer waits for its record)
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/bench node --import tsx bench/usage-insert.ts
 *
 * SQLite always (a temp data dir); PostgreSQL too when BENCH_DATABASE_URL names a database
 * (its usage tables are emptied first: use a scratch database).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { databaseFile, openDatabase } from '../server/db/connection.js';
import { migrate } from '../server/db/migrator.js';
import { openPostgres } from '../server/db/pg/connection.js';
import { migratePostgres } from '../server/db/pg/migrator.js';
import { UsageRepo, type UsageRow } from '../server/db/repos/usage.js';
import { postgresStore, sqliteStore, type Store } from '../server/db/store.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const ROWS = arg('rows', 20_000);
const ROUNDS = arg('rounds', 5);
const SLICE = arg('slice', 64);

let seq = 0;
function row(tenantId: string): UsageRow {
  seq++;
  return {
    id: `use_bench_${seq}`,
    tenantId,
    requestId: `req_bench_${seq}`,
    userId: 'usr_bench',
    keyId: 'key_bench',
    workflow: null,
    endpoint: 'chat',
    api: 'chat',
    alias: 'gpt-4o',
    deploymentId: 'prv_bench',
    provider: 'openai',
    model: 'gpt-4o-2024-08-06',
    boundary: 'public',
    classification: 'internal',
    policy: '{"decision":"allow"}',
    promptTokens: 120,
    completionTokens: 48,
    tokensEstimated: false,
    costMicros: 1234,
    priceVersion: 1,
    latencyMs: 420,
    ttftMs: 130,
    stream: seq % 2 === 0,
    attempts: 1,
    status: 'ok',
    httpStatus: 200,
    errorCode: null,
    createdAt: Date.now(),
  };
}

type Writer = (rows: UsageRow[]) => Promise<void>;

/** The old path: drizzle's multi-row builder, one statement per slice. */
const drizzleWriter = (s: Store): Writer => async (rows) => {
  await s.run(s.q.insert(s.t.usageRecords).values(rows));
};

async function round(write: Writer, tenantId: string): Promise<{ cpuUs: number; wallUs: number }> {
  const rows = Array.from({ length: ROWS }, () => row(tenantId));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += SLICE) await write(rows.slice(i, i + SLICE));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / ROWS, wallUs: (wall * 1000) / ROWS };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function bench(name: string, s: Store): Promise<void> {
  const tenantId = 'ten_bench';
  await s.run(s.q.delete(s.t.usageRollups));
  await s.run(s.q.delete(s.t.usageRecords));
  await s.run(s.q.delete(s.t.tenants).where(sql`${s.t.tenants.id} = ${tenantId}`));
  await s.run(s.q.insert(s.t.tenants).values({ id: tenantId, slug: 'bench', name: 'bench', createdAt: Date.now(), updatedAt: Date.now() }));
  const repo = new UsageRepo(s);
  const writers: [string, Writer][] = [
    ['drizzle multi-row builder (before)', drizzleWriter(s)],
    ['prepared insert (after)', (rows) => repo.insertMany(rows)],
  ];
  // Warm-up: JIT, statement caches, the pool's connection.
  for (const [, w] of writers) await w(Array.from({ length: SLICE * 4 }, () => row(tenantId)));
  const results = new Map<string, { cpuUs: number; wallUs: number }[]>(writers.map(([n]) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [n, w] of r % 2 ? [...writers].reverse() : writers) results.get(n)!.push(await round(w, tenantId));
  console.log(`\n${name}: ${ROWS} rows per round in slices of ${SLICE}, ${ROUNDS} rounds (alternating), median`);
  for (const [n, rs] of results) {
    console.log(`  ${n.padEnd(36)} CPU ${median(rs.map((x) => x.cpuUs)).toFixed(1).padStart(6)} µs/row   wall ${median(rs.map((x) => x.wallUs)).toFixed(1).padStart(6)} µs/row`);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-usage-'));
try {
  const db = openDatabase(databaseFile(dir));
  migrate(db.$client);
  const lite = sqliteStore(db);
  await bench('SQLite (WAL, synchronous=NORMAL)', lite);
  await lite.close();
  const url = process.env.BENCH_DATABASE_URL;
  if (url) {
    const pg = openPostgres({ url, poolMax: 4, applicationName: 'bench-usage-insert' });
    await migratePostgres(pg.$client);
    const store = postgresStore(pg);
    await bench('PostgreSQL', store);
    await store.close();
  } else {
    console.log('\nPostgreSQL: skipped (set BENCH_DATABASE_URL to a scratch database)');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
