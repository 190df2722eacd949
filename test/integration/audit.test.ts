import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { buildApp, createServices, type Services } from '../../server/app.js';
import { desc, eq, inArray, sql } from 'drizzle-orm';
import { listen, type RunningServer } from '../../server/http/server.js';
import { REDACT_PATHS } from '../../server/logger.js';
import { testConfig } from '../helpers/app.js';
import { dialectEnv, rememberDatabase } from '../helpers/dialect.js';
import { rawRows } from '../helpers/stores.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';

const logLines: string[] = [];
let s: Services;
let server: RunningServer;
let url: string;
let env: Record<string, string>;
let dataDir: string;
const secrets: string[] = [];

beforeAll(async () => {
  const config = testConfig(await dialectEnv()); // TEST_DIALECT=postgres: a PostgreSQL database
  rememberDatabase(config.dataDir, config.databaseUrl);
  dataDir = config.dataDir;
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  const log = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  s = await createServices(config, { log, passwordLogN: 10, entitlements: unrestricted });
  server = await listen(buildApp(s), 0, '127.0.0.1');
  url = `http://127.0.0.1:${server.port}`;
  env = { ...process.env, ENCLAVE_DATA_DIR: config.dataDir, ENCLAVE_MASTER_KEY: config.masterKey!, REDIS_URL: config.redisUrl!, ENCLAVE_LOG_LEVEL: 'silent' } as Record<string, string>;

  // Activity full of secrets: passwords (right and wrong), session tokens, CSRF tokens, key secrets.
  const acme = await seedTenant(s, 'acme', ['owner', 'member']);
  secrets.push(PASSWORD);
  const wrong = 'Wrong-Password-Nobody-Should-See-42';
  secrets.push(wrong);
  await login(url, acme.users.owner!.email, wrong);
  const owner = await login(url, acme.users.owner!.email);
  secrets.push(owner.cookie.split('=')[1]!, owner.csrf);
  const created = await call(url, `/admin/api/tenants/${acme.tenant.id}/keys`, { method: 'POST', session: owner, body: { name: 'k' } });
  secrets.push(created.body.secret);
  const rotated = await call(url, `/admin/api/tenants/${acme.tenant.id}/keys/${created.body.id}/rotate`, { method: 'POST', session: owner, body: { overlap_seconds: 10 } });
  secrets.push(rotated.body.secret);
  await call(url, '/admin/api/me', { key: rotated.body.secret });
  await call(url, '/admin/api/me', { key: created.body.secret.slice(0, -1) + 'x' });
  const newPassword = 'Another-Secret-Passphrase-77';
  secrets.push(newPassword);
  await call(url, '/auth/password', { method: 'POST', session: owner, body: { current_password: PASSWORD, new_password: newPassword } });
  // Adding a member is an invitation; the invitee sets the password accepting the link (issue 16).
  const invited = await call(url, `/admin/api/tenants/${acme.tenant.id}/members`, { method: 'POST', session: owner, body: { email: 'new@acme.test', role: 'member' } });
  secrets.push(invited.body.token);
  await call(url, '/auth/invite/accept', { method: 'POST', body: { token: invited.body.token, password: 'Member-Initial-Secret-99' } });
  secrets.push('Member-Initial-Secret-99');
  const adminPw = 'Cli-Admin-Secret-Password-31';
  secrets.push(adminPw);
  await runCliOk(['admin', 'create', '--email', 'cli-admin@example.test', '--password-stdin'], env, adminPw + '\n');
  await s.identity.tenants.create(sys(s), { slug: 'globex' });
});
afterAll(async () => {
  await server.close(1000);
  await s.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// The audit log edited behind its back, on either dialect (through the dialect's table objects).
type Row = Record<string, unknown>;
const log = () => s.store.t.auditLog;
const entry = async (seq: number): Promise<Row> => (await s.store.one(s.store.q.select().from(log()).where(eq(log().seq, seq))))!;
const lastEntry = async (): Promise<Row> => (await s.store.one(s.store.q.select().from(log()).orderBy(desc(log().seq)).limit(1)))!;
const edit = (seqs: number[], set: Row) => s.store.run(s.store.q.update(log()).set(set).where(inArray(log().seq, seqs)));
const remove = (seq: number) => s.store.run(s.store.q.delete(log()).where(eq(log().seq, seq)));
const putBack = (row: Row) => s.store.run(s.store.q.insert(log()).values(row as never));
const chainOk = async () => (await s.identity.audit.verify()).ok;
const verifyCli = () => runCli(['audit', 'verify'], env).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));

