import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { getTableColumns, getTableName, is } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../server/config/settings.js';
import { openPostgres, type PgDb } from '../../server/db/pg/connection.js';
import { migratePostgres } from '../../server/db/pg/migrator.js';
import * as pgSchema from '../../server/db/pg/schema.js';
import { postgresStore } from '../../server/db/store.js';
import { cachedBackupRecords } from '../../server/ops/backup/records.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { tempDir, testConfig } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { call, login } from '../helpers/identity.js';
import { freshDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * `enclave backup create|verify|restore` on PostgreSQL (issue 22): a populated install (tenants,
 * keys, usage and rollups, audit, web chat, a batch run by the worker with its files) on a real
 * PostgreSQL is backed up by the real CLI into a signed, passphrase-encrypted archive of logical
 * rows; verify checks it without a database (signature, sums, row counts, audit chain); restore
 * puts it into a fresh database, where every table compares equal row by row and
 * `enclave audit verify` passes. A second restore into the now used database is refused and
 * changes nothing; a PostgreSQL backup is refused by an SQLite data dir and vice versa.
 */

let env: GatewayEnv;
let worker: JobWorker;
let config: Config;
const pools: PgDb[] = [];
const work = tempDir('enclave-pg-backup-');
const passFile = path.join(work, 'pass');
const archive = path.join(work, 'backup.tar.gz.enc');

function pg(url: string): PgDb {
  const d = openPostgres({ url, poolMax: 2 });
  pools.push(d);
  return d;
}

beforeAll(async () => {
  config = testConfig({ ENCLAVE_DATABASE_URL: await freshDatabase('backup_src') });
  env = await gatewayEnv({ config });
  const s = env.app.services;
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'] });
  for (let i = 0; i < 2; i++) await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `hello ${i} ü €` }] });
  // A team's call (usage_records.team_id and usage_team_rollups through its trigger; issue 24).
  const team = await s.teams.create(env.tenant.ctx, { name: 'Research' });
  const teamKey = await s.teams.createKey(env.tenant.ctx, team.id, { name: 'team app', ownerless: true });
  const { default: TeamClient } = await import('openai');
  await new TeamClient({ baseURL: `${env.app.url}/v1`, apiKey: teamKey.secret, maxRetries: 0 }).chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'team call' }] });
  const member = await login(env.app.url, env.tenant.users.member!.email);
  const conv = await call(env.app.url, '/api/chat/conversations', { method: 'POST', session: member, body: {} });
  expect(conv.status).toBe(201);
  const sent = await fetch(`${env.app.url}/api/chat/conversations/${conv.body.id}/completions`, {
    method: 'POST',
    headers: { cookie: member.cookie, 'x-csrf-token': member.csrf, 'content-type': 'application/json' },
    body: JSON.stringify({ content: 'Was steht in Klausel 4?', model: 'gpt-fake' }),
  });
  expect(sent.status).toBe(200);
  await sent.text();
  const { secret } = await s.identity.keys.create(env.tenant.ctx, { name: 'batch', ownerUserId: env.tenant.users.member!.id, scopes: ['models:invoke', 'batches:write'] });
  const { default: OpenAI } = await import('openai');
  const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
  worker = await startWorker(s);
  const lines = [0, 1].map((i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `line ${i}` }] } })).join('\n');
  const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'in.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  await waitFor(() => client.batches.retrieve(batch.id), { until: (b) => b.status === 'completed', timeout: 30_000, what: 'the batch completed' });
  await env.usage(); // flushes the usage writer
  await s.identity.keys.flushUsage(); // and the keys' last-used times (the batch polling used a key last): the backup sees them
  await worker.close();
  writeFileSync(passFile, 'correct horse battery staple\n', { mode: 0o600 });
}, 120_000); // an app, SDK calls, a web chat turn and a batch through the worker: seconds each on a busy machine

afterAll(async () => {
  await Promise.all(pools.map((p) => p.$client.end()));
  await worker?.close();
  await env?.close();
});

