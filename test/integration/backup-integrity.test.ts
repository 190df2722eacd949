import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { createWriteStream } from 'node:fs';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import type { Config } from '../../server/config/settings.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { Metrics } from '../../server/metrics/registry.js';
import { readBackupRecords } from '../../server/ops/backup/records.js';
import { acquireLock } from '../../server/ops/process-registry.js';
import { readArchive } from '../../server/ops/backup/archive.js';
import { createBackup } from '../../server/ops/backup/create.js';
import { scheduledBackup } from '../../server/ops/backup/scheduled.js';
import { generateRecipientKeyPair, parseIdentity } from '../../server/ops/backup/envelope.js';
import { restoreBackup } from '../../server/ops/backup/restore.js';
import { buildSecretsExport } from '../../server/ops/backup/secrets.js';
import { trustFor } from '../../server/ops/backup/signature.js';
import { verifyBackup } from '../../server/ops/backup/verify.js';
import { tarStream, type TarEntry } from '../../server/ops/archive/tar.js';
import { tempDir, testConfig } from '../helpers/app.js';

const PASS = 'integrity test passphrase';
let config: Config;
let out: string;
let plain: string;
let withPass: string;
let withKey: string;
const pair = generateRecipientKeyPair();
const otherPair = generateRecipientKeyPair();

beforeAll(async () => {
  config = testConfig();
  const s = await createServices(config, { log: pino({ level: 'silent' }) });
  await s.settings.setSecret('provider.x.apiKey', 'sk-integrity');
  await s.close();
  out = tempDir('enclave-backups-');
  plain = (await createBackup(config, { out: path.join(out, 'plain.tar.gz') })).file;
  withPass = (await createBackup(config, { out: path.join(out, 'pass.tar.gz.enc'), encrypt: { passphrase: PASS, logN: 12 } })).file;
  withKey = (await createBackup(config, { out: path.join(out, 'key.tar.gz.enc'), encrypt: { recipient: pair.publicKey } })).file;
});
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(config.dataDir, { recursive: true, force: true });
});

function flipped(file: string, at: number): string {
  const b = readFileSync(file);
  const i = Math.min(b.length - 1, Math.max(0, at < 0 ? b.length + at : at));
  b[i] = b[i]! ^ 0x01;
  const f = `${file}.flipped-${at}`;
  writeFileSync(f, b);
  return f;
}

/** The installation that made these backups (its data dir). */
const local = () => trustFor(config.dataDir);

const failOf = (r: { checks: readonly { status: string; message: string }[] }): string =>
  r.checks.filter((c) => c.status === 'fail').map((c) => c.message).join('; ');

describe('backup create', () => {
  it('--verify reads a recipient-encrypted backup back without the private key, and records both timestamps for the gauges', async () => {
    const r = await createBackup(config, { out: path.join(out, 'verified.tar.gz.enc'), encrypt: { recipient: pair.publicKey }, verify: true, now: () => 1_900_000_000_000 });
    expect(r.verified?.ok).toBe(true);
    expect(r.verified?.checks.map((c) => c.id)).toEqual(['archive', 'manifest', 'signature', 'checksums', 'database', 'schema']);
    const db = openDatabase(databaseFile(config.dataDir));
    const metrics = new Metrics();
    metrics.trackBackups(() => readBackupRecords(db.$client));
    const text = await metrics.registry.metrics();
    db.$client.close();
    expect(text).toMatch(/^enclave_backup_last_success_timestamp_seconds 1900000000$/m);
    expect(text).toMatch(/^enclave_backup_last_verified_timestamp_seconds 1900000000$/m);
  });

  it('the scheduled backup encrypts to ENCLAVE_BACKUP_RECIPIENT, verifies and keeps the newest 14', async () => {
    const r = await scheduledBackup({ ...config, backupRecipient: pair.publicKey });
    expect(r.encryption).toBe(`x25519 ${pair.publicKey}`);
    expect(r.verified?.ok).toBe(true);
    expect(path.dirname(r.file)).toBe(path.join(config.dataDir, 'backups'));
    expect((await verifyBackup(r.file, { trust: local(), keys: { identities: [parseIdentity(pair.privateKeyPem)] } })).ok).toBe(true);
  });

  it('one backup at a time', async () => {
    const release = acquireLock(config.dataDir, 'backup', 'another backup');
    try {
      await expect(createBackup(config, { out: path.join(out, 'second.tar.gz') })).rejects.toThrow(/another backup is already running/);
    } finally {
      release();
    }
  });
});

