import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fsyncPath } from '../fsync.js';
import type { Logger } from 'pino';
import type { Config } from './settings.js';
import { ConfigError } from './load.js';
import { SecretBox } from './secret-box.js';

export type MasterKeySource = 'env' | 'file' | 'generated';

export interface MasterKey {
  readonly box: SecretBox;
  readonly source: MasterKeySource;
  /** Where the key lives when it is a file (generated or ENCLAVE_MASTER_KEY_FILE). */
  readonly file?: string;
}

export function generatedKeyFile(dataDir: string): string {
  return path.join(dataDir, 'secrets', 'master.key');
}

/**
 * The files of a key kept in a file (generated, or ENCLAVE_MASTER_KEY_FILE) during a
 * rotation (server/config/rotate-master-key.ts): `<file>` the current key, `<file>.next` the
 * key a rotation is moving the secrets to, `<file>.previous` the key before the last rotation.
 */
export interface KeyFileSet {
  readonly current?: Buffer;
  readonly next?: Buffer;
  readonly previous?: Buffer;
}

export function readKeyFileSet(file: string): KeyFileSet {
  const read = (f: string): Buffer | undefined => (existsSync(f) ? readKeyFile(f, f) : undefined);
  const current = read(file);
  const next = read(`${file}.next`);
  const previous = read(`${file}.previous`);
  return { ...(current ? { current } : {}), ...(next ? { next } : {}), ...(previous ? { previous } : {}) };
}

/**
 * Resolves the master key: ENCLAVE_MASTER_KEY, else ENCLAVE_MASTER_KEY_FILE, else (embedded
 * mode only) a key generated once into the data dir with mode 0600. The generated key sits
 * next to the data it protects, which is acceptable for a single-host trial and nothing
 * more, so every start says so.
 *
 * A key in a file accepts, besides itself, `<file>.next` and `<file>.previous` for
 * decryption: a rotation killed at any step leaves the database readable (its secrets are
 * under the current key or under `.next`, never under a key no file holds). A missing key
 * file beside a `.next` (a crash of an older release mid-swap) uses `.next`; beside only a
 * `.previous` it refuses, rather than generating a key that would make `.previous` the
 * next rotation's victim.
 */
export function resolveMasterKey(config: Config, log?: Logger, opts: { create?: boolean } = {}): MasterKey {
  const previous: Buffer[] = (config.previousMasterKeys ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
    .map((k): Buffer => Buffer.from(k, 'base64'));
  if (config.masterKey) {
    return { box: new SecretBox(Buffer.from(config.masterKey, 'base64'), previous), source: 'env' };
  }
  const source: MasterKeySource = config.masterKeyFile ? 'file' : 'generated';
  const file = config.masterKeyFile ?? generatedKeyFile(config.dataDir);
  let set = readKeyFileSet(file);
  if (!set.current && !set.next && !set.previous) {
    if (source === 'file') readKeyFile(file, 'ENCLAVE_MASTER_KEY_FILE'); // throws the reason
    if (opts.create === false) {
      throw new ConfigError(`missing ENCLAVE_MASTER_KEY: no key set and ${file} does not exist yet; start the server once or set ENCLAVE_MASTER_KEY`);
    }
    writeKeyFile(file, randomBytes(32));
    log?.warn({ file }, 'generated a master key in the data dir; production must set ENCLAVE_MASTER_KEY');
    set = readKeyFileSet(file);
  } else if (source === 'generated') {
    log?.warn({ file }, 'using the master key stored in the data dir; production must set ENCLAVE_MASTER_KEY');
  }
  let current = set.current;
  if (!current) {
    if (!set.next) {
      throw new ConfigError(`invalid master key: ${file} is missing but ${file}.previous exists; put the current key back into ${file} (a new key would not decrypt this database)`);
    }
    current = set.next;
    log?.warn({ file }, `${file} is missing beside ${file}.next (an interrupted key rotation): using ${file}.next; run enclave config rotate-master-key to finish it`);
  } else if (set.next) {
    log?.warn({ file }, `${file}.next exists: a key rotation was interrupted; both keys are accepted, run enclave config rotate-master-key to finish it`);
  }
  const accepted = [set.next, set.previous, ...previous].filter((k): k is Buffer => !!k);
  return { box: new SecretBox(current, accepted), source, file };
}

export function readKeyFile(file: string, name: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(`invalid ${name}: cannot read ${file} (${(e as NodeJS.ErrnoException).code}); point it to a readable key file`);
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32) throw new ConfigError(`invalid ${name}: ${file} must hold 32 bytes, base64-encoded; generate one with: openssl rand -base64 32`);
  return key;
}

/**
 * Writes a key file atomically with mode 0600: a temp name, fsynced, renamed over the
 * target, and the directory fsynced, so after a crash the file holds the old or the new
 * key, whole, never a torn one.
 */
export function writeKeyFile(file: string, key: Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  rmSync(tmp, { force: true }); // left by a killed process that had our pid
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, key.toString('base64') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}

/** Renames `from` over `to` and makes the rename durable. */
export function renameDurably(from: string, to: string): void {
  renameSync(from, to);
  fsyncPath(path.dirname(to));
}