/** The CLI on a data dir and database of our choosing (the master key passed: the CLI gets no ENCLAVE_* of ours). */
function cli(args: string[], o: { dataDir: string; url?: string }) {
  return runCli(args, {
    ENCLAVE_DATA_DIR: o.dataDir,
    ENCLAVE_MASTER_KEY: config.masterKey!,
    ENCLAVE_LOG_LEVEL: 'silent',
    ...(o.url ? { ENCLAVE_DATABASE_URL: o.url } : {}),
  });
}

function tables(): PgTable[] {
  return (Object.values(pgSchema) as unknown[]).filter((v): v is PgTable => is(v, PgTable));
}

/** Every row of a table, in primary-key order, as the repositories read them. */
async function rowsOf(db: PgDb, t: PgTable): Promise<unknown[]> {
  const cfg = getTableConfig(t);
  const pk = cfg.primaryKeys[0]?.columns ?? cfg.columns.filter((c) => c.primary);
  const cols = getTableColumns(t);
  const keyProps = Object.entries(cols).filter(([, c]) => pk.some((p) => p.name === c.name)).map(([k]) => k);
  const jsonb = new Set(Object.entries(cols).filter(([, c]) => c.getSQLType() === 'jsonb').map(([k]) => k));
  const rows = (await db.select().from(t)) as Record<string, unknown>[];
  const keyOf = (r: Record<string, unknown>) => JSON.stringify(keyProps.map((k) => r[k]));
  return rows
    .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonb.has(k) && typeof v === 'string' ? JSON.parse(v) : v])))
    .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
}

