import Database from 'better-sqlite3';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installationIdFor } from '../../license/installation.js';
import { createServices } from '../../server/app.js';
import type { Config } from '../../server/config/settings.js';
import { databaseFile } from '../../server/db/connection.js';
import type { TarEntry } from '../../server/ops/archive/tar.js';
import { readArchive, writeArchive } from '../../server/ops/backup/archive.js';
import { createBackup } from '../../server/ops/backup/create.js';
import { restoreBackup } from '../../server/ops/backup/restore.js';
import { trustFor } from '../../server/ops/backup/signature.js';
import { verifyBackup } from '../../server/ops/backup/verify.js';
import { tempDir, testConfig } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';

/**
 * Issue 16, "Backups are not authenticated": an attacker who can write the backup store
 * repacks a real backup with a backdoor platform administrator in the database and the
 * manifest's sums and row counts recomputed. verify and restore must refuse it (the manifest
 * is signed with the installation key, which is not in the backup), name the signer they saw,
 * and a backup of another installation is restored only with --trust-installation.
 */
const PASS = 'signature test passphrase';
let config: Config;
let out: string;
let plain: string;
let withPass: string;
let work: number = 0;

beforeAll(async () => {
  config = testConfig();
  const s = await createServices(config, { log: pino({ level: 'silent' }) });
  await s.close();
  out = tempDir('enclave-backup-sig-');
  plain = (await createBackup(config, { out: path.join(out, 'plain.tar.gz') })).file;
  withPass = (await createBackup(config, { out: path.join(out, 'pass.tar.gz.enc'), encrypt: { passphrase: PASS, logN: 12 } })).file;
});
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(config.dataDir, { recursive: true, force: true });
});

const failOf = (r: { checks: readonly { status: string; message: string }[] }): string =>
  r.checks.filter((c) => c.status === 'fail').map((c) => c.message).join('; ');

const sha256 = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');

interface Repack {
  /** What to do with manifest.sig: keep the original, drop it, or replace it. */
  readonly sig: 'keep' | 'drop' | ((manifest: Buffer) => Buffer);
  readonly passphrase?: string;
}

/**
 * The attack: extract, add a platform admin to the database copy, recompute the database
 * part's size and SHA-256 and the users row count in the manifest, pack again.
 */
async function backdoored(file: string, o: Repack): Promise<string> {
  const dir = path.join(out, `extract-${++work}`);
  const keys = o.passphrase ? { passphrase: o.passphrase } : {};
  const full = await readArchive(file, keys, dir);
  const dbPart = full.entries.find((e) => e.name === 'db/enclave.db')!;
  const db = new Database(dbPart.path!);
  const now = Date.now();
  db.prepare("INSERT INTO users (id, email, name, password_hash, platform_admin, status, created_at, updated_at) VALUES ('usr_backdoor', 'backdoor@evil.test', 'Backdoor', NULL, 1, 'active', ?, ?)").run(now, now);
  db.close();
  const manifest = JSON.parse(full.memory.get('manifest.json')!.toString()) as { parts: { name: string; size: number; sha256: string }[]; tables: Record<string, number> };
  for (const p of manifest.parts) {
    if (p.name !== 'db/enclave.db') continue;
    p.size = statSync(dbPart.path!).size;
    p.sha256 = sha256(dbPart.path!);
  }
  manifest.tables.users = (manifest.tables.users ?? 0) + 1;
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  const entries: TarEntry[] = [{ name: 'manifest.json', data: bytes, size: bytes.length }];
  const originalSig = full.memory.get('manifest.sig');
  if (o.sig === 'keep' && originalSig) entries.push({ name: 'manifest.sig', data: originalSig, size: originalSig.length });
  if (typeof o.sig === 'function') {
    const s = o.sig(bytes);
    entries.push({ name: 'manifest.sig', data: s, size: s.length });
  }
  for (const e of full.entries) if (e.name !== 'manifest.json' && e.name !== 'manifest.sig') entries.push({ name: e.name, file: e.path!, size: statSync(e.path!).size });
  const target = path.join(out, `backdoored-${work}.tar.gz${o.passphrase ? '.enc' : ''}`);
  await writeArchive(target, entries, o.passphrase ? { encrypt: { passphrase: o.passphrase, logN: 12 } } : {});
  return target;
}

/** The attacker's own Ed25519 key, with a well-formed signature entry for it. */
function attackerSig(manifest: Buffer): Buffer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'jwk' }).x!;
  return Buffer.from(JSON.stringify({ format: 'enclave-backup-signature', alg: 'Ed25519', installationId: installationIdFor(pub), publicKey: pub, signature: sign(null, manifest, privateKey).toString('base64url') }));
}

async function restoreTarget(): Promise<{ cfg: Config; hash: () => string }> {
  const cfg = testConfig({ ENCLAVE_MASTER_KEY: config.masterKey! });
  const s = await createServices(cfg, { log: pino({ level: 'silent' }) });
  await s.close();
  return { cfg, hash: () => sha256(databaseFile(cfg.dataDir)) };
}

