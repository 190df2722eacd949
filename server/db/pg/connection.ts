import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { redactDatabaseUrl } from '../dialect.js';
import * as schema from './schema.js';

/**
 * The PostgreSQL connection (issue 22): one `pg` Pool per process with bounded size, TLS as the
 * URL's `sslmode` says (CA from ENCLAVE_DATABASE_CA_FILE), a statement timeout and an
 * application_name, and errors that say what is wrong without the credentials.
 *
 * The URL is parsed here rather than handed to pg as a connection string: pg lets the string's
 * sslmode override the `ssl` option and treats `require` as verify-full, so the libpq meanings
 * (below) would not hold.
 */
export type PgDb = NodePgDatabase<typeof schema> & { $client: pg.Pool };

// json (114) and jsonb (3802) arrive as their text, not parsed: the row types carry JSON text
// (./columns.ts), and the audit chain hashes the exact bytes of its details. Set on pg's global
// type registry because drizzle passes its own per-query parsers, which fall back to it (a
// Pool-level `types` option is overridden). Enclave is this registry's only user in its process.
pg.types.setTypeParser(114, (v: string) => v);
pg.types.setTypeParser(3802, (v: string) => v);

export interface PgSettings {
  readonly url: string;
  /** ENCLAVE_DATABASE_POOL_MAX: connections this process opens at most. */
  readonly poolMax?: number;
  /** ENCLAVE_DATABASE_CA_FILE: PEM of the CA that signed the server certificate. */
  readonly caFile?: string | undefined;
  /** ENCLAVE_DATABASE_STATEMENT_TIMEOUT_MS; 0 = none. */
  readonly statementTimeoutMs?: number;
  /** Shown in pg_stat_activity: which Enclave process holds a connection. */
  readonly applicationName?: string;
  /** How long to wait for a connection (new or from the pool), ms. */
  readonly connectTimeoutMs?: number;
}

/** A wrong ENCLAVE_DATABASE_* setting or an unreachable server: the message is one line, without credentials. */
export class DatabaseConnectionError extends Error {
  override readonly name = 'DatabaseConnectionError';
}

type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly string[] = ['disable', 'require', 'verify-ca', 'verify-full'];
const URL_PARAMS = new Set(['sslmode', 'host', 'application_name']);
const FIX = 'use a URL like postgres://user:password@host:5432/database?sslmode=verify-full';

function isLocal(host: string): boolean {
  return host.startsWith('/') || host === 'localhost' || host === '127.0.0.1' || host === '::1' || host === '[::1]';
}

/**
 * libpq's sslmode meanings: disable = plain; require = encrypted, certificate not checked (checked
 * against the CA file when one is given, as libpq does with a root certificate); verify-ca = signed
 * by the CA; verify-full = signed and the host name matches. prefer/allow (try TLS, fall back to
 * plain) are refused: a downgrade nobody notices. Without sslmode a loopback or unix-socket host
 * is plain and any other host is refused, so a remote database is never reached in the clear by
 * accident.
 */
function tlsOptions(mode: SslMode, caFile: string | undefined): false | ConnectionOptions {
  if (mode === 'disable') return false;
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new DatabaseConnectionError(`cannot read ENCLAVE_DATABASE_CA_FILE ${caFile} (${(e as NodeJS.ErrnoException).code ?? 'error'}); point it to a readable PEM file`);
    }
  }
  if (mode === 'require' && !ca) return { rejectUnauthorized: false };
  const opts: ConnectionOptions = { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
  // verify-ca (and require with a CA): the chain is checked, the host name is not.
  if (mode !== 'verify-full') opts.checkServerIdentity = () => undefined;
  return opts;
}