describe('audit log', () => {
  it('records the activity: logins and failures, key create/rotate, password change, membership, CLI admin', async () => {
    const actions = new Set((await s.identity.audit.list({ limit: 1000 })).map((e) => `${e.action}:${e.outcome}`));
    for (const a of ['auth.login:allowed', 'auth.login:denied', 'key.create:allowed', 'key.rotate:allowed', 'user.password_change:allowed', 'membership.grant:allowed', 'user.create:allowed', 'tenant.create:allowed']) {
      expect(actions, a).toContain(a);
    }
    const cli = (await s.identity.audit.list({ action: 'user.create', limit: 100 })).find((e) => e.actorId === 'cli');
    expect(cli?.actorType).toBe('system');
    expect(cli?.userAgent).toMatch(/enclave-cli/);
  });

  it('never stores or logs a secret, password, session token or key', async () => {
    const rows = JSON.stringify(await rawRows(s.store, sql`SELECT * FROM audit_log`));
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(1000);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(10);
      expect(rows.includes(secret), `audit row contains ${secret.slice(0, 6)}…`).toBe(false);
      expect(logs.includes(secret), `log contains ${secret.slice(0, 6)}…`).toBe(false);
    }
    // Not in any other table in clear either (sessions and keys keep hashes only).
    const dump = JSON.stringify(await Promise.all(['sessions', 'api_keys', 'users', 'login_throttle'].map((t) => rawRows(s.store, sql`SELECT * FROM ${sql.identifier(t)}`))));
    for (const secret of secrets) expect(dump.includes(secret)).toBe(false);
  });

  it('the intact chain verifies', async () => {
    expect(await chainOk()).toBe(true);
    const r = await verifyCli();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/audit chain intact: \d+ entries/);
  });

  it('an edited entry is named', async () => {
    const row = await entry(5);
    await edit([5], { outcome: 'allowed', reason: null, details: '{}' });
    await edit([5], { action: 'tampered' });
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toContain(`audit chain broken at entry 5 (${row.id as string})`);
    expect(r.err).toMatch(/modified/);
    await edit([5], { action: row.action, outcome: row.outcome, reason: row.reason, details: row.details });
    expect(await chainOk()).toBe(true);
  });

  it('a deleted entry is named (the one after the gap)', async () => {
    const row = await entry(7);
    await remove(7);
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/broken at entry 8 .*entry 8 follows entry 6: 1 entry was deleted/);
    await putBack(row);
    expect(await chainOk()).toBe(true);
  });

  it('reordered entries are named', async () => {
    const r3 = await entry(3);
    const r4 = await entry(4);
    // every column but seq moves (ids first out of the way: they are unique)
    const put = async (seq: number, row: Row) => {
      const { seq: _seq, ...rest } = row;
      await edit([seq], rest);
    };
    const tmpIds = () => edit([3, 4], { id: sql`'tmp_' || ${log().seq}` });
    await tmpIds();
    await put(3, r4);
    await put(4, r3);
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toContain(`broken at entry 3 (${r4.id as string})`);
    await tmpIds();
    await put(3, r3);
    await put(4, r4);
    expect(await chainOk()).toBe(true);
  });

  it('deleting entries at the end is detected through the head', async () => {
    const last = await lastEntry();
    await remove(last.seq as number);
    const r = await s.identity.audit.verify();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.broken.problem).toMatch(/entries at the end were deleted/);
    await putBack(last);
    expect(await chainOk()).toBe(true);
  });

  it('export --tenant writes that tenant’s entries as JSON lines, oldest first', async () => {
    const { stdout } = await runCliOk(['audit', 'export', '--tenant', 'acme', '--since', '1d'], env);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(5);
    const acmeId = (await s.identity.tenants.resolve('acme'))!.id;
    for (const e of lines) expect(e.tenant_id).toBe(acmeId);
    for (let i = 1; i < lines.length; i++) expect(lines[i].seq).toBeGreaterThan(lines[i - 1].seq);
    for (const secret of secrets) expect(stdout).not.toContain(secret);
    expect(await chainOk()).toBe(true); // the export itself was audited, chained
  });
});
