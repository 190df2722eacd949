import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
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
 * Resolves the master key: ENCLAVE_MASTER_KEY, else ENCLAVE_MASTER_KEY_FILE, else (embedded
 * mode only) a key generated once into the data dir with mode 0600. The generated key sits
 * next to the data it protects, which is acceptable for a single-host trial and nothing
 * more, so every start says so.
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
  if (config.masterKeyFile) {
    const key = readKeyFile(config.masterKeyFile, 'ENCLAVE_MASTER_KEY_FILE');
    return { box: new SecretBox(key, previous), source: 'file', file: config.masterKeyFile };
  }
  const file = generatedKeyFile(config.dataDir);
  if (!existsSync(file)) {
    if (opts.create === false) {
      throw new ConfigError(`missing ENCLAVE_MASTER_KEY: no key set and ${file} does not exist yet; start the server once or set ENCLAVE_MASTER_KEY`);
    }
    writeKeyFile(file, randomBytes(32));
    log?.warn({ file }, 'generated a master key in the data dir; production must set ENCLAVE_MASTER_KEY');
  } else {
    log?.warn({ file }, 'using the master key stored in the data dir; production must set ENCLAVE_MASTER_KEY');
  }
  // Older generated keys stay beside the current one until a rotation has finished.
  const prevFile = `${file}.previous`;
  if (existsSync(prevFile)) previous.push(readKeyFile(prevFile, prevFile));
  return { box: new SecretBox(readKeyFile(file, file), previous), source: 'generated', file };
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

/** Writes a key file atomically with mode 0600 (temp name, then rename). */
export function writeKeyFile(file: string, key: Buffer): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
}
