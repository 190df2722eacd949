import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SETTINGS, type Config, type SettingKey } from './settings.js';

/** A bootstrap setting is wrong: the message is one line naming the variable and the fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const KNOWN_ENV = new Map<string, SettingKey>(
  (Object.keys(SETTINGS) as SettingKey[]).map((k) => [SETTINGS[k].env, k]),
);

/**
 * Reads the bootstrap config from the environment and the optional JSON file named by
 * ENCLAVE_CONFIG. Environment variables win over the file. Unknown ENCLAVE_* variables
 * and unknown file keys are refused: a misspelt setting silently falling back to its
 * default is how appliances end up running with the wrong data directory.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  for (const name of Object.keys(env)) {
    if (name.startsWith('ENCLAVE_') && !KNOWN_ENV.has(name)) {
      throw new ConfigError(`unknown setting ${name}: remove it${suggest(name)}`);
    }
  }

  const raw: Record<string, unknown> = {};
  const file = env.ENCLAVE_CONFIG?.trim();
  if (file) Object.assign(raw, readConfigFile(path.resolve(cwd, file)));
  for (const name of KNOWN_ENV.keys()) {
    const v = env[name];
    if (v !== undefined && v !== '') raw[name] = v;
  }

  const out: Record<string, unknown> = {};
  for (const [name, key] of KNOWN_ENV) {
    const s = SETTINGS[key];
    const parsed = s.schema.safeParse(raw[name]);
    if (!parsed.success) {
      const why = parsed.error.issues[0]?.message ?? 'invalid value';
      throw new ConfigError(`invalid ${name}: ${why}; ${s.fix}`);
    }
    out[key] = parsed.data;
  }
  const config = out as Config;
  config.dataDir = path.resolve(cwd, config.dataDir);
  if (!config.adminPassword && config.adminPasswordFile) config.adminPassword = readAdminPassword(path.resolve(cwd, config.adminPasswordFile));
  if (config.deployment === 'production') {
    if (!config.masterKey && !config.masterKeyFile) {
      throw new ConfigError(
        'missing ENCLAVE_MASTER_KEY: production deployments must set it (or ENCLAVE_MASTER_KEY_FILE); generate one with: openssl rand -base64 32',
      );
    }
    if (!config.redisUrl) {
      throw new ConfigError('missing REDIS_URL: production deployments must set it, e.g. redis://redis:6379/0');
    }
  }
  return config;
}

/** A docker secret: the file's text without the trailing newline, validated like the variable. */
function readAdminPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new ConfigError(`invalid ENCLAVE_ADMIN_PASSWORD_FILE: cannot read ${file} (${(e as NodeJS.ErrnoException).code}); ${SETTINGS.adminPasswordFile.fix}`);
  }
  const parsed = SETTINGS.adminPassword.schema.safeParse(text);
  if (!parsed.success || !parsed.data) {
    throw new ConfigError(`invalid ENCLAVE_ADMIN_PASSWORD_FILE: ${file} ${parsed.success ? 'is empty' : parsed.error.issues[0]?.message}; ${SETTINGS.adminPasswordFile.fix}`);
  }
  return parsed.data;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`invalid ENCLAVE_CONFIG: cannot read ${file} (${(e as NodeJS.ErrnoException).code}); point it to a readable JSON file`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`invalid ENCLAVE_CONFIG: ${file} is not valid JSON (${(e as Error).message}); fix the file`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`invalid ENCLAVE_CONFIG: ${file} must hold a JSON object of settings`);
  }
  for (const key of Object.keys(data)) {
    if (!KNOWN_ENV.has(key) || key === 'ENCLAVE_CONFIG') {
      throw new ConfigError(`unknown setting ${key} in ${file}: remove it${suggest(key)}`);
    }
  }
  return data as Record<string, unknown>;
}

function suggest(name: string): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const known of KNOWN_ENV.keys()) {
    const d = editDistance(name, known);
    if (d < bestD) [best, bestD] = [known, d];
  }
  return best && bestD <= 3 ? ` or rename it to ${best}` : ' (see the configuration table in README.md)';
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The effective config as the operator should see it: env names, secrets redacted. */
export function describeConfig(config: Config): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const s = SETTINGS[key];
    const v = config[key] as string | number | boolean | undefined;
    out[s.env] = v === undefined ? null : 'secret' in s && s.secret ? '[redacted]' : v;
  }
  return out;
}
