import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { buildApp, createServices, type Services } from '../../server/app.js';
import { verifyChain } from '../../server/audit/log.js';
import { listen, type RunningServer } from '../../server/http/server.js';
import { REDACT_PATHS } from '../../server/logger.js';
import { testConfig } from '../helpers/app.js';
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
  const config = testConfig();
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

const sqlite = () => s.sqlite!.$client;
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

  it('never stores or logs a secret, password, session token or key', () => {
    const rows = JSON.stringify(sqlite().prepare('SELECT * FROM audit_log').all());
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(1000);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(10);
      expect(rows.includes(secret), `audit row contains ${secret.slice(0, 6)}…`).toBe(false);
      expect(logs.includes(secret), `log contains ${secret.slice(0, 6)}…`).toBe(false);
    }
    // Not in any other table in clear either (sessions and keys keep hashes only).
    const dump = JSON.stringify(['sessions', 'api_keys', 'users', 'login_throttle'].map((t) => sqlite().prepare(`SELECT * FROM ${t}`).all()));
    for (const secret of secrets) expect(dump.includes(secret)).toBe(false);
  });

  it('the intact chain verifies', async () => {
    expect(verifyChain(s.sqlite!).ok).toBe(true);
    const r = await verifyCli();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/audit chain intact: \d+ entries/);
  });

  it('an edited entry is named', async () => {
    const row = sqlite().prepare('SELECT * FROM audit_log WHERE seq = 5').get() as Record<string, unknown>;
    sqlite().prepare("UPDATE audit_log SET outcome = 'allowed', reason = NULL, details = '{}' WHERE seq = 5").run();
    sqlite().prepare("UPDATE audit_log SET action = 'tampered' WHERE seq = 5").run();
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toContain(`audit chain broken at entry 5 (${row.id as string})`);
    expect(r.err).toMatch(/modified/);
    sqlite().prepare('UPDATE audit_log SET action = @action, outcome = @outcome, reason = @reason, details = @details WHERE seq = 5').run(row);
    expect(verifyChain(s.sqlite!).ok).toBe(true);
  });

  it('a deleted entry is named (the one after the gap)', async () => {
    const row = sqlite().prepare('SELECT * FROM audit_log WHERE seq = 7').get() as Record<string, unknown>;
    sqlite().prepare('DELETE FROM audit_log WHERE seq = 7').run();
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/broken at entry 8 .*entry 8 follows entry 6: 1 entry was deleted/);
    const cols = Object.keys(row);
    sqlite().prepare(`INSERT INTO audit_log (${cols.join(',')}) VALUES (${cols.map((c) => '@' + c).join(',')})`).run(row);
    expect(verifyChain(s.sqlite!).ok).toBe(true);
  });

  it('reordered entries are named', async () => {
    const cols = ['id', 'at', 'tenant_ref', 'actor_type', 'actor_id', 'action', 'target_type', 'target_id', 'outcome', 'reason', 'ip', 'user_agent', 'request_id', 'details', 'prev_hash', 'hash'];
    const r3 = sqlite().prepare('SELECT * FROM audit_log WHERE seq = 3').get() as Record<string, unknown>;
    const r4 = sqlite().prepare('SELECT * FROM audit_log WHERE seq = 4').get() as Record<string, unknown>;
    const put = (seq: number, row: Record<string, unknown>) => {
      sqlite().prepare(`UPDATE audit_log SET id = 'tmp_' || seq WHERE seq = ?`).run(seq);
      sqlite().prepare(`UPDATE audit_log SET ${cols.map((c) => `${c} = @${c}`).join(', ')} WHERE seq = ${seq}`).run(row);
    };
    sqlite().prepare(`UPDATE audit_log SET id = 'tmp_' || seq WHERE seq IN (3, 4)`).run();
    put(3, r4);
    put(4, r3);
    const r = await verifyCli();
    expect(r.code).toBe(1);
    expect(r.err).toContain(`broken at entry 3 (${r4.id as string})`);
    sqlite().prepare(`UPDATE audit_log SET id = 'tmp_' || seq WHERE seq IN (3, 4)`).run();
    put(3, r3);
    put(4, r4);
    expect(verifyChain(s.sqlite!).ok).toBe(true);
  });

  it('deleting entries at the end is detected through the head', () => {
    const last = sqlite().prepare('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1').get() as Record<string, unknown>;
    sqlite().prepare('DELETE FROM audit_log WHERE seq = ?').run(last.seq);
    const r = verifyChain(s.sqlite!);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.broken.problem).toMatch(/entries at the end were deleted/);
    const cols = Object.keys(last);
    sqlite().prepare(`INSERT INTO audit_log (${cols.join(',')}) VALUES (${cols.map((c) => '@' + c).join(',')})`).run(last);
    expect(verifyChain(s.sqlite!).ok).toBe(true);
  });

  it('export --tenant writes that tenant’s entries as JSON lines, oldest first', async () => {
    const { stdout } = await runCliOk(['audit', 'export', '--tenant', 'acme', '--since', '1d'], env);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(5);
    const acmeId = (await s.identity.tenants.resolve('acme'))!.id;
    for (const e of lines) expect(e.tenant_id).toBe(acmeId);
    for (let i = 1; i < lines.length; i++) expect(lines[i].seq).toBeGreaterThan(lines[i - 1].seq);
    for (const secret of secrets) expect(stdout).not.toContain(secret);
    expect(verifyChain(s.sqlite!).ok).toBe(true); // the export itself was audited, chained
  });
});
