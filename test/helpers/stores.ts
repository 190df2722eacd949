import type { SQL } from 'drizzle-orm';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { migrate } from '../../server/db/migrator.js';
import { openPostgres } from '../../server/db/pg/connection.js';
import { migratePostgres } from '../../server/db/pg/migrator.js';
import { postgresStore, sqliteStore, type Store } from '../../server/db/store.js';
import { tempDir } from './app.js';
import { freshDatabase } from './postgres.js';

/**
 * Fresh, migrated stores on each dialect, for repository contract tests that run the same cases
 * on SQLite and on a real PostgreSQL (issue 22). `open()` may be called more than once: each call
 * is another connection (SQLite handle / pg pool) to the SAME database, as a second process or
 * replica would have. Close what you open (`closeAll`).
 */
export interface StoreDialect {
  readonly name: 'SQLite' | 'PostgreSQL';
  /** A new, empty, migrated database; returns an opener for connections to it. */
  fresh(): Promise<Opener>;
}

/** Opens another connection to the database; `where` is how a process finds it (the SQLite file / the PostgreSQL URL). */
export type Opener = (() => Store) & { readonly where: { readonly file: string } | { readonly url: string } };

const opened: Store[] = [];

export async function closeAll(): Promise<void> {
  for (const s of opened.splice(0).reverse()) await s.close();
}

export const sqliteDialect: StoreDialect = {
  name: 'SQLite',
  async fresh() {
    const file = databaseFile(tempDir('enclave-store-'));
    const first = openDatabase(file);
    migrate(first.$client);
    first.$client.close();
    const open = (): Store => {
      const s = sqliteStore(openDatabase(file));
      opened.push(s);
      return s;
    };
    return Object.assign(open, { where: { file } });
  },
};

export const postgresDialect: StoreDialect = {
  name: 'PostgreSQL',
  async fresh() {
    const url = await freshDatabase('store');
    const m = openPostgres({ url, poolMax: 1, applicationName: 'migrate' });
    await migratePostgres(m.$client);
    await m.$client.end();
    const open = (): Store => {
      const s = postgresStore(openPostgres({ url, poolMax: 4, applicationName: 'test' }));
      opened.push(s);
      return s;
    };
    return Object.assign(open, { where: { url } });
  },
};

export const DIALECTS: readonly StoreDialect[] = [sqliteDialect, postgresDialect];

/**
 * Rows of a raw SQL query on either dialect, for tests that look at what is stored at rest
 * (a secret never in clear, a hash not the token): `rawRows(s.store, sql\`SELECT … WHERE id = ${id}\`)`.
 * Column names as written in the SQL; on PostgreSQL counts arrive as strings and times as Dates.
 */
export async function rawRows(store: Store, query: SQL): Promise<Record<string, unknown>[]> {
  if (store.sqlite) return store.sqlite.all(query) as Record<string, unknown>[];
  const r = await (store.q as unknown as { execute(q: SQL): PromiseLike<{ rows: Record<string, unknown>[] }> }).execute(query);
  return r.rows;
}

/** A raw statement without rows (UPDATE …) on either dialect, for tests that change what is stored behind the services' back. */
export async function rawRun(store: Store, query: SQL): Promise<void> {
  if (store.sqlite) {
    store.sqlite.run(query);
    return;
  }
  await (store.q as unknown as { execute(q: SQL): PromiseLike<unknown> }).execute(query);
}
