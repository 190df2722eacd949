import type Database from 'better-sqlite3';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { resolveMasterKey } from '../../config/master-key.js';
import { SecretBox } from '../../config/secret-box.js';
import { SETTINGS, type Config, type SettingKey } from '../../config/settings.js';
import { SECRET_COLUMNS, secretAad } from '../../db/secret-columns.js';
import { SELFTEST_KEY } from '../../config/runtime-settings.js';
import { APP_VERSION } from '../../paths.js';
import { fsyncPath } from '../../fsync.js';
import { BackupCryptoError, isEnvelope, openEnvelope, sealBuffer, type EncryptTo, type Keyring } from './envelope.js';

/**
 * `enclave backup secrets`: what a backup deliberately leaves out — the master key (and
 * older keys still accepted), secret bootstrap settings and secret files — always
 * encrypted (passphrase or X25519 recipient). Keep it apart from the backups: "storing
 * encrypted information in the same location as its key defeats the purpose".
 */
export interface SecretsExport {
  readonly format: 'enclave-secrets';
  readonly formatVersion: 1;
  readonly appVersion: string;
  readonly createdAt: string;
  readonly masterKey: { readonly current: string; readonly previous: readonly string[]; readonly kid: string; readonly source: string };
  /** Secret bootstrap settings by variable name (REDIS_URL, ENCLAVE_METRICS_TOKEN …). */
  readonly settings: Record<string, string>;
  /** Contents of secret files the config points to, by variable name. */
  readonly files: Record<string, string>;
}

const SECRET_FILE_SETTINGS: readonly SettingKey[] = ['oidcClientSecretFile'];

export function buildSecretsExport(config: Config, now = Date.now()): SecretsExport {
  const mk = resolveMasterKey(config, undefined, { create: false });
  const current = mk.source === 'env' ? config.masterKey! : readFileSync(mk.file!, 'utf8').trim();
  const previous: string[] = (config.previousMasterKeys ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  const prevFile = mk.source === 'generated' && mk.file ? `${mk.file}.previous` : undefined;
  if (prevFile && existsSync(prevFile)) previous.push(readFileSync(prevFile, 'utf8').trim());
  const settings: Record<string, string> = {};
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const s = SETTINGS[key];
    const v = config[key];
    if ('secret' in s && s.secret && v !== undefined && key !== 'masterKey' && key !== 'previousMasterKeys') settings[s.env] = String(v);
  }
  const files: Record<string, string> = {};
  for (const key of SECRET_FILE_SETTINGS) {
    const f = config[key] as string | undefined;
    if (f && existsSync(f)) files[SETTINGS[key].env] = readFileSync(f, 'utf8');
  }
  return {
    format: 'enclave-secrets',
    formatVersion: 1,
    appVersion: APP_VERSION,
    createdAt: new Date(now).toISOString(),
    masterKey: { current, previous, kid: mk.box.currentKid, source: mk.source },
    settings,
    files,
  };
}

export function writeSecretsExport(config: Config, out: string, to: EncryptTo, now = Date.now()): { file: string; kid: string } {
  const data = buildSecretsExport(config, now);
  let file = path.resolve(out);
  if (out.endsWith('/') || (existsSync(file) && statSync(file).isDirectory())) {
    mkdirSync(file, { recursive: true, mode: 0o700 });
    file = path.join(file, `enclave-secrets-${new Date(now).toISOString().replace(/[-:.]/g, '')}.json.enc`);
  }
  if (existsSync(file)) throw new BackupCryptoError(`${file} already exists; choose another --out`);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const sealed = sealBuffer('secrets', to, Buffer.from(JSON.stringify(data)));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    writeFileSync(tmp, sealed, { mode: 0o600, flag: 'wx' });
    fsyncPath(tmp);
    renameSync(tmp, file);
    fsyncPath(path.dirname(file));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return { file, kid: data.masterKey.kid };
}

export async function readSecretsExport(file: string, keys: Keyring): Promise<SecretsExport> {
  if (!existsSync(file)) throw new BackupCryptoError(`secrets file ${file} does not exist`);
  if (!isEnvelope(file)) throw new BackupCryptoError(`${file} is not an encrypted Enclave secrets export`);
  const env = openEnvelope(file, keys, 'secrets');
  const chunks: Buffer[] = [];
  try {
    for await (const c of createReadStream(file, { start: env.bodyStart, end: env.bodyEnd })) chunks.push(env.decipher.update(c as Buffer));
    chunks.push(env.decipher.final());
  } catch {
    throw new BackupCryptoError('secrets file failed authentication: it was damaged or tampered with');
  }
  const data = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SecretsExport;
  if (data.format !== 'enclave-secrets') throw new BackupCryptoError(`${file} is not an Enclave secrets export`);
  return data;
}

export function boxFromExport(s: SecretsExport): SecretBox {
  return new SecretBox(Buffer.from(s.masterKey.current, 'base64'), s.masterKey.previous.map((k) => Buffer.from(k, 'base64')));
}

export interface SecretCheckResult {
  readonly checked: number;
  readonly failed: readonly { table: string; column: string; id: string; reason: string }[];
  readonly selfTest: 'ok' | 'missing' | 'failed';
}

/** Decrypts every stored secret (SECRET_COLUMNS) with `box`, reporting each one it cannot. */
export function checkStoredSecrets(sqlite: Database.Database, box: SecretBox): SecretCheckResult {
  let checked = 0;
  const failed: { table: string; column: string; id: string; reason: string }[] = [];
  let selfTest: SecretCheckResult['selfTest'] = 'missing';
  for (const c of SECRET_COLUMNS) {
    let rows: Iterable<{ id: string; v: string | null }>;
    try {
      // Iterated, not loaded: content columns (call_contents) may hold many large rows.
      rows = sqlite.prepare(`SELECT "${c.idColumn}" AS id, "${c.column}" AS v FROM "${c.table}"${c.where ? ` WHERE ${c.where}` : ''}`).iterate() as Iterable<{ id: string; v: string | null }>;
    } catch (e) {
      failed.push({ table: c.table, column: c.column, id: '*', reason: `cannot read: ${(e as Error).message}` });
      continue;
    }
    for (const r of rows) {
      if (r.v === null) continue;
      checked++;
      try {
        const plain = box.decrypt(r.v, secretAad(c.table, c.column, String(r.id)));
        if (c.table === 'settings' && r.id === SELFTEST_KEY) selfTest = plain === 'enclave-master-key-selftest' ? 'ok' : 'failed';
      } catch (e) {
        if (c.table === 'settings' && r.id === SELFTEST_KEY) selfTest = 'failed';
        failed.push({ table: c.table, column: c.column, id: String(r.id), reason: (e as Error).message });
      }
    }
  }
  return { checked, failed, selfTest };
}