describe('backups of an Enclave on PostgreSQL', () => {
  let installationId: string;

  it('create writes a signed, encrypted archive of every table; verify checks it without a database', async () => {
    // --verify: read back and verified at once, as the scheduled backup does.
    const made = await cli(['backup', 'create', '--out', archive, '--passphrase-file', passFile, '--verify', '--json'], { dataDir: config.dataDir });
    expect(made.code, made.stderr).toBe(0);
    const r = JSON.parse(made.stdout) as { manifest: { database: { dialect: string; order: string[] }; tables: Record<string, number>; installationId: string; parts: { name: string }[] }; encryption: string; verified: { ok: boolean } };
    expect(r.encryption).toBe('passphrase');
    expect(r.verified.ok).toBe(true);
    expect(r.manifest.database.dialect).toBe('postgres');
    expect(r.manifest.database.order).toHaveLength(tables().length);
    for (const t of ['tenants', 'users', 'api_keys', 'usage_records', 'usage_rollups', 'audit_log', 'audit_head', 'conversations', 'chat_messages', 'files', 'batches', 'batch_lines', 'teams', 'usage_team_rollups']) {
      expect(r.manifest.tables[t], t).toBeGreaterThan(0);
    }
    expect(r.manifest.parts.some((p) => p.name.startsWith('files/'))).toBe(true); // the batch's uploaded files
    installationId = r.manifest.installationId;

    const v = await cli(['backup', 'verify', archive, '--passphrase-file', passFile, '--json'], { dataDir: config.dataDir });
    expect(v.code, v.stderr).toBe(0);
    const checks = (JSON.parse(v.stdout) as { checks: { id: string; status: string; message: string }[] }).checks;
    expect(Object.fromEntries(checks.map((c) => [c.id, c.status]))).toMatchObject({ archive: 'ok', signature: 'ok', checksums: 'ok', database: 'ok', audit: 'ok', schema: 'ok' });
    expect(checks.find((c) => c.id === 'signature')!.message).toMatch(/this installation/);

    // With the secrets export, every stored secret in the parts is decrypted with its master key;
    // an export of another key fails the check.
    const secretsFile = path.join(work, 'secrets.enc');
    expect((await cli(['backup', 'secrets', '--out', secretsFile, '--passphrase-file', passFile], { dataDir: config.dataDir })).code).toBe(0);
    const withSecrets = await cli(['backup', 'verify', archive, '--passphrase-file', passFile, '--secrets', secretsFile, '--json'], { dataDir: config.dataDir });
    expect(withSecrets.code, withSecrets.stderr).toBe(0);
    expect((JSON.parse(withSecrets.stdout) as { checks: { id: string; status: string; message: string }[] }).checks.find((c) => c.id === 'secrets')).toMatchObject({ status: 'ok', message: expect.stringMatching(/decrypts all \d+ stored secret/) });
    const otherFile = path.join(work, 'other-secrets.enc');
    const other = await runCli(['backup', 'secrets', '--out', otherFile, '--passphrase-file', passFile], { ENCLAVE_DATA_DIR: tempDir('enclave-pg-otherkey-'), ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_LOG_LEVEL: 'silent' });
    expect(other.code, other.stderr).toBe(0);
    const wrong = await cli(['backup', 'verify', archive, '--passphrase-file', passFile, '--secrets', otherFile], { dataDir: config.dataDir });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/the master key does not decrypt \d+ of \d+ stored secret/);

    // The backup gauges of a PostgreSQL install read the record from the shared settings (off the scrape path).
    const records = cachedBackupRecords(postgresStore(pg(config.databaseUrl!)), 0);
    await expect.poll(() => records().lastSuccess?.file).toBe(archive);
    expect(records().lastVerified?.file).toBe(archive);
  });

  it('restore into a fresh database: every table equal row by row, audit verify ok; a second restore is refused and changes nothing', async () => {
    const url = await freshDatabase('backup_dst');
    const dataDir = tempDir('enclave-pg-restored-');
    // An empty database has no installation of its own: the backup's signer is named.
    const r = await cli(['backup', 'restore', archive, '--passphrase-file', passFile, '--trust-installation', installationId, '--json'], { dataDir, url });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { secrets: { checked: number; failed: unknown[] }; dataDir: string };
    expect(out.secrets.failed).toEqual([]);
    expect(out.secrets.checked).toBeGreaterThan(0);
    expect(out.dataDir).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/backup_dst_/); // the database, as a redacted URL

    const src = pg(config.databaseUrl!);
    const dst = pg(url);
    // Settings the source wrote after its backup (the backup's own record, the licence's trusted
    // time, which every licence check moves) are not part of the comparison.
    const later = (r: unknown) => !/^(ops\.backup\.|license\.time$)/.test(String((r as { key?: unknown }).key));
    for (const t of tables()) {
      const name = getTableName(t);
      const [a, b] = [await rowsOf(dst, t), await rowsOf(src, t)];
      expect(name === 'settings' ? a.filter(later) : a, name).toEqual(name === 'settings' ? b.filter(later) : b);
    }

    const audit = await cli(['audit', 'verify', '--json'], { dataDir, url });
    expect(audit.code, audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout)).toMatchObject({ ok: true });

    const before = await dst.$client.query<{ n: string }>('SELECT count(*) AS n FROM audit_log');
    const again = await cli(['backup', 'restore', archive, '--passphrase-file', passFile, '--trust-installation', installationId], { dataDir, url });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refusing to restore: the database postgres:\/\/.* is not empty \(rows in .*\); nothing was changed; restore into a new, empty database/);
    expect((await dst.$client.query<{ n: string }>('SELECT count(*) AS n FROM audit_log')).rows[0]!.n).toBe(before.rows[0]!.n);
  });

  it('restore refuses a database at another migration level and changes nothing', async () => {
    const url = await freshDatabase('backup_level');
    const db = pg(url);
    await migratePostgres(db.$client);
    // The database one migration behind this version (as if made by the previous release).
    await db.$client.query('DELETE FROM schema_migrations WHERE idx = (SELECT max(idx) FROM schema_migrations)');
    const r = await cli(['backup', 'restore', archive, '--passphrase-file', passFile, '--trust-installation', installationId], { dataDir: tempDir('enclave-pg-level-'), url });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to restore: the database postgres:\/\/.* is at schema \S+ with 1 pending migration\(s\), the backup at \S+; restore into a new, empty database/);
    expect((await db.$client.query<{ n: string }>('SELECT count(*) AS n FROM tenants')).rows[0]!.n).toBe('0');
  });

  it('a PostgreSQL backup is refused by an embedded (SQLite) data dir, with what to do instead', async () => {
    const r = await cli(['backup', 'restore', archive, '--passphrase-file', passFile, '--trust-installation', installationId], { dataDir: tempDir('enclave-pg-to-sqlite-') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/this is a backup of an Enclave on PostgreSQL; restore it with ENCLAVE_DATABASE_URL set to a new, empty PostgreSQL database/);
  });
});