describe('backup verify', () => {
  it('passes for plain, passphrase and X25519 archives, and with the secrets export', async () => {
    const secrets = buildSecretsExport(config);
    for (const [file, keys] of [
      [plain, {}],
      [withPass, { passphrase: PASS }],
      [withKey, { identities: [parseIdentity(pair.privateKeyPem)] }],
    ] as const) {
      const r = await verifyBackup(file, { trust: local(), keys, secrets });
      expect(failOf(r), file).toBe('');
      expect(r.ok).toBe(true);
      expect(r.checks.map((c) => c.id)).toEqual(['archive', 'manifest', 'signature', 'checksums', 'database', 'schema', 'secrets']);
    }
  });

  it('the manifest names versions, schema, SQLite, installation, parts with SHA-256 and what was skipped', async () => {
    const r = await readArchive(plain, {}, undefined);
    const m = JSON.parse(r.memory.get('manifest.json')!.toString()) as Record<string, unknown> & { parts: { name: string; sha256: string }[]; skipped: { path: string }[] };
    expect(m).toMatchObject({ format: 'enclave-backup', appVersion: expect.any(String), sqliteVersion: expect.any(String), integrityCheck: 'ok', secretsIncluded: false });
    expect(m.migrationHead).toBeTruthy();
    expect(m.installationId).toMatch(/^inst_/);
    const db = m.parts.find((p) => p.name === 'db/enclave.db')!;
    expect(db.sha256).toBe(r.entries.find((e) => e.name === 'db/enclave.db')!.sha256);
    expect(m.skipped.map((s) => s.path)).toContain('secrets/');
    // the master key is not in the archive
    const key = Buffer.from(config.masterKey!, 'base64');
    for (const e of [plain]) expect(readFileSync(e).includes(key)).toBe(false);
  });

  it('one flipped byte fails with a clear reason (plain: several positions; encrypted: body and header)', async () => {
    const size = readFileSync(plain).length;
    for (const at of [20, Math.floor(size / 2), -12]) {
      const r = await verifyBackup(flipped(plain, at), { trust: local() });
      expect(r.ok).toBe(false);
      expect(failOf(r)).toMatch(/damaged|checksum|SHA-256|corrupted|truncated|tampered/i);
    }
    const body = await verifyBackup(flipped(withPass, Math.floor(readFileSync(withPass).length / 2)), { trust: local(), keys: { passphrase: PASS } });
    expect(body.ok).toBe(false);
    expect(failOf(body)).toMatch(/damaged|tampered|authentication/i);
    const tag = await verifyBackup(flipped(withKey, -3), { trust: local(), keys: { identities: [parseIdentity(pair.privateKeyPem)] } });
    expect(tag.ok).toBe(false);
    expect(failOf(tag)).toMatch(/authentication|tampered|damaged/i);
    const header = await verifyBackup(flipped(withPass, 30), { trust: local(), keys: { passphrase: PASS } });
    expect(header.ok).toBe(false);
    expect(failOf(header)).toMatch(/header|passphrase|damaged|authentication/i);
  });

  it('a missing part fails naming it', async () => {
    const full = await readArchive(plain, {}, path.join(out, 'x-extract'));
    const entries: TarEntry[] = full.entries
      .filter((e) => e.name !== 'config/config.json')
      .map((e) => ({ name: e.name, file: e.path!, size: e.size }));
    const broken = path.join(out, 'missing-part.tar.gz');
    await pipeline(Readable.from(tarStream(entries)), createGzip(), createWriteStream(broken));
    const r = await verifyBackup(broken, { trust: local() });
    expect(r.ok).toBe(false);
    expect(failOf(r)).toContain('part config/config.json is missing');
  });

  it('a part that does not match its checksum fails naming it', async () => {
    const dir = path.join(out, 'y-extract');
    const full = await readArchive(plain, {}, dir);
    const cfg = full.entries.find((e) => e.name === 'config/config.json')!;
    const changed = readFileSync(cfg.path!, 'utf8').replace('"PORT"', '"PORX"');
    writeFileSync(cfg.path!, changed);
    const entries: TarEntry[] = full.entries.map((e) => ({ name: e.name, file: e.path!, size: e.name === cfg.name ? Buffer.byteLength(changed) : e.size }));
    const broken = path.join(out, 'bad-part.tar.gz');
    await pipeline(Readable.from(tarStream(entries)), createGzip(), createWriteStream(broken));
    const r = await verifyBackup(broken, { trust: local() });
    expect(failOf(r)).toContain('part config/config.json fails its SHA-256 checksum');
  });

  it('wrong passphrase, missing passphrase, wrong key and missing key each fail with their reason', async () => {
    expect(failOf(await verifyBackup(withPass, { trust: local(), keys: { passphrase: 'not the passphrase' } }))).toBe('wrong passphrase for this file');
    expect(failOf(await verifyBackup(withPass, { trust: local() }))).toMatch(/encrypted with a passphrase: pass --passphrase-file/);
    expect(failOf(await verifyBackup(withKey, { trust: local(), keys: { identities: [parseIdentity(otherPair.privateKeyPem)] } }))).toMatch(/wrong key: this file is encrypted to enclave-x25519:/);
    expect(failOf(await verifyBackup(withKey, { trust: local(), keys: { passphrase: PASS } }))).toMatch(/pass --identity/);
  });

  it('wrong secrets (another master key) fail the secrets check', async () => {
    const other = buildSecretsExport(testConfig());
    const r = await verifyBackup(plain, { trust: local(), secrets: other });
    expect(r.ok).toBe(false);
    expect(failOf(r)).toMatch(/does not decrypt/);
  });

  it('restore of a damaged or undecryptable archive fails and changes nothing', async () => {
    const target = testConfig({ ENCLAVE_MASTER_KEY: config.masterKey! });
    const s = await createServices(target, { log: pino({ level: 'silent' }) });
    await s.close();
    const hash = (): string => createHash('sha256').update(readFileSync(databaseFile(target.dataDir))).digest('hex');
    const before = hash();
    await expect(restoreBackup(target, flipped(plain, Math.floor(readFileSync(plain).length / 2)))).rejects.toThrow(/nothing was changed/);
    await expect(restoreBackup(target, withPass, { keys: { passphrase: 'wrong passphrase!' } })).rejects.toThrow(/wrong passphrase/);
    await expect(restoreBackup(target, withKey, { keys: { identities: [parseIdentity(otherPair.privateKeyPem)] } })).rejects.toThrow(/wrong key/);
    expect(hash()).toBe(before);
    rmSync(target.dataDir, { recursive: true, force: true });
  });
});
