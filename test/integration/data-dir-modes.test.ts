import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { loadConfig } from '../../server/config/load.js';
import { createBackup } from '../../server/ops/backup/create.js';
import { startTestApp, tempDir, testRedisUrl } from '../helpers/app.js';
import { seedTenant } from '../helpers/identity.js';
import { spawnServer } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Issue 16: the data dir is 0700 and its files 0600 — the database with its -wal/-shm, the
 * generated master key, uploaded batch files, backups, the process registry — also files
 * created after start, whatever umask the service was started with (022 here).
 */
const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

/** Every entry under dir (recursively) with a mode other than 0600 files / 0700 dirs. */
function loose(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isSymbolicLink()) continue;
    if (d.isDirectory()) {
      if (mode(p) !== '700') out.push(`${p} ${mode(p)}`);
      out.push(...loose(p));
    } else if (d.isFile() && mode(p) !== '600') out.push(`${p} ${mode(p)}`);
  }
  return out;
}

/** Runs fn with the process umask at 022 (a typical service default), restored after. */
async function withUmask022<T>(fn: () => Promise<T>): Promise<T> {
  const old = process.umask(0o022);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

describe('data dir permissions', () => {
  it('a server started with umask 022 on a data dir of an older release makes it 0700 / 0600, the database files included', async () => {
    const dataDir = tempDir('enclave-modes-');
    cleanup.push(dataDir);
    chmodSync(dataDir, 0o755);
    mkdirSync(path.join(dataDir, 'files', 'ten_old'), { recursive: true });
    writeFileSync(path.join(dataDir, 'files', 'ten_old', 'in.jsonl'), '{}\n');
    chmodSync(path.join(dataDir, 'files'), 0o755);
    chmodSync(path.join(dataDir, 'files', 'ten_old'), 0o755);
    chmodSync(path.join(dataDir, 'files', 'ten_old', 'in.jsonl'), 0o644);
    const server = await withUmask022(() => spawnServer({ env: { ENCLAVE_DATA_DIR: dataDir, ENCLAVE_MASTER_KEY: undefined } }));
    try {
      expect(mode(dataDir)).toBe('700');
      for (const f of ['enclave.db', 'enclave.db-wal', 'enclave.db-shm', 'secrets/master.key']) {
        expect(existsSync(path.join(dataDir, f)), f).toBe(true);
        expect(mode(path.join(dataDir, f)), f).toBe('600');
      }
      expect(mode(path.join(dataDir, 'files', 'ten_old'))).toBe('700');
      expect(mode(path.join(dataDir, 'files', 'ten_old', 'in.jsonl'))).toBe('600');
      expect(loose(dataDir)).toEqual([]);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited();
    }
  }, 90_000);

  it('files created later (batch uploads, backups) are private too', async () => {
    const dataDir = tempDir('enclave-modes-');
    cleanup.push(dataDir);
    chmodSync(dataDir, 0o755);
    // the generated master key (no ENCLAVE_MASTER_KEY), as embedded mode runs
    const config = loadConfig({ ENCLAVE_DATA_DIR: dataDir, REDIS_URL: testRedisUrl(), ENCLAVE_LOG_LEVEL: 'silent', PORT: '0', ENCLAVE_HOST: '127.0.0.1' });
    const umask = process.umask(0o022); // how the service was started
    const app = await startTestApp({ config, entitlements: unrestricted, log: pino({ level: 'silent' }) });
    try {
      const t = await seedTenant(app.services, 'modes', ['member']);
      const { secret } = await app.services.identity.keys.create(t.ctx, { name: 'modes', ownerUserId: t.users.member!.id, scopes: ['models:invoke', 'batches:write'] });
      const client = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: secret, maxRetries: 0 });
      // the process started with umask 022; start-up made it 077 for everything written from now on
      expect(process.umask()).toBe(0o077);
      const line = JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'x', messages: [{ role: 'user', content: 'hi' }] } });
      await client.files.create({ file: await toFile(Buffer.from(line + '\n'), 'in.jsonl'), purpose: 'batch' });
      await createBackup(config, {});
      const stored = await waitFor(() => existsSync(path.join(dataDir, 'files')) && readdirSync(path.join(dataDir, 'files'), { recursive: true }).length > 0, { what: 'the uploaded file on disk' });
      expect(stored).toBe(true);
      expect(readdirSync(path.join(dataDir, 'backups')).filter((n) => n.startsWith('enclave-backup-'))).toHaveLength(1);
      expect(mode(dataDir)).toBe('700');
      expect(loose(dataDir)).toEqual([]);
    } finally {
      await app.close();
      process.umask(umask);
    }
  }, 60_000);
});
