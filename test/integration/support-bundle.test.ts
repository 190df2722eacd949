import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/load.js';
import { readArchive } from '../../server/ops/backup/archive.js';
import { supportBundle } from '../../server/ops/support-bundle/bundle.js';
import { secretAad } from '../../server/db/secret-columns.js';
import type { UsageRow } from '../../server/db/repos/usage.js';
import { newId } from '../../server/ids.js';
import { runCliOk } from '../helpers/cli.js';
import { seedTenant } from '../helpers/identity.js';
import { startTestApp, tempDir, testConfig, type TestApp } from '../helpers/app.js';
import { freshDatabase } from '../helpers/postgres.js';
import { rawRun } from '../helpers/stores.js';
import { openStore } from '../../server/db/open-store.js';
import { sql } from 'drizzle-orm';

const cleanup: string[] = [];
let app: TestApp | undefined;
afterAll(async () => {
  await app?.close();
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? allFiles(p) : [p];
  });
}

describe('support bundle', () => {
  it('contains the diagnostics and none of the seeded secrets (every file scanned)', async () => {
    const work = tempDir('enclave-bundle-');
    cleanup.push(work);
    const masterKey = randomBytes(32).toString('base64');
    const previousKey = randomBytes(32).toString('base64');
    const idpSecret = `idp-client-secret-${randomBytes(12).toString('hex')}`;
    const idpFile = path.join(work, 'oidc_client_secret');
    writeFileSync(idpFile, idpSecret + '\n');
    const adminPassword = `Admin-Pass-${randomBytes(8).toString('hex')}`;
    const metricsToken = `metrics-token-${randomBytes(8).toString('hex')}`;
    const providerKey = `sk-proj-${randomBytes(20).toString('hex')}`;
    const storedIdp = `stored-idp-${randomBytes(10).toString('hex')}`;
    const apiKey = `enk_${randomBytes(24).toString('base64url')}`;
    const userPassword = `user-password-${randomBytes(6).toString('hex')}`;
    const prompt = `PROMPT-CONTENT-${randomBytes(6).toString('hex')}`;
    const redisPassword = `redis-pw-${randomBytes(6).toString('hex')}`;

    app = await startTestApp({
      env: {
        ENCLAVE_MASTER_KEY: masterKey,
        ENCLAVE_PREVIOUS_MASTER_KEYS: previousKey,
        ENCLAVE_OIDC_CLIENT_SECRET_FILE: idpFile,
        ENCLAVE_ADMIN_EMAIL: 'admin@example.com',
        ENCLAVE_ADMIN_PASSWORD: adminPassword,
        ENCLAVE_METRICS_TOKEN: metricsToken,
      },
    });
    const { services } = app;
    await services.settings.setSecret('provider.openai.apiKey', providerKey);
    await services.settings.setSecret('oidc.clientSecret', storedIdp);
    // a provider deployment's credential without any recognisable shape: only the known-value scan can catch it
    const odd = `Zq${randomBytes(16).toString('hex')}Xw`;
    const epoch = services.store.dialect === 'postgres' ? sql`to_timestamp(0)` : sql`0`;
    await rawRun(
      services.store,
      sql`INSERT INTO provider_deployments (id, name, kind, base_url, api_key, boundary, created_at, updated_at) VALUES ('prv_odd', 'odd', 'openai', 'http://127.0.0.1:9/v1', ${services.secrets.encrypt(odd, secretAad('provider_deployments', 'api_key', 'prv_odd'))}, 'private', ${epoch}, ${epoch})`,
    );

    // A stored call of a tenant that logs content (prompts and completions are never bundled).
    const storedPrompt = `STORED-PROMPT-${randomBytes(6).toString('hex')}`;
    const t = await seedTenant(services, 'logs-content', ['owner']);
    await services.gateway.content.update(t.ctx, { enabled: true });
    services.gateway.content
      .begin(t.ctx, { retentionDays: 30 }, 'chat', { messages: [{ role: 'user', content: storedPrompt }] })!
      .end({ id: newId('use'), tenantId: t.tenant.id, requestId: newId('req'), alias: 'm', endpoint: 'chat', stream: false, status: 'ok', errorCode: null, createdAt: Date.now() } as UsageRow);
    await services.gateway.content.flush();

    const logDir = path.join(work, 'logs');
    mkdirSync(logDir);
    writeFileSync(
      path.join(logDir, 'server.log'),
      [
        JSON.stringify({ level: 30, msg: 'request', requestId: 'req_1', status: 200, headers: { authorization: `Bearer ${apiKey}` } }),
        JSON.stringify({ level: 30, msg: 'login', password: userPassword, email: 'someone@example.com' }),
        JSON.stringify({ level: 40, msg: 'chat', prompt, messages: [{ role: 'user', content: prompt }] }),
        `plain text line with Authorization: Bearer ${apiKey} and url redis://:${redisPassword}@redis:6379/0 and key ${providerKey}`,
        `master key accidentally printed: ${masterKey}`,
        `upstream said: invalid credential ${odd} (a message that echoes the key)`,
        '',
      ].join('\n'),
    );

    // the bundle's config: the app's, plus a Redis URL with a password (as production has)
    const config = { ...services.config, redisUrl: `redis://:${redisPassword}@127.0.0.1:1/0` };
    const dry = await supportBundle(config, { dryRun: true, logDir, metricsUrl: `${app.url}/metrics` });
    expect(dry.file).toBeUndefined();
    expect(dry.files.map((f) => f.name)).toEqual(
      expect.arrayContaining(['versions.json', 'doctor.json', 'config.json', 'database.json', 'license.json', 'queues.json', 'metrics.txt', 'logs/server.log', 'redactions.json', 'SUMMARY.md']),
    );
    expect(readdirSync(work).filter((n) => n.endsWith('.tar.gz'))).toEqual([]);

    const out = path.join(work, 'bundle.tar.gz');
    const r = await supportBundle(config, { out, logDir, metricsUrl: `${app.url}/metrics` });
    expect(r.file).toBe(out);
    const dir = path.join(work, 'extracted');
    const read = await readArchive(out, {}, dir);
    const names = read.entries.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining(['versions.json', 'doctor.json', 'config.json', 'database.json', 'license.json', 'queues.json', 'metrics.txt', 'logs/server.log', 'redactions.json', 'SUMMARY.md']));
    expect(names.some((n) => n.endsWith('.db'))).toBe(false);

    const seeded: Record<string, string> = {
      masterKey,
      masterKeyHex: Buffer.from(masterKey, 'base64').toString('hex'),
      previousKey,
      idpSecret,
      storedIdp,
      adminPassword,
      metricsToken,
      providerKey,
      apiKey,
      userPassword,
      prompt,
      storedPrompt,
      redisPassword,
      odd,
    };
    for (const f of allFiles(dir)) {
      const text = readFileSync(f).toString('utf8');
      for (const [what, value] of Object.entries(seeded)) {
        expect(text.includes(value), `${what} found in ${path.relative(dir, f)}`).toBe(false);
      }
    }

    // what is in it is useful
    const doctor = JSON.parse(readFileSync(path.join(dir, 'doctor.json'), 'utf8')) as { checks: { id: string }[] };
    expect(doctor.checks.map((c) => c.id)).toEqual(expect.arrayContaining(['database', 'migrations', 'master_key', 'backup_age']));
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.ENCLAVE_MASTER_KEY).toBe('[redacted]');
    expect(cfg.ENCLAVE_METRICS_TOKEN).toBe('[redacted]');
    expect(cfg.REDIS_URL).toBe('[redacted]');
    expect(cfg.ENCLAVE_DATA_DIR).toBe(services.config.dataDir);
    expect(cfg.ENCLAVE_OIDC_CLIENT_SECRET_FILE).toBe(idpFile);
    if (services.store.dialect === 'sqlite') {
      const db = JSON.parse(readFileSync(path.join(dir, 'database.json'), 'utf8')) as { tables: Record<string, number>; quickCheck: string };
      expect(db.quickCheck).toBe('ok');
      expect(db.tables.settings).toBeGreaterThan(0);
      expect(db.tables.call_contents).toBe(1); // a count, never the rows
    } else {
      const db = JSON.parse(readFileSync(path.join(dir, 'database.json'), 'utf8')) as { dialect: string; tables: Record<string, { bytes: number }> };
      expect(db.dialect).toBe('postgres');
      expect(db.tables.call_contents!.bytes).toBeGreaterThan(0); // sizes and estimates, never the rows
    }
    expect(readFileSync(path.join(dir, 'metrics.txt'), 'utf8')).toContain('enclave_build_info');
    expect(readFileSync(path.join(dir, 'metrics.txt'), 'utf8')).toContain('enclave_backup_last_success_timestamp_seconds');
    const log = readFileSync(path.join(dir, 'logs', 'server.log'), 'utf8');
    expect(log).toContain('"requestId":"req_1"');
    expect(log).toContain('[redacted]');
    const licence = JSON.parse(readFileSync(path.join(dir, 'license.json'), 'utf8')) as Record<string, unknown>;
    expect(licence.state).toBeTruthy();
    expect(JSON.stringify(licence)).not.toMatch(/BEGIN ENCLAVE LICENSE|signature/i);
    const red = JSON.parse(readFileSync(path.join(dir, 'redactions.json'), 'utf8')) as { redactions: { file: string; rule: string; count: number }[] };
    expect(red.redactions.some((x) => x.file === 'config.json' && x.rule === 'secret-setting:ENCLAVE_MASTER_KEY')).toBe(true);
    expect(red.redactions.some((x) => x.file === 'logs/server.log')).toBe(true);
    expect(red.redactions.some((x) => x.file === 'logs/server.log' && x.rule === 'known-secret-value')).toBe(true);
    expect(readFileSync(path.join(dir, 'SUMMARY.md'), 'utf8')).toContain('# Enclave support bundle');
  });

  it('on PostgreSQL: the database facts (version, primary, connections, migration level), never the password of the URL', async () => {
    const work = tempDir('enclave-bundle-pg-');
    cleanup.push(work);
    // Trust auth in the test cluster: any password is accepted, so one can be in the URL.
    const password = `pg-pw-${randomBytes(8).toString('hex')}`;
    const url = (await freshDatabase('bundle')).replace('postgres@', `postgres:${password}@`);
    const config = testConfig({ ENCLAVE_DATABASE_URL: url });
    const opened = await openStore(config, { appVersion: 'test', now: Date.now });
    await opened.close();
    const out = path.join(work, 'bundle.tar.gz');
    await supportBundle(config, { out, metricsUrl: 'http://127.0.0.1:9/metrics' });
    const dir = path.join(work, 'extracted');
    await readArchive(out, {}, dir);
    for (const f of allFiles(dir)) expect(readFileSync(f, 'utf8').includes(password), `the password in ${path.relative(dir, f)}`).toBe(false);
    const db = JSON.parse(readFileSync(path.join(dir, 'database.json'), 'utf8')) as Record<string, any>; // JSON of the bundle
    expect(db.error).toBeUndefined();
    expect(db).toMatchObject({ dialect: 'postgres', reachable: true, role: 'primary', tls: false, streamingReplicas: 0 });
    expect(db.database).toMatch(/^postgres:\/\/[^/]*@127\.0\.0\.1:\d+\/bundle_/); // which database, its credentials masked
    expect(db.version).toMatch(/^\d+/);
    expect(db.connections.max).toBeGreaterThan(0);
    expect(db.connections.byApplication['enclave support-bundle']).toBeGreaterThanOrEqual(1);
    expect(db.migrations.pending).toEqual([]);
    expect(db.migrations.databaseHead).toBe(db.migrations.codeHead);
    expect(db.tables.settings.bytes).toBeGreaterThan(0);
    expect(db.databaseBytes).toBeGreaterThan(0);
  });

  it('the CLI dry run lists files and writes nothing', async () => {
    const work = tempDir('enclave-bundle-cli-');
    cleanup.push(work);
    const env = { ENCLAVE_DATA_DIR: path.join(work, 'data'), REDIS_URL: 'redis://127.0.0.1:1/0' };
    loadConfig(env);
    const r = await runCliOk(['support-bundle', '--dry-run', '--out', work + '/', '--json'], env);
    const out = JSON.parse(r.stdout) as { files: { name: string }[] };
    expect(out.files.map((f) => f.name)).toContain('SUMMARY.md');
    expect(readdirSync(work)).toEqual([]);
    expect(existsSync(path.join(work, 'data'))).toBe(false);
  });
});
