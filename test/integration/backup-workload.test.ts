import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { databaseFile } from '../../server/db/connection.js';
import { createBackup } from '../../server/ops/backup/create.js';
import { restoreBackup } from '../../server/ops/backup/restore.js';
import { tempDir, testConfig } from '../helpers/app.js';
import { waitFor } from '../helpers/wait.js';

const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/** A second process writing rows in short transactions, as the gateway and worker do. */
function startWriter(dbFile: string): { stop: () => Promise<number> } {
  const script = `
    import Database from 'better-sqlite3';
    const db = new Database(process.argv[1]);
    db.pragma('journal_mode = WAL'); db.pragma('busy_timeout = 5000');
    const s1 = db.prepare("INSERT INTO settings (key, value, secret, updated_at) VALUES (?, ?, 0, ?)");
    const s2 = db.prepare("INSERT INTO tenant_settings (tenant_id, key, value, updated_at) VALUES ('ten_load', ?, ?, ?)");
    // usage records as the gateway writes them (one per call)
    const s3 = db.prepare("INSERT INTO usage_records (id, tenant_id, request_id, endpoint, latency_ms, status, http_status, created_at) VALUES (?, 'ten_load', ?, '/v1/chat/completions', 5, 'ok', 200, ?)");
    let n = 0, stop = false;
    process.on('SIGTERM', () => { stop = true; });
    const tick = () => {
      if (stop) { process.stdout.write(String(n)); process.exit(0); }
      n++;
      db.transaction(() => {
        s1.run('load.' + n, String(n), Date.now());
        s2.run('k' + n, String(n), Date.now());
        s3.run('use_load_' + String(n).padStart(8, '0'), 'req_load_' + n, Date.now());
      })();
      setImmediate(tick);
    };
    tick();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, dbFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve(Number(out)));
        child.kill('SIGTERM');
      }),
  };
}

function loadRows(file: string): { settings: number[]; tenant: number[] } {
  const db = new Database(file, { readonly: true });
  try {
    const s = (db.prepare("SELECT value FROM settings WHERE key LIKE 'load.%'").all() as { value: string }[]).map((r) => Number(r.value)).sort((a, b) => a - b);
    const t = (db.prepare("SELECT value FROM tenant_settings WHERE tenant_id = 'ten_load'").all() as { value: string }[]).map((r) => Number(r.value)).sort((a, b) => a - b);
    return { settings: s, tenant: t };
  } finally {
    db.close();
  }
}

describe('backup during a running workload', () => {
  it('snapshots consistently while another process writes, and restores into a fresh data dir', async () => {
    const config = testConfig();
    cleanup.push(config.dataDir);
    const services = await createServices(config, { log: pino({ level: 'silent' }) });
    services.sqlite!.$client
      .prepare("INSERT INTO tenants (id, slug, name, created_at, updated_at) VALUES ('ten_load', 'load', 'Load', ?, ?)")
      .run(Date.now(), Date.now());
    await services.settings.setSecret('provider.test.apiKey', 'sk-test-provider-credential');
    await services.close();
    // an uploaded batch file (server/batch stores them under <dataDir>/files/<tenant>/), and a half-written one
    mkdirSync(path.join(config.dataDir, 'files', 'ten_load'), { recursive: true });
    writeFileSync(path.join(config.dataDir, 'files', 'ten_load', 'file_1.jsonl'), '{"custom_id":"a"}\n');
    writeFileSync(path.join(config.dataDir, 'files', 'ten_load', 'file_2.jsonl.tmp'), 'partial');

    const dbFile = databaseFile(config.dataDir);
    const writer = startWriter(dbFile);
    // let the workload run, then note what is committed before the snapshot starts
    const before = await waitFor(() => loadRows(dbFile).settings.length, { until: (k) => k >= 50, timeout: 15_000, what: '50 rows written by the workload' });
    const out = tempDir('enclave-backups-');
    cleanup.push(out);
    const backup = await createBackup(config, { out: out + '/', encrypt: { passphrase: 'workload pass', logN: 12 } });
    const total = await writer.stop();
    expect(total).toBeGreaterThan(before);
    expect(backup.manifest.integrityCheck).toBe('ok');

    // restore into a fresh data dir (same master key: the secrets export would carry it)
    const fresh = testConfig({ ENCLAVE_MASTER_KEY: config.masterKey! });
    cleanup.push(fresh.dataDir);
    const r = await restoreBackup(fresh, backup.file, { keys: { passphrase: 'workload pass' }, trustInstallations: [backup.manifest.installationId!] });
    expect(r.secrets).toMatchObject({ failed: [], selfTest: 'ok' });
    expect('checked' in r.secrets && r.secrets.checked).toBeGreaterThanOrEqual(2);

    const restored = databaseFile(fresh.dataDir);
    const db = new Database(restored, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // every table has the rows the manifest counted at the snapshot
    for (const [table, count] of Object.entries(backup.manifest.tables)) {
      expect((db.prepare(`SELECT count(*) AS c FROM "${table}"`).get() as { c: number }).c, table).toBe(count);
    }
    db.close();
    const rows = loadRows(restored);
    // a consistent snapshot: rows 1..k with no gaps, k at least what was committed before it began
    const k = rows.settings.length;
    expect(k).toBeGreaterThanOrEqual(before);
    expect(rows.settings).toEqual(Array.from({ length: k }, (_, i) => i + 1));
    // both tables written in one transaction: same prefix in each
    expect(rows.tenant).toEqual(rows.settings);
    // and the usage records of the same transactions (the manifest counts them too)
    expect(backup.manifest.tables.usage_records).toBeGreaterThanOrEqual(k);
    const u = new Database(restored, { readonly: true });
    const usage = (u.prepare("SELECT count(*) AS c FROM usage_records WHERE tenant_id = 'ten_load'").get() as { c: number }).c;
    u.close();
    expect(usage).toBe(k);

    // uploaded files come back; temp files of unfinished uploads do not
    expect(readFileSync(path.join(fresh.dataDir, 'files', 'ten_load', 'file_1.jsonl'), 'utf8')).toBe('{"custom_id":"a"}\n');
    expect(existsSync(path.join(fresh.dataDir, 'files', 'ten_load', 'file_2.jsonl.tmp'))).toBe(false);
    expect(backup.manifest.parts.map((p) => p.name)).toContain('files/files/ten_load/file_1.jsonl');

    // the restored installation starts and its secrets decrypt
    const again = await createServices(fresh, { log: pino({ level: 'silent' }) });
    expect(await again.settings.getSecret('provider.test.apiKey')).toBe('sk-test-provider-credential');
    await again.close();
  });
});
