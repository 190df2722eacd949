import type { Config } from '../config/settings.js';
import { databaseFile, openDatabase, type Db } from './connection.js';
import { databaseTarget } from './dialect.js';
import { migrate, migrationStatus } from './migrator.js';
import { checkPostgres, openPostgres, type PgDb } from './pg/connection.js';
import { migratePostgres, pgMigrationStatus } from './pg/migrator.js';
import { postgresStore, sqliteStore, type Store } from './store.js';

/**
 * Opens the database a process runs on (issue 22) and brings its schema up to date: SQLite in
 * the data dir (the embedded default) or PostgreSQL named by ENCLAVE_DATABASE_URL. Migrations
 * run at start on both: SQLite's in one IMMEDIATE transaction per file, PostgreSQL's under an
 * advisory lock, so replicas starting together apply each migration once (a Kubernetes Job may
 * run `enclave db migrate` first; the replicas then find nothing to do).
 */
export interface OpenedStore {
  readonly store: Store;
  /** The SQLite handle (embedded only): backups, the data-dir tools and code not on the store yet. */
  readonly sqlite: Db | undefined;
  /** The PostgreSQL pool's drizzle handle (scale-out only): the revision watcher's LISTEN connection. */
  readonly pg: PgDb | undefined;
  readonly applied: readonly string[];
  /** The readiness probe's database check: one trivial query (throws when the database does not answer). */
  ping(): Promise<void>;
  /** The readiness probe's migrations check: the database's schema is this version's. */
  check(): Promise<{ status: 'ok' | 'fail'; head: string | null; pending: number; dialect: 'sqlite' | 'postgres' }>;
  close(): Promise<void>;
}

export async function openStore(
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'databasePoolMax' | 'databaseCaFile' | 'databaseStatementTimeoutMs'>,
  opts: { appVersion: string; now: () => number; applicationName?: string },
): Promise<OpenedStore> {
  const target = databaseTarget(config);
  if (target.dialect === 'sqlite') {
    const db = openDatabase(databaseFile(target.dataDir));
    try {
      const { applied } = migrate(db.$client, { appVersion: opts.appVersion, now: opts.now });
      const store = sqliteStore(db);
      return {
        store,
        sqlite: db,
        pg: undefined,
        applied,
        ping: async () => {
          db.$client.prepare('SELECT 1').get();
        },
        check: async () => {
          const s = migrationStatus(db.$client);
          return { status: s.pending.length === 0 && s.unknown.length === 0 ? 'ok' : 'fail', head: s.databaseHead, pending: s.pending.length, dialect: 'sqlite' };
        },
        close: () => store.close(),
      };
    } catch (e) {
      db.$client.close();
      throw e;
    }
  }
  const pg = openPostgres({
    url: target.url,
    poolMax: config.databasePoolMax,
    caFile: config.databaseCaFile,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    applicationName: opts.applicationName ?? 'enclave',
  });
  try {
    await checkPostgres(pg.$client, target.url);
    const { applied } = await migratePostgres(pg.$client, { appVersion: opts.appVersion, now: opts.now });
    const store = postgresStore(pg);
    return {
      store,
      sqlite: undefined,
      pg,
      applied,
      ping: async () => {
        await pg.$client.query('SELECT 1');
      },
      check: async () => {
        const s = await pgMigrationStatus(pg.$client);
        return { status: s.pending.length === 0 && s.unknown.length === 0 ? 'ok' : 'fail', head: s.databaseHead, pending: s.pending.length, dialect: 'postgres' };
      },
      close: () => store.close(),
    };
  } catch (e) {
    await pg.$client.end().catch(() => undefined);
    throw e; // checkPostgres: one line without the password; the migrator: which migration and why
  }
}
