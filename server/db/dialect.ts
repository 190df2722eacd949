import type { Config } from '../config/settings.js';
import { ConfigError } from '../config/load.js';

/**
 * Which database an Enclave process uses (issue 22): SQLite in the data dir (the embedded
 * default) or PostgreSQL named by ENCLAVE_DATABASE_URL; server/db/open-store.ts opens either.
 * Commands that only make sense for the SQLite file refuse PostgreSQL with requireSqlite()
 * rather than silently working on a file the server does not use. Light on purpose (no driver
 * imports).
 */
export type DatabaseTarget = { readonly dialect: 'sqlite'; readonly dataDir: string } | { readonly dialect: 'postgres'; readonly url: string };

export function databaseTarget(config: Pick<Config, 'dataDir' | 'databaseUrl'>): DatabaseTarget {
  return config.databaseUrl ? { dialect: 'postgres', url: config.databaseUrl } : { dialect: 'sqlite', dataDir: config.dataDir };
}

/**
 * Refuses a command that works on the embedded SQLite file only (backups of the data dir, the
 * file's migrations, master-key rotation of its secrets) when the config selects PostgreSQL,
 * with what to use instead. One line, a ConfigError (exit 2).
 */
export function requireSqlite(config: Pick<Config, 'dataDir' | 'databaseUrl'>, what: string, instead: string): void {
  if (databaseTarget(config).dialect === 'postgres') {
    throw new ConfigError(`${what} works on the embedded SQLite database only; this installation runs on PostgreSQL (ENCLAVE_DATABASE_URL): ${instead} (docs/postgres.md)`);
  }
}

/** The URL without its password (and without query parameters that may carry secrets), for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|key|token/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
