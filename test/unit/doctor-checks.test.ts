import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/load.js';
import { databaseFile, openDatabase, type Db } from '../../server/db/connection.js';
import { migrate } from '../../server/db/migrator.js';
import { DOCTOR_CHECK_IDS, exitCodeFor, runDoctor, worst } from '../../server/doctor/checks.js';
import { backupAgeCheck, clockCheck, providersCheck, tlsCheck } from '../../server/doctor/extra-checks.js';
import { writeBackupRecord } from '../../server/ops/backup/records.js';

const HOUR = 3600_000;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function freshDb(appliedAt: number): Db {
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-doctor-'));
  dirs.push(dir);
  const db = openDatabase(databaseFile(dir));
  migrate(db.$client, { now: () => appliedAt });
  return db;
}

function cert(opts: { notBefore: Date; notAfter: Date; cn?: string; san?: string[] }): string {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const c = forge.pki.createCertificate();
  c.publicKey = keys.publicKey;
  c.serialNumber = '01';
  c.validity.notBefore = opts.notBefore;
  c.validity.notAfter = opts.notAfter;
  const attrs = [{ name: 'commonName', value: opts.cn ?? 'enclave.example.com' }];
  c.setSubject(attrs);
  c.setIssuer(attrs);
  c.setExtensions([{ name: 'subjectAltName', altNames: (opts.san ?? ['enclave.example.com']).map((value) => ({ type: 2, value })) }]);
  c.sign(keys.privateKey, forge.md.sha256.create());
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-cert-'));
  dirs.push(dir);
  const f = path.join(dir, 'server.crt');
  writeFileSync(f, forge.pki.certificateToPem(c));
  return f;
}

describe('doctor: clock', () => {
  const now = Date.UTC(2030, 5, 1);
  it('fails when the clock is behind data already written, with the fix', () => {
    const db = freshDb(now + 2 * HOUR);
    const r = clockCheck(db, now, () => 'synced');
    expect(r.status).toBe('fail');
    expect(r.message).toMatch(/behind data this installation wrote .* fix the system time/);
    db.$client.close();
  });
  it('warns when NTP says unsynchronized, ok when synced or unknown', () => {
    const db = freshDb(now - HOUR);
    expect(clockCheck(db, now, () => 'unsynced')).toMatchObject({ status: 'warn', message: expect.stringMatching(/not NTP-synchronized; enable NTP/) });
    expect(clockCheck(db, now, () => 'synced').status).toBe('ok');
    expect(clockCheck(db, now, () => undefined)).toMatchObject({ status: 'ok', data: { ntp: 'unknown' } });
    expect(clockCheck(undefined, now, () => undefined).status).toBe('ok');
    db.$client.close();
  });
});

describe('doctor: backup age', () => {
  const now = Date.UTC(2030, 5, 1);
  it('a young installation without a backup is ok; an older one warns', () => {
    const young = freshDb(now - 2 * HOUR);
    expect(backupAgeCheck(young, now, 26)).toMatchObject({ status: 'ok', message: expect.stringMatching(/no backup yet/) });
    const old = freshDb(now - 72 * HOUR);
    expect(backupAgeCheck(old, now, 26)).toMatchObject({ status: 'warn', message: expect.stringMatching(/run: enclave backup create/) });
    young.$client.close();
    old.$client.close();
  });
  it('reads the last-success record: recent ok, stale warn, very stale fail', () => {
    const db = freshDb(now - 30 * 24 * HOUR);
    writeBackupRecord(db.$client, 'lastSuccess', { at: now - HOUR, file: '/b/x.tar.gz' });
    expect(backupAgeCheck(db, now, 26)).toMatchObject({ status: 'ok', data: { file: '/b/x.tar.gz' } });
    writeBackupRecord(db.$client, 'lastSuccess', { at: now - 30 * HOUR, file: '/b/x.tar.gz' });
    expect(backupAgeCheck(db, now, 26).status).toBe('warn');
    writeBackupRecord(db.$client, 'lastSuccess', { at: now - 8 * 26 * HOUR, file: '/b/x.tar.gz' });
    expect(backupAgeCheck(db, now, 26)).toMatchObject({ status: 'fail', message: expect.stringMatching(/check the backup schedule/) });
    db.$client.close();
  });
});