describe('backup authenticity', () => {
  it('refuses a repacked backup with a backdoor platform admin and recomputed sums (verify and restore), and restore changes nothing', async () => {
    const local = trustFor(config.dataDir);
    const unsigned = await backdoored(plain, { sig: 'drop' });
    const stale = await backdoored(plain, { sig: 'keep' });
    const resigned = await backdoored(plain, { sig: attackerSig });
    const r1 = await verifyBackup(unsigned, { trust: local });
    expect(r1.ok).toBe(false);
    expect(failOf(r1)).toMatch(/not signed/);
    const r2 = await verifyBackup(stale, { trust: local });
    expect(r2.ok).toBe(false);
    expect(failOf(r2)).toMatch(/signature by installation inst_\w+ \(key SHA256:[0-9a-f:]+\) does not verify/);
    const r3 = await verifyBackup(resigned, { trust: local });
    expect(r3.ok).toBe(false);
    expect(failOf(r3)).toMatch(/signed by installation inst_\w+ \(key SHA256:[0-9a-f:]+\), which is not trusted/);
    expect(r3.signer?.installationId).not.toBe(local.local?.id);

    // restore onto the installation that made the original backup: refused, nothing changed
    const before = sha256(databaseFile(config.dataDir));
    for (const f of [unsigned, stale, resigned]) await expect(restoreBackup(config, f)).rejects.toThrow(/did not verify, nothing was changed/);
    expect(sha256(databaseFile(config.dataDir))).toBe(before);
    const db = new Database(databaseFile(config.dataDir), { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM users WHERE email = 'backdoor@evil.test'").get()).toEqual({ n: 0 });
    db.close();
  });

  it('a passphrase backup needs its passphrase MAC: a repack by someone who knows the passphrase but not the installation key, or who strips the MAC, fails', async () => {
    const local = trustFor(config.dataDir);
    const ok = await verifyBackup(withPass, { keys: { passphrase: PASS }, trust: local });
    expect(failOf(ok)).toBe('');
    expect(ok.checks.find((c) => c.id === 'signature')?.message).toMatch(/this installation/);
    const repacked = await backdoored(withPass, { sig: 'keep', passphrase: PASS });
    expect(failOf(await verifyBackup(repacked, { keys: { passphrase: PASS }, trust: local }))).toMatch(/does not verify/);
    // the original manifest and signature, MAC removed, re-encrypted under the same passphrase
    const dir = path.join(out, 'nomac');
    const full = await readArchive(withPass, { passphrase: PASS }, dir);
    const sig = JSON.parse(full.memory.get('manifest.sig')!.toString()) as Record<string, unknown>;
    expect(sig.mac).toMatch(/^[0-9a-f]{64}$/);
    delete sig.mac;
    const sigBytes = Buffer.from(JSON.stringify(sig));
    const entries: TarEntry[] = full.entries.map((e) => (e.name === 'manifest.sig' ? { name: e.name, data: sigBytes, size: sigBytes.length } : e.name === 'manifest.json' ? { name: e.name, data: full.memory.get('manifest.json')!, size: e.size } : { name: e.name, file: e.path!, size: e.size }));
    const stripped = path.join(out, 'nomac.tar.gz.enc');
    await writeArchive(stripped, entries, { encrypt: { passphrase: PASS, logN: 12 } });
    expect(failOf(await verifyBackup(stripped, { keys: { passphrase: PASS }, trust: local }))).toMatch(/passphrase MAC is missing/);
  });

  it('restoring onto another installation needs --trust-installation naming the signer; verify names it', async () => {
    const other = await restoreTarget();
    const before = other.hash();
    const refused = await verifyBackup(plain, { trust: trustFor(other.cfg.dataDir) });
    expect(refused.ok).toBe(false);
    const signer = refused.signer!.installationId;
    expect(failOf(refused)).toContain(`pass --trust-installation ${signer}`);
    await expect(restoreBackup(other.cfg, plain)).rejects.toThrow(/which is not trusted/);
    expect(other.hash()).toBe(before);
    // the CLI: verify names the signer, restore with --trust-installation succeeds
    const env = { ENCLAVE_DATA_DIR: other.cfg.dataDir, ENCLAVE_MASTER_KEY: config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent' };
    const v = await runCli(['backup', 'verify', plain, '--json'], env);
    expect(v.code).toBe(1);
    expect((JSON.parse(v.stdout) as { signer: { installationId: string } }).signer.installationId).toBe(signer);
    expect(v.stderr).toContain(`--trust-installation ${signer}`);
    const r = await runCli(['backup', 'restore', plain, '--trust-installation', signer, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { signer: { installationId: string } }).signer.installationId).toBe(signer);
    // a backdoored archive stays refused even with the original signer trusted
    const stale = await backdoored(plain, { sig: 'keep' });
    const again = await runCli(['backup', 'restore', stale, '--trust-installation', signer], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/does not verify/);
    rmSync(other.cfg.dataDir, { recursive: true, force: true });
  });
});
