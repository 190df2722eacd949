import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as schema from './schema.js';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

export function databaseFile(dataDir: string): string {
  return path.join(dataDir, 'enclave.db');
}

/**
 * Opens the SQLite database in WAL mode. busy_timeout lets the API and the worker (two
 * processes on one file) wait for each other's short write transactions instead of
 * failing with SQLITE_BUSY; synchronous=NORMAL is durable across process crashes in WAL
 * mode and much faster than FULL.
 */
export function openDatabase(file: string, opts: { readonly?: boolean } = {}): Db {
  if (!opts.readonly) mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new Database(file, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  if (!opts.readonly) sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('synchronous = NORMAL');
  return drizzle(sqlite, { schema }) as Db;
}