/** The pg Pool options for these settings; throws DatabaseConnectionError for a wrong URL. */
export function pgPoolConfig(s: PgSettings): pg.PoolConfig {
  let u: URL;
  try {
    u = new URL(s.url);
  } catch {
    throw new DatabaseConnectionError(`invalid ENCLAVE_DATABASE_URL: not a URL; ${FIX}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new DatabaseConnectionError(`invalid ENCLAVE_DATABASE_URL: scheme ${u.protocol} is not postgres: or postgresql:; ${FIX}`);
  }
  for (const k of u.searchParams.keys()) {
    if (!URL_PARAMS.has(k)) throw new DatabaseConnectionError(`invalid ENCLAVE_DATABASE_URL: parameter ${k} is not supported (supported: ${[...URL_PARAMS].join(', ')}); the CA file is ENCLAVE_DATABASE_CA_FILE`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) throw new DatabaseConnectionError(`invalid ENCLAVE_DATABASE_URL: it names no database (${redactDatabaseUrl(s.url)}); ${FIX}`);
  const host = u.searchParams.get('host') ?? decodeURIComponent(u.hostname);
  if (!host) throw new DatabaseConnectionError(`invalid ENCLAVE_DATABASE_URL: it names no host; ${FIX}`);
  const requested = u.searchParams.get('sslmode');
  if (requested !== null && !SSL_MODES.includes(requested)) {
    throw new DatabaseConnectionError(
      `invalid ENCLAVE_DATABASE_URL: sslmode=${requested} is not supported; use verify-full (recommended), verify-ca, require or disable${requested === 'prefer' || requested === 'allow' ? ` (${requested} may fall back to an unencrypted connection)` : ''}`,
    );
  }
  if (requested === null && !isLocal(host)) {
    throw new DatabaseConnectionError(
      `ENCLAVE_DATABASE_URL names the remote host ${host} without sslmode: add ?sslmode=verify-full (or verify-ca, require; disable only on a trusted network)`,
    );
  }
  const mode = (requested ?? 'disable') as SslMode;
  const timeout = s.statementTimeoutMs ?? 30_000;
  return {
    host,
    port: u.port ? Number(u.port) : 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database,
    ssl: tlsOptions(mode, s.caFile),
    max: s.poolMax ?? 10,
    ...(timeout > 0 ? { statement_timeout: timeout } : {}),
    application_name: u.searchParams.get('application_name') ?? s.applicationName ?? 'enclave',
    connectionTimeoutMillis: s.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
  };
}

/** Opens the pool (lazily: the first query connects). `onIdleError` hears errors of idle connections (a restarted server). */
export function openPostgres(s: PgSettings, onIdleError: (e: Error) => void = () => undefined): PgDb {
  const pool = new pg.Pool(pgPoolConfig(s));
  // Without a listener an idle connection's error (server restart, failover) would crash the process.
  pool.on('error', onIdleError);
  return drizzle(pool, { schema }) as PgDb;
}

/** The minimum server version: the SQL in migrations-pg and the planned repositories use 14's features. */
export const MIN_SERVER_VERSION_NUM = 140000;

/**
 * Connects once and checks the server version; throws DatabaseConnectionError with a one-line
 * reason (unreachable, refused login, no such database, TLS failure, too old). Returns the version.
 */
export async function checkPostgres(pool: pg.Pool, url: string): Promise<{ version: string; versionNum: number }> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw new DatabaseConnectionError(describeConnectError(e, url));
  }
  try {
    const r = await client.query<{ server_version: string; server_version_num: string }>(
      "SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS server_version_num",
    );
    const row = r.rows[0]!;
    const versionNum = Number(row.server_version_num);
    if (versionNum < MIN_SERVER_VERSION_NUM) {
      throw new DatabaseConnectionError(`PostgreSQL ${row.server_version} at ${where(url)} is too old: Enclave needs 14 or newer`);
    }
    return { version: row.server_version, versionNum };
  } finally {
    client.release();
  }
}

function where(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? u.hostname;
    return `${host}${u.port ? `:${u.port}` : ':5432'}`;
  } catch {
    return 'the configured server';
  }
}

/** A connection failure in one line, naming the server but never the password. */
export function describeConnectError(e: unknown, url: string): string {
  const err = e as { code?: string; message?: string };
  const at = where(url);
  let user = '';
  let database = '';
  try {
    const u = new URL(url);
    user = decodeURIComponent(u.username);
    database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  } catch {
    /* where() already says so */
  }
  const message = String(err.message ?? e).split('\n')[0] ?? '';
  switch (err.code) {
    case 'ECONNREFUSED':
      return `cannot reach PostgreSQL at ${at}: connection refused (is it running, and is the host/port right?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot reach PostgreSQL at ${at}: the host name does not resolve`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `cannot reach PostgreSQL at ${at}: ${err.code}`;
    case '28P01':
    case '28000':
      return `PostgreSQL at ${at} refused the login of user "${user}": ${message}`;
    case '3D000':
      return `PostgreSQL at ${at} has no database "${database}": create it (CREATE DATABASE) or fix the URL`;
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS to PostgreSQL at ${at} failed: ${message} (set ENCLAVE_DATABASE_CA_FILE to the CA that signed the server certificate, or check sslmode)`;
    default:
      if (/does not support SSL/i.test(message)) return `PostgreSQL at ${at} does not offer TLS but sslmode asks for it: enable ssl on the server, or use sslmode=disable on a trusted network`;
      if (/timeout/i.test(message)) return `cannot reach PostgreSQL at ${at}: no answer in time (${message})`;
      return `PostgreSQL at ${at}: ${message}`;
  }
}
