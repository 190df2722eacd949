import Database from 'better-sqlite3';
import { getTableColumns, getTableName, is } from 'drizzle-orm';
import { PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { toFile } from 'openai';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { openPostgres, type PgDb } from '../../server/db/pg/connection.js';
import * as pgSchema from '../../server/db/pg/schema.js';
import * as sqliteSchema from '../../server/db/schema.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { tempDir } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { call, login } from '../helpers/identity.js';
import { freshDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * `enclave db migrate-to-postgres` on a populated install: tenants, users, keys, usage (and its
 * rollups), audit events, chat conversations and messages, a batch with its files and lines —
 * all made through the real services, HTTP API and worker — copied into a real PostgreSQL by the
 * real CLI, then compared row by row; a second run refuses the non-empty target; a tampered audit
 * entry fails the verification and leaves the target empty.
 */

let env: GatewayEnv;
let worker: JobWorker;
const pools: PgDb[] = [];

function pg(url: string): PgDb {
  const d = openPostgres({ url, poolMax: 2 });
  pools.push(d);
  return d;
}

beforeAll(async () => {
  env = await gatewayEnv();
  const s = env.app.services;
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake', 'text-embedding-fake'] });
  // AI calls through the OpenAI SDK: usage records (and rollups through the trigger).
  for (let i = 0; i < 3; i++) await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `hello ${i} ü €` }] });
  await env.client.embeddings.create({ model: 'text-embedding-fake', input: 'embed me' });
  // A team with a member and a team key: a call of the team's (usage_records.team_id, usage_team_rollups through its trigger).
  const team = await s.teams.create(env.tenant.ctx, { name: 'Research', limits: { monthly_tokens: 1_000_000 } });
  await s.teams.setMember(env.tenant.ctx, team.id, env.tenant.users.member!.id, 'admin');
  const teamKey = await s.teams.createKey(env.tenant.ctx, team.id, { name: 'team app', ownerless: true });
  const { default: TeamClient } = await import('openai');
  await new TeamClient({ baseURL: `${env.app.url}/v1`, apiKey: teamKey.secret, maxRetries: 0 }).chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'team call' }] });
  // The web chat: a conversation with a user message and the answer.
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
  // A batch run by the worker: files, batch, batch lines, usage.
  const { secret } = await s.identity.keys.create(env.tenant.ctx, { name: 'batch', ownerUserId: env.tenant.users.member!.id, scopes: ['models:invoke', 'batches:write'] });
  const { default: OpenAI } = await import('openai');
  const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
  worker = await startWorker(s);
  const lines = [0, 1, 2].map((i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `line ${i}` }] } })).join('\n');
  const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'in.jsonl'), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { job: 'nightly' } });
  await waitFor(() => client.batches.retrieve(batch.id), { until: (b) => b.status === 'completed', timeout: 20_000, what: 'the batch completed' });
  // A revoked key and a second tenant.
  const { key } = await s.identity.keys.create(env.tenant.ctx, { name: 'old', ownerUserId: env.tenant.users.member!.id });
  await s.identity.keys.revoke(env.tenant.ctx, key.id);
  await env.usage(); // flushes the usage writer
}, 90_000); // an app, SDK calls, a web chat turn and a batch through the worker: seconds each on a busy machine

afterAll(async () => {
  await Promise.all(pools.map((p) => p.$client.end()));
  await worker?.close();
  await env?.close();
});

function tables(): { name: string; lite: SQLiteTable; pg: PgTable }[] {
  const pgByName = new Map<string, PgTable>();
  for (const v of Object.values(pgSchema)) if (is(v, PgTable)) pgByName.set(getTableName(v), v);
  const out: { name: string; lite: SQLiteTable; pg: PgTable }[] = [];
  for (const v of Object.values(sqliteSchema)) if (is(v, SQLiteTable)) out.push({ name: getTableName(v), lite: v, pg: pgByName.get(getTableName(v))! });
  return out;
}

/** Rows with JSON columns parsed (jsonb normalises spacing and key order; the values must be equal), sorted by their primary key. */
function normalise(rows: Record<string, unknown>[], jsonKeys: Set<string>, keyOf: (r: Record<string, unknown>) => string): Record<string, unknown>[] {
  return rows
    .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonKeys.has(k) && typeof v === 'string' ? JSON.parse(v) : v])))
    .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
}

function cli(args: string[], dataDir: string) {
  return runCli(['db', ...args], { ENCLAVE_DATA_DIR: dataDir });
}

