import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { loadConfig } from '../../server/config/load.js';
import { generatedKeyFile, resolveMasterKey, writeKeyFile } from '../../server/config/master-key.js';
import { reencryptSecrets } from '../../server/config/rotate-master-key.js';
import { SecretBox } from '../../server/config/secret-box.js';
import type { Config } from '../../server/config/settings.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { sqliteStore } from '../../server/db/store.js';
import { checkStoredSecrets } from '../../server/ops/backup/secrets.js';
import { tempDir, testRedisUrl } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { nodeArgs } from '../helpers/compiled.js';

/**
 * Issue 16, master-key rotation crash path. A rotation of a key kept in a file is killed
 * (SIGKILL, a real child process) after each of its steps; then Enclave starts again on
 * the data dir (it must decrypt every stored secret), and the rotation is run again (it must
 * finish, never deleting the only copy of the key the database is under). Both for the
 * generated key of embedded mode and for ENCLAVE_MASTER_KEY_FILE.
 */
const STEPS = ['next_written', 'reencrypted', 'previous_written', 'swapped'] as const;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly keyFile: string;
}

/** A data dir with secrets stored under a key kept in a file (generated, or ENCLAVE_MASTER_KEY_FILE). */
async function setup(mode: 'generated' | 'file'): Promise<Setup> {
  const dataDir = tempDir('enclave-rotate-');
  dirs.push(dataDir);
  const env: Record<string, string> = { ENCLAVE_DATA_DIR: dataDir, REDIS_URL: testRedisUrl(), ENCLAVE_LOG_LEVEL: 'silent' };
  let keyFile = generatedKeyFile(dataDir);
  if (mode === 'file') {
    const dir = tempDir('enclave-keyfile-');
    dirs.push(dir);
    keyFile = path.join(dir, 'master_key');
    writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    env.ENCLAVE_MASTER_KEY_FILE = keyFile;
  }
  const config = loadConfig(env);
  const s = await createServices(config, { log: pino({ level: 'silent' }) });
  await s.settings.setSecret('idp.clientSecret', 'client-secret-1');
  await s.settings.setSecret('provider.x.apiKey', 'sk-rotate-2');
  await s.close();
  expect(existsSync(keyFile)).toBe(true);
  return { config, env, keyFile };
}

/** Start-up's view: the keys resolveMasterKey accepts decrypt every stored secret; and createServices reads them. */
async function startsAndDecrypts(config: Config): Promise<void> {
  const key = resolveMasterKey(config, undefined, { create: false });
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    const r = checkStoredSecrets(db.$client, key.box);
    expect(r.failed, JSON.stringify(r.failed)).toEqual([]);
    expect(r.checked).toBeGreaterThanOrEqual(2);
  } finally {
    db.$client.close();
  }
  const s = await createServices(config, { log: pino({ level: 'silent' }) });
  try {
    expect(await s.settings.getSecret('idp.clientSecret')).toBe('client-secret-1');
    expect(await s.settings.getSecret('provider.x.apiKey')).toBe('sk-rotate-2');
  } finally {
    await s.close();
  }
}

/** The rotation in a child process, killed after `killAt`. */
function rotateChild(config: Config, keyFile: string, killAt: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs('test/fixtures/rotate-child.ts'), databaseFile(config.dataDir), keyFile, killAt], { cwd: process.cwd() });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** After a finished rotation the current key file alone decrypts everything, and no .next is left. */
function onlyCurrentKeyNeeded(config: Config, keyFile: string): void {
  expect(existsSync(`${keyFile}.next`)).toBe(false);
  const box = new SecretBox(Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64'));
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    expect(checkStoredSecrets(db.$client, box).failed).toEqual([]);
  } finally {
    db.$client.close();
  }
}

describe('master-key rotation killed between its steps', () => {
  for (const mode of ['generated', 'file'] as const) {
    for (const step of mode === 'generated' ? STEPS : (['reencrypted', 'previous_written'] as const)) {
      it(`${mode} key, SIGKILL after ${step}: start-up decrypts everything, re-running finishes the rotation`, async () => {
        const { config, keyFile } = await setup(mode);
        const before = readFileSync(keyFile, 'utf8');
        const killed = await rotateChild(config, keyFile, step);
        expect(killed.signal, killed.stderr).toBe('SIGKILL');
        await startsAndDecrypts(config);
        const again = await rotateChild(config, keyFile, 'none');
        expect(again.code, again.stderr).toBe(0);
        // a crash before the swap is finished with the key the first run chose (it may already hold secrets)
        const r = JSON.parse(again.stdout) as { resumed: boolean };
        expect(r.resumed).toBe(step !== 'swapped');
        expect(readFileSync(keyFile, 'utf8')).not.toBe(before);
        onlyCurrentKeyNeeded(config, keyFile);
        await startsAndDecrypts(config);
      }, 60_000);
    }
  }

  it('the CLI finishes a rotation that was killed after re-encrypting (ENCLAVE_MASTER_KEY_FILE)', async () => {
    const { config, env, keyFile } = await setup('file');
    expect((await rotateChild(config, keyFile, 'reencrypted')).signal).toBe('SIGKILL');
    const r = await runCli(['config', 'rotate-master-key', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ resumed: true, source: 'file' });
    onlyCurrentKeyNeeded(config, keyFile);
    await startsAndDecrypts(config);
  }, 60_000);
});

describe('start-up in the crash states of a rotation', () => {
  it('accepts <key>.next: the database was re-encrypted to it but the files were not swapped yet', async () => {
    const { config, keyFile } = await setup('generated');
    const next = randomBytes(32);
    writeKeyFile(`${keyFile}.next`, next);
    const db = openDatabase(databaseFile(config.dataDir));
    await reencryptSecrets(sqliteStore(db), resolveMasterKey(config, undefined, { create: false }).box, new SecretBox(next));
    db.$client.close();
    await startsAndDecrypts(config);
  });

  it('never generates a fresh key when the key file is missing beside .next and .previous (a crash mid-swap)', async () => {
    const { config, keyFile } = await setup('generated');
    const next = randomBytes(32);
    writeKeyFile(`${keyFile}.next`, next);
    const db = openDatabase(databaseFile(config.dataDir));
    await reencryptSecrets(sqliteStore(db), resolveMasterKey(config, undefined, { create: false }).box, new SecretBox(next));
    db.$client.close();
    writeFileSync(`${keyFile}.previous`, readFileSync(keyFile));
    rmSync(keyFile);
    await startsAndDecrypts(config);
  });
});
