import { eq, is, sql } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type PgDb } from '../../server/db/pg/connection.js';
import { loadPgMigrations, migratePostgres, pgMigrationStatus } from '../../server/db/pg/migrator.js';
import * as pgSchema from '../../server/db/pg/schema.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/app.js';
import { freshDatabase, startPostgres } from '../helpers/postgres.js';

/**
 * The PostgreSQL migrator on a real PostgreSQL (test/helpers/postgres.ts): migrations-pg applies
 * on an empty database, replicas migrating at once serialise on the advisory lock, edited or
 * unknown migrations are refused, and the schema's native types round-trip to the same row
 * types as SQLite (numbers for times, booleans, JSON text).
 */

const open: PgDb[] = [];
function db(url: string, poolMax = 4): PgDb {
  const d = openPostgres({ url, poolMax });
  open.push(d);
  return d;
}

afterAll(async () => {
  await Promise.all(open.map((d) => d.$client.end()));
});

describe('PostgreSQL migrator', () => {
  beforeAll(async () => {
    const server = await startPostgres();
    // Measured once per run (the first file to need it pays); shown in the test output.
    console.info(`test PostgreSQL ${server.version}: started in ${server.startMs} ms (initdb + first connection)`);
  }, 60_000); // initdb on a busy 2-core machine: seconds (8 s seen at load 13)

  it('applies every migration to an empty database, then has nothing to do', async () => {
    const d = db(await freshDatabase('migr'));
    const all = loadPgMigrations().map((m) => m.tag);
    const first = await migratePostgres(d.$client, { appVersion: 'test' });
    expect(first.applied).toEqual(all);
    expect(first.status.pending).toEqual([]);
    const again = await migratePostgres(d.$client, { appVersion: 'test' });
    expect(again.applied).toEqual([]);
    const tables = await d.$client.query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'");
    const expected = Object.values(pgSchema).filter((v) => is(v, PgTable)).length;
    expect(Number(tables.rows[0]!.n)).toBe(expected + 1); // + schema_migrations
  });

  it('two migrators starting together on one empty database both succeed and the schema is applied once', async () => {
    const url = await freshDatabase('race');
    const a = db(url, 2);
    const b = db(url, 2);
    const [ra, rb] = await Promise.all([migratePostgres(a.$client, { appVersion: 'a' }), migratePostgres(b.$client, { appVersion: 'b' })]);
    const all = loadPgMigrations().map((m) => m.tag);
    // One of them applied everything, the other waited for the lock and found nothing to do.
    expect([ra.applied, rb.applied].sort((x, y) => y.length - x.length)).toEqual([all, []]);
    const rows = await a.$client.query<{ tag: string; app_version: string }>('SELECT tag, app_version FROM schema_migrations ORDER BY idx');
    expect(rows.rows.map((r) => r.tag)).toEqual(all);
    expect(new Set(rows.rows.map((r) => r.app_version)).size).toBe(1);
    // No lock left behind (in this database: pg_locks is cluster-wide, other files append audit entries under their own).
    const locks = await a.$client.query("SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()");
    expect(locks.rowCount).toBe(0);
  });

  it('refuses a database with a migration this code does not know, or one edited after it was applied', async () => {
    const d = db(await freshDatabase('newer'));
    await migratePostgres(d.$client);
    await d.$client.query("INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES (99, '0099_future', 'x', now(), 'future')");
    await expect(migratePostgres(d.$client)).rejects.toThrow(/newer than this Enclave: it has migration 0099_future/);
    await d.$client.query('DELETE FROM schema_migrations WHERE idx = 99');
    const edited = loadPgMigrations().map((m, i) => (i === 0 ? { ...m, hash: 'edited' } : m));
    await expect(migratePostgres(d.$client, { migrations: edited })).rejects.toThrow(/0000_foundation was changed after it was applied/);
    expect((await pgMigrationStatus(d.$client)).pending).toEqual([]);
  });

  it('a failing migration rolls back whole and is not recorded', async () => {
    const d = db(await freshDatabase('fail'));
    const bad = [...loadPgMigrations(), { idx: 50, tag: '0050_bad', hash: 'h', statements: ['CREATE TABLE half_done (id text)', 'SELECT * FROM no_such_table'] }];
    await expect(migratePostgres(d.$client, { migrations: bad })).rejects.toThrow(/migration 0050_bad failed: relation "no_such_table" does not exist/);
    const half = await d.$client.query("SELECT to_regclass('half_done') IS NULL AS gone");
    expect(half.rows[0]!.gone).toBe(true);
    const status = await pgMigrationStatus(d.$client, bad);
    expect(status.pending).toEqual(['0050_bad']);
  });

  it('native types read back as the SQLite row types: times as ms numbers, booleans, JSON text kept exact where hashed', async () => {
    const d = db(await freshDatabase('types'));
    await migratePostgres(d.$client);
    const now = Date.UTC(2026, 11, 3, 13, 37, 1, 234);
    await d.insert(pgSchema.tenants).values({ id: 'ten_1', slug: 'acme', name: 'Acme', createdAt: now, updatedAt: now });
    const t = (await d.select().from(pgSchema.tenants).where(eq(pgSchema.tenants.id, 'ten_1')))[0]!;
    expect(t).toMatchObject({ createdAt: now, updatedAt: now, status: 'active', defaultClassification: 'internal', plan: null });
    const typed = await d.$client.query<{ t: string }>("SELECT pg_typeof(created_at)::text AS t FROM tenants WHERE id = 'ten_1'");
    expect(typed.rows[0]!.t).toBe('timestamp with time zone');

    const details = '{"b":1,"a":[1, 2],"z":"ü"}'; // key order and spacing that jsonb would change
    await d.insert(pgSchema.auditLog).values({
      seq: 1, id: 'aud_1', at: now, tenantRef: null, actorType: 'system', actorId: null, action: 'test.action', targetType: null, targetId: null,
      outcome: 'allowed', reason: null, ip: null, userAgent: null, requestId: null, details, prevHash: '0'.repeat(64), hash: 'h',
    });
    const a = (await d.select().from(pgSchema.auditLog))[0]!;
    expect(a.details).toBe(details);
    expect(a.at).toBe(now);
    expect(a.seq).toBe(1);

    await d.insert(pgSchema.users).values({ id: 'usr_1', email: 'a@example.com', name: 'A', platformAdmin: true, createdAt: now, updatedAt: now });
    await d.insert(pgSchema.apiKeys).values({
      id: 'key_1', tenantId: 'ten_1', ownerUserId: 'usr_1', name: 'k', prefix: 'enk_abc', keyHash: 'x', scopes: '["chat"]', createdAt: now, createdBy: 'system:test',
    });
    const k = (await d.select().from(pgSchema.apiKeys))[0]!;
    expect(JSON.parse(k.scopes)).toEqual(['chat']);
    expect(JSON.parse(k.allowedModels)).toEqual([]);
    expect(k.expiresAt).toBeNull();
    const u = (await d.select().from(pgSchema.users))[0]!;
    expect(u.platformAdmin).toBe(true);

    // A counter past 2^31 (tokens, micro-units) round-trips as a number.
    const big = 3_000_000_000_123;
    await d.insert(pgSchema.usageRecords).values({
      id: 'use_1', tenantId: 'ten_1', requestId: 'req_1', endpoint: '/v1/chat/completions', promptTokens: big, completionTokens: 5, costMicros: big, latencyMs: 12, status: 'ok', httpStatus: 200, createdAt: now,
    });
    const r = (await d.select().from(pgSchema.usageRecords))[0]!;
    expect(r.promptTokens).toBe(big);
    expect(r.costMicros).toBe(big);
  });

  it('the usage rollup trigger sums per UTC hour, whatever the session time zone', async () => {
    const d = db(await freshDatabase('rollup'), 1);
    await migratePostgres(d.$client);
    const hour = Date.UTC(2026, 0, 1, 10);
    await d.insert(pgSchema.tenants).values({ id: 'ten_r', slug: 'r', name: 'R', createdAt: hour, updatedAt: hour });
    await d.execute(sql`SET TIME ZONE 'Asia/Kolkata'`); // +05:30: a local-time truncation would land on :30
    const rec = (id: string, at: number, status: string, prompt: number) => ({
      id, tenantId: 'ten_r', requestId: id, endpoint: '/v1/chat/completions', model: 'm', promptTokens: prompt, completionTokens: 1, costMicros: 10, latencyMs: 1, status, httpStatus: 200, createdAt: at,
    });
    await d.insert(pgSchema.usageRecords).values([rec('u1', hour + 1000, 'ok', 3), rec('u2', hour + 3_599_999, 'error', 4), rec('u3', hour + 3_600_000, 'ok', 5)]);
    const rows = await d.select().from(pgSchema.usageRollups).orderBy(pgSchema.usageRollups.hour);
    expect(rows.map((r) => ({ hour: r.hour, requests: r.requests, errors: r.errors, promptTokens: r.promptTokens, model: r.model }))).toEqual([
      { hour, requests: 2, errors: 1, promptTokens: 7, model: 'm' },
      { hour: hour + 3_600_000, requests: 1, errors: 0, promptTokens: 5, model: 'm' },
    ]);
  });

  it('enclave db status / migrate: two processes migrating at once both succeed; status says what is pending and refuses a newer schema', async () => {
    const url = await freshDatabase('cli');
    const env = { ENCLAVE_DATA_DIR: tempDir() };
    const all = loadPgMigrations().map((m) => m.tag);
    const before = await runCli(['db', 'status', '--url', url, '--json'], env);
    expect(before.code).toBe(1); // pending migrations: a warning
    expect(JSON.parse(before.stdout)).toMatchObject({ tls: false, inRecovery: false, migrations: { applied: [], pending: all }, problem: null });
    expect((await runCli(['db', 'migrate', '--url', url, '--dry-run'], env)).stdout).toBe(`would apply: ${all.join(', ')}\n`);

    // Two replicas' migration steps (or two Jobs) at once: real processes, one advisory lock.
    const [a, b] = await Promise.all([runCli(['db', 'migrate', '--url', url, '--json'], env), runCli(['db', 'migrate', '--url', url, '--json'], env)]);
    expect([a.code, b.code, a.stderr, b.stderr]).toEqual([0, 0, '', '']);
    const applied = [JSON.parse(a.stdout).applied, JSON.parse(b.stdout).applied].sort((x: string[], y: string[]) => y.length - x.length);
    expect(applied).toEqual([all, []]);

    const after = await runCli(['db', 'status', '--url', url], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/^PostgreSQL \d+\.\d+.*, no TLS\nconnections: \d+ to this database, \d+ of \d+ on the server\nmigrations: \d+ applied, 0 pending; head \S+\n$/);

    const d = db(url, 1);
    await d.$client.query("INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES (99, '0099_future', 'x', now(), 'future')");
    const newer = await runCli(['db', 'status', '--url', url], env);
    expect(newer.code).toBe(2);
    expect(newer.stderr).toBe('enclave: the database has migrations this version does not know or that were edited (0099_future)\n');
    const refused = await runCli(['db', 'migrate', '--url', url], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^enclave: database schema is newer than this Enclave: it has migration 0099_future/);
  });
});