describe('enclave db migrate-to-postgres', () => {
  it('copies a populated install; every table and row compares equal; the audit chain verifies on PostgreSQL', async () => {
    const dataDir = env.app.services.config.dataDir;
    const url = await freshDatabase('copy');
    const r = await cli(['migrate-to-postgres', '--url', url, '--json'], dataDir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; tables: { table: string; sqlite: number; postgres: number; ok: boolean }[]; audit: { ok: boolean; checked: number } };
    expect(report.ok).toBe(true);
    expect(report.tables.every((t) => t.ok)).toBe(true);
    const count = Object.fromEntries(report.tables.map((t) => [t.table, t.postgres]));
    // The populated parts really were there to copy.
    for (const t of ['tenants', 'users', 'memberships', 'api_keys', 'usage_records', 'usage_rollups', 'audit_log', 'audit_head', 'conversations', 'chat_messages', 'files', 'batches', 'batch_lines', 'provider_deployments', 'teams', 'team_members', 'usage_team_rollups']) {
      expect(count[t], t).toBeGreaterThan(0);
    }
    expect(report.audit.ok).toBe(true);
    expect(report.audit.checked).toBe(count.audit_log);

    // Row by row, through both schemas' table objects: the same TypeScript values.
    const lite = openDatabase(databaseFile(dataDir), { readonly: true });
    const target = pg(url);
    try {
      for (const t of tables()) {
        const jsonKeys = new Set(Object.entries(getTableColumns(t.pg)).filter(([, c]) => c.getSQLType() === 'jsonb').map(([k]) => k));
        const pk = sqliteTableConfig(t.lite);
        const pkCols = pk.primaryKeys[0]?.columns.map((c) => c.name) ?? pk.columns.filter((c) => c.primary).map((c) => c.name);
        const keyProps = Object.entries(getTableColumns(t.lite)).filter(([, c]) => pkCols.includes(c.name)).map(([k]) => k);
        const keyOf = (row: Record<string, unknown>) => JSON.stringify(keyProps.map((k) => row[k]));
        const a = normalise(lite.select().from(t.lite).all() as Record<string, unknown>[], jsonKeys, keyOf);
        const b = normalise((await target.select().from(t.pg)) as Record<string, unknown>[], jsonKeys, keyOf);
        expect(b, t.name).toEqual(a);
      }
    } finally {
      lite.$client.close();
    }

    // A second run refuses the now non-empty target and writes nothing.
    const again = await cli(['migrate-to-postgres', '--url', url], dataDir);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/^enclave: the PostgreSQL database is not empty \(rows in [^)]+\): nothing written; migrate into a new, empty database\n$/m);
    const tenants = await target.$client.query<{ n: string }>('SELECT count(*) AS n FROM tenants');
    expect(Number(tenants.rows[0]!.n)).toBe(count.tenants);
  });

  it('a tampered audit entry in SQLite fails the verification: exit 4, the entry named, the target left empty', async () => {
    // A copy of the install (VACUUM INTO: a consistent file), edited behind the audit log's back.
    const copyDir = tempDir('enclave-pg-tampered-');
    env.app.services.sqlite!.$client.exec(`VACUUM INTO '${path.join(copyDir, 'enclave.db')}'`);
    const raw = new Database(databaseFile(copyDir));
    raw.prepare("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2").run();
    raw.close();
    const url = await freshDatabase('tamper');
    const r = await cli(['migrate-to-postgres', '--url', url], copyDir);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/verification failed, nothing written \(rolled back\): the audit chain does not verify on the copy at entry 2: entry 2 was modified: its content does not match its hash \(it is broken in the SQLite database too/);
    expect(r.stdout).toMatch(/audit chain broken at entry 2/);
    const target = pg(url);
    for (const t of ['tenants', 'audit_log', 'usage_records', 'chat_messages']) {
      const n = await target.$client.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`);
      expect(Number(n.rows[0]!.n), t).toBe(0);
    }
  });

  it('refuses bad input with a one-line reason: no URL, no SQLite install, an unreachable server (no password in the message)', async () => {
    const empty = tempDir('enclave-pg-nodb-');
    const noUrl = await cli(['migrate-to-postgres'], empty);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/name the PostgreSQL database: --url/);
    const noDb = await cli(['migrate-to-postgres', '--url', await freshDatabase('nodb')], empty);
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toMatch(/no SQLite database at .*enclave\.db: set ENCLAVE_DATA_DIR/);
    const down = await cli(['migrate-to-postgres', '--url', 'postgres://enclave:s3cret-pw@127.0.0.1:1/enclave'], env.app.services.config.dataDir);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^enclave: cannot reach PostgreSQL at 127\.0\.0\.1:1: connection refused/);
    expect(down.stderr).not.toContain('s3cret-pw');
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
  });
});
