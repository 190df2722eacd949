import type { Config } from '../config/settings.js';
import { ConfigError } from '../config/load.js';

/**
 * Which database an Enclave process uses (issue 22): SQLite in the data dir (the embedded
 * default) or PostgreSQL named by ENCLAVE_DATABASE_URL. The server's services still speak
 * SQLite's synchronous API; until the async repository layer serves both dialects
 * (docs/postgres.md), a PostgreSQL URL is refused by the server and the CLI rather than
 * silently ignored (a server that falls back to SQLite while the admin believes it runs on
 * PostgreSQL would split the data of a replica set). Light on purpose (no driver imports):
 * main.ts checks it before it loads the application.
 */
export type DatabaseTarget = { readonly dialect: 'sqlite'; readonly dataDir: string } | { readonly dialect: 'postgres'; readonly url: string };

export function databaseTarget(config: Pick<Config, 'dataDir' | 'databaseUrl'>): DatabaseTarget {
  return config.databaseUrl ? { dialect: 'postgres', url: config.databaseUrl } : { dialect: 'sqlite', dataDir: config.dataDir };
}

/** What runs on PostgreSQL today, in the refusal message. */
export const POSTGRES_SUPPORT_TODAY =
  'PostgreSQL (ENCLAVE_DATABASE_URL) is not supported by the server yet: today it is only a migration target (enclave db migrate-to-postgres --url ...); unset ENCLAVE_DATABASE_URL to run on SQLite in the data dir (docs/postgres.md)';

/** Throws a one-line ConfigError when the config selects PostgreSQL, which this process cannot serve yet. */
export function refuseUnsupportedDialect(config: Pick<Config, 'dataDir' | 'databaseUrl'>): void {
  if (databaseTarget(config).dialect === 'postgres') throw new ConfigError(POSTGRES_SUPPORT_TODAY);
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
