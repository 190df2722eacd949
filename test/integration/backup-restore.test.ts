import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { loadConfig } from '../../server/config/load.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { loadMigrations, migrate } from '../../server/db/migrator.js';
import { createBackup } from '../../server/ops/backup/create.js';
import { restoreBackup } from '../../server/ops/backup/restore.js';
import { acquireRestoreLock, DataDirBusyError, liveProcesses, registerProcess } from '../../server/ops/process-registry.js';
import { tempDir, testConfig, testRedisUrl } from '../helpers/app.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { spawnServer } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

function track<T extends { dataDir: string }>(c: T): T {
  cleanup.push(c.dataDir);
  return c;
}

const enclave = (args: string[], env: Record<string, string>) => runCli(args, env);

describe('backup restore', () => {
  it('refuses a data dir used by a running server; --stop stops it and restores', async () => {
    const key = randomBytes(32).toString('base64');
    const cfg = track(testConfig({ ENCLAVE_MASTER_KEY: key }));
    const s = await createServices(cfg, { log: pino({ level: 'silent' }) });
    await s.close();
    const backup = await createBackup(cfg, { out: path.join(cfg.dataDir, 'b.tar.gz') });

    const server = await spawnServer({ env: { ENCLAVE_DATA_DIR: cfg.dataDir, ENCLAVE_MASTER_KEY: key } });
    try {
      expect(liveProcesses(cfg.dataDir).map((p) => p.pid)).toEqual([server.child.pid]);
      await expect(restoreBackup(cfg, backup.file)).rejects.toThrow(DataDirBusyError);
      await expect(restoreBackup(cfg, backup.file)).rejects.toThrow(/in use by api pid \d+/);
      // the CLI says the same, with its own exit code
      const env = { ENCLAVE_DATA_DIR: cfg.dataDir, ENCLAVE_MASTER_KEY: key, REDIS_URL: testRedisUrl() };
      const cli = await enclave(['backup', 'restore', backup.file], env);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toMatch(/in use by api pid/);
      expect(server.child.exitCode).toBeNull();

      const r = await restoreBackup(cfg, backup.file, { stop: true });
      expect(r.stopped.map((p) => p.pid)).toEqual([server.child.pid]);
      expect((await server.exited()).code).toBe(0);
      expect(r.preRestore).toBeTruthy();
      expect(existsSync(path.join(r.preRestore!, 'enclave.db'))).toBe(true);
    } finally {
      server.child.kill('SIGKILL');
    }
    // the pid record is gone, and a server refuses to start while a restore holds the lock
    expect(liveProcesses(cfg.dataDir)).toEqual([]);
  });

  it('a server does not start while a restore holds the data dir', async () => {
    const dir = tempDir();
    cleanup.push(dir);
    // this test process plays the restore: its lock record is live
    const release = acquireRestoreLock(dir);
    try {
      const server = await spawnServer({ env: { ENCLAVE_DATA_DIR: dir }, waitReady: false });
      const exit = await server.exited();
      expect(exit.code).toBe(2);
      expect(server.stderr()).toMatch(/a restore \(pid \d+/);
    } finally {
      release();
    }
    // and registering works again afterwards
    const unregister = registerProcess(dir, 'test');
    unregister();
  });

  it('records from another host (container) count while fresh, dead local pids never', async () => {
    const dir = tempDir();
    cleanup.push(dir);
    mkdirSync(path.join(dir, 'run'));
    const remote = path.join(dir, 'run', 'worker-1.pid');
    writeFileSync(remote, JSON.stringify({ pid: 1, role: 'worker', host: 'other-container', startedAt: new Date().toISOString() }));
    const dead = path.join(dir, 'run', 'api-999999.pid');
    writeFileSync(dead, JSON.stringify({ pid: 999_999, role: 'api', host: hostname(), startedAt: new Date().toISOString() }));
    expect(liveProcesses(dir).map((p) => p.host)).toEqual(['other-container']);
    expect(existsSync(dead)).toBe(false);
    expect(() => acquireRestoreLock(dir)).toThrow(/worker pid 1 on other-container/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(remote, old, old);
    expect(liveProcesses(dir)).toEqual([]);
    acquireRestoreLock(dir)();
    // --force restores although a fresh record exists
    utimesSync(remote, new Date(), new Date());
    acquireRestoreLock(dir, { force: true })();
  });

  it('refuses a backup with a newer schema', async () => {
    const cfg = track(testConfig());
    const s = await createServices(cfg, { log: pino({ level: 'silent' }) });
    await s.close();
    const db = new Database(databaseFile(cfg.dataDir));
    db.prepare("INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES (9999, '9999_from_the_future', 'x', 0, '99.0.0')").run();
    db.close();
    const backup = await createBackup(cfg, { out: path.join(cfg.dataDir, 'future.tar.gz') });
    expect(backup.manifest.migrationHead).toBe('9999_from_the_future');

    const target = track(testConfig());
    await expect(restoreBackup(target, backup.file, { trustInstallations: [backup.manifest.installationId!] })).rejects.toThrow(/refusing to restore: backup schema 9999_from_the_future is newer than this Enclave/);
    expect(existsSync(databaseFile(target.dataDir))).toBe(false);
  });

  it('restores an older schema and migrates it to the current head', async () => {
    const cfg = track(testConfig());
    const db = openDatabase(databaseFile(cfg.dataDir));
    const all = loadMigrations();
    migrate(db.$client, { migrations: all.slice(0, 1) });
    db.$client.prepare("INSERT INTO settings (key, value, secret, updated_at) VALUES ('old.row', '\"kept\"', 0, 1)").run();
    db.$client.close();
    const backup = await createBackup(cfg, { out: path.join(cfg.dataDir, 'old.tar.gz') });
    expect(backup.manifest.migrationHead).toBe(all[0]!.tag);

    const target = track(testConfig());
    const r = await restoreBackup(target, backup.file, { trustInstallations: [backup.manifest.installationId!] });
    expect(r.schema).toEqual({ backup: all[0]!.tag, now: all.at(-1)!.tag, migrated: all.length > 1 });
    const restored = new Database(databaseFile(target.dataDir), { readonly: true });
    expect((restored.prepare("SELECT value FROM settings WHERE key = 'old.row'").get() as { value: string }).value).toBe('"kept"');
    restored.close();
  });

  it('drill through the CLI: X25519 backup + secrets export, wipe, restore into a fresh embedded data dir, server starts', async () => {
    const work = tempDir('enclave-drill-');
    cleanup.push(work);
    const src = { ENCLAVE_DATA_DIR: path.join(work, 'data'), REDIS_URL: testRedisUrl(), ENCLAVE_LOG_LEVEL: 'silent' };
    const s = await createServices(loadConfig(src), { log: pino({ level: 'silent' }) });
    await s.settings.setSecret('idp.clientSecret', 'idp-drill-secret');
    await s.close();

    const idFile = path.join(work, 'operator.key');
    const kg = await enclave(['backup', 'keygen', '--out', idFile], src);
    expect(kg.code).toBe(0);
    const pub = kg.stdout.trim();
    expect(pub).toMatch(/^enclave-x25519:/);
    const created = await enclave(['backup', 'create', '--out', path.join(work, 'backups') + '/', '--recipient', pub, '--keep', '2', '--json'], src);
    expect(created.code, created.stderr).toBe(0);
    const file = (JSON.parse(created.stdout) as { file: string }).file;
    expect(path.basename(file)).toMatch(/^enclave-backup-\d{8}T\d{9}Z-v.+\.tar\.gz\.enc$/);
    const pass = path.join(work, 'pass');
    writeFileSync(pass, 'drill passphrase\n');
    const sec = await enclave(['backup', 'secrets', '--out', path.join(work, 'secrets.enc'), '--recipient', `${idFile}.pub`], src);
    expect(sec.code, sec.stderr).toBe(0);


    const verified = await enclave(['backup', 'verify', file, '--identity', idFile, '--secrets', path.join(work, 'secrets.enc'), '--json'], src);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);

    const dst = { ...src, ENCLAVE_DATA_DIR: path.join(work, 'restored') };
    // a new installation: the operator names the installation whose backup this is
    const signer = (JSON.parse(verified.stdout) as { signer: { installationId: string } }).signer.installationId;
    const restored = await enclave(['backup', 'restore', file, '--identity', idFile, '--secrets', path.join(work, 'secrets.enc'), '--trust-installation', signer, '--json'], dst);
    expect(restored.code, restored.stderr).toBe(0);
    const r = JSON.parse(restored.stdout) as { masterKeyInstalled: boolean; secrets: { failed: unknown[]; selfTest: string }; licence: { state: string } };
    expect(r.masterKeyInstalled).toBe(true);
    expect(r.secrets).toMatchObject({ failed: [], selfTest: 'ok' });
    expect(r.licence.state).toBeTruthy();
    const again = await createServices(loadConfig(dst), { log: pino({ level: 'silent' }) });
    expect(await again.settings.getSecret('idp.clientSecret')).toBe('idp-drill-secret');
    await again.close();

    // retention (--keep) keeps the newest 2 generated names
    for (let i = 1; i <= 2; i++) await createBackup(loadConfig(src), { out: path.join(work, 'backups') + '/', keep: 2, now: () => Date.now() + i * 1000 });
    const kept = readdirSync(path.join(work, 'backups')).filter((n) => n.startsWith('enclave-backup-'));
    expect(kept).toHaveLength(2);
    expect(kept).not.toContain(path.basename(file));
  }, 60_000);
});

describe('SIGKILL during backup create', () => {
  it('leaves no file at the final name, and the next run succeeds', async () => {
    const cfg = track(testConfig());
    const s = await createServices(cfg, { log: pino({ level: 'silent' }) });
    // enough incompressible data that writing the archive takes a while
    const ins = s.sqlite!.$client.prepare('INSERT INTO settings (key, value, secret, updated_at) VALUES (?, ?, 0, 0)');
    s.sqlite!.$client.transaction(() => {
      for (let i = 0; i < 400; i++) ins.run(`blob.${i}`, randomBytes(96 * 1024).toString('base64'));
    })();
    await s.close();
    const out = tempDir('enclave-kill-');
    cleanup.push(out);
    const final = path.join(out, 'backup.tar.gz');
    const child = spawnCli(['backup', 'create', '--out', final], { ENCLAVE_DATA_DIR: cfg.dataDir, ENCLAVE_MASTER_KEY: cfg.masterKey!, REDIS_URL: cfg.redisUrl! }, 'ignore');
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
    // kill as soon as the archive is being written under its temporary name
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`backup create exited (${child.exitCode}) before writing`);
        return readdirSync(out).some((n) => n.includes('.tmp-'));
      },
      { timeout: 20_000, interval: 5, what: 'the archive being written under its temporary name' },
    );
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(final)).toBe(false);

    const r = await createBackup(cfg, { out: final });
    expect(r.file).toBe(final);
    expect(readdirSync(out)).toEqual(['backup.tar.gz']);
  }, 60_000);
});