describe('doctor: TLS certificate', () => {
  const now = Date.now();
  const day = 24 * HOUR;
  it('ok, expiring soon (warn), about to expire and expired (fail), not yet valid (fail)', () => {
    expect(tlsCheck(cert({ notBefore: new Date(now - day), notAfter: new Date(now + 90 * day) }), 'https://enclave.example.com', now).status).toBe('ok');
    expect(tlsCheck(cert({ notBefore: new Date(now - day), notAfter: new Date(now + 20 * day) }), undefined, now)).toMatchObject({ status: 'warn', message: expect.stringMatching(/renew it soon/) });
    expect(tlsCheck(cert({ notBefore: new Date(now - day), notAfter: new Date(now + 3 * day) }), undefined, now).status).toBe('fail');
    expect(tlsCheck(cert({ notBefore: new Date(now - 10 * day), notAfter: new Date(now - day) }), undefined, now)).toMatchObject({ status: 'fail', message: expect.stringMatching(/expired/) });
    expect(tlsCheck(cert({ notBefore: new Date(now + day), notAfter: new Date(now + 90 * day) }), undefined, now).message).toMatch(/not valid before/);
  });
  it('fails when the certificate does not cover ENCLAVE_PUBLIC_URL, or is unreadable', () => {
    const f = cert({ notBefore: new Date(now - day), notAfter: new Date(now + 90 * day) });
    expect(tlsCheck(f, 'https://other.example.com', now)).toMatchObject({ status: 'fail', message: expect.stringMatching(/does not cover other.example.com/) });
    expect(tlsCheck('/nonexistent/cert.pem', undefined, now)).toMatchObject({ status: 'fail', message: expect.stringMatching(/cannot read/) });
  });
});

describe('doctor: providers (opt-in)', () => {
  it('ok when every enabled deployment answers; fail naming the unreachable one', async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const db = freshDb(Date.now());
    try {
      expect((await providersCheck(db)).message).toMatch(/no provider deployments/);
      const ins = db.$client.prepare("INSERT INTO provider_deployments (id, name, kind, base_url, boundary, created_at, updated_at) VALUES (?, ?, 'openai', ?, 'local', 0, 0)");
      ins.run('prv_a', 'up', `http://127.0.0.1:${port}/v1`);
      expect((await providersCheck(db)).status).toBe('ok');
      ins.run('prv_b', 'down', 'http://127.0.0.1:1/v1');
      const r = await providersCheck(db, 1000);
      expect(r).toMatchObject({ status: 'fail', message: expect.stringMatching(/1 of 2 provider\(s\) unreachable: down/) });
    } finally {
      db.$client.close();
      server.close();
    }
  });
});

describe('doctor: engine', () => {
  it('skip flags report the check as skipped, and unknown ids are refused by the CLI list', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'enclave-doctor-skip-'));
    dirs.push(dir);
    const config = loadConfig({ ENCLAVE_DATA_DIR: dir, REDIS_URL: 'redis://127.0.0.1:1/0', ENCLAVE_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') });
    const r = await runDoctor(config, { skip: ['redis', 'database', 'disk'] });
    const byId = Object.fromEntries(r.checks.map((c) => [c.id, c]));
    expect(byId.redis).toMatchObject({ status: 'ok', skipped: true });
    expect(byId.disk).toMatchObject({ status: 'ok', skipped: true });
    expect(byId.database).toMatchObject({ status: 'ok', skipped: true });
    expect(byId.migrations!.status).toBe('fail');
    expect(r.checks.every((c) => (DOCTOR_CHECK_IDS as readonly string[]).includes(c.id))).toBe(true);
    // every warn/fail message carries a fix (a ';' or ':' clause)
    for (const c of r.checks.filter((x) => x.status !== 'ok')) expect(c.message, c.id).toMatch(/[;:] /);
    expect(worst(r.checks)).toBe('fail');
    expect(exitCodeFor('fail')).toBe(2);
    // the opt-in checks run only when asked
    expect(byId.tls).toBeUndefined();
    expect(byId.providers).toBeUndefined();
  });
});

describe('doctor: queue health', () => {
  it('ok when empty; warns on waiting jobs without a worker and on an old waiting job', async () => {
    const { testConfig } = await import('../helpers/app.js');
    const { JobQueues } = await import('../../server/jobs/queues.js');
    const { WORKERS_KEY } = await import('../../server/jobs/metrics.js');
    const { queueCheck } = await import('../../server/doctor/queue-check.js');
    const pino = (await import('pino')).default;
    const config = testConfig();
    dirs.push(config.dataDir);
    const url = config.redisUrl!;
    const { Redis } = await import('ioredis');
    const raw = new Redis(url);
    const queues = new JobQueues(config, url, pino({ level: 'silent' }));
    try {
      await raw.flushdb();
      const now = Date.now();
      expect(await queueCheck(config, url, now)).toMatchObject({ status: 'ok', message: expect.stringMatching(/0 waiting, 0 active, 0 worker/) });
      await queues.add('maintenance', 'doctor-test', {});
      expect(await queueCheck(config, url, now)).toMatchObject({ status: 'warn', message: expect.stringMatching(/1 job\(s\) waiting and no worker alive; start the worker/) });
      const later = now + 20 * 60_000;
      await raw.hset(WORKERS_KEY, 'w1', JSON.stringify({ at: later, metrics: [] }));
      const old = await queueCheck(config, url, later);
      expect(old.status).toBe('warn');
      expect(old.message).toMatch(/oldest waiting job in maintenance is 20 min old/);
      expect(old.message).not.toMatch(/no worker alive/);
      expect(await queueCheck(config, undefined, now)).toMatchObject({ status: 'ok' });
    } finally {
      await raw.flushdb();
      raw.disconnect();
      await queues.close();
    }
  });
});
