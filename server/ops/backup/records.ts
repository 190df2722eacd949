import { eq } from 'drizzle-orm';
import type { Store } from '../../db/store.js';
import type Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { databaseFile, openDatabase } from '../../db/connection.js';

/**
 * The last successful backup and the last passed verification, kept as plain rows of the
 * `settings` table (no table of their own): doctor's backup_age check and the
 * enclave_backup_last_*_timestamp_seconds gauges read them.
 */
export const BACKUP_RECORD_KEYS = {
  lastSuccess: 'ops.backup.last_success',
  lastVerified: 'ops.backup.last_verified',
} as const;

export interface BackupRecord {
  /** ms since the epoch */
  readonly at: number;
  readonly file: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly encryption?: string;
}

export function writeBackupRecord(sqlite: Database.Database, kind: keyof typeof BACKUP_RECORD_KEYS, record: BackupRecord): void {
  sqlite
    .prepare('INSERT INTO settings (key, value, secret, updated_at) VALUES (?, ?, 0, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, secret = 0, updated_at = excluded.updated_at')
    .run(BACKUP_RECORD_KEYS[kind], JSON.stringify(record), record.at);
}

export function readBackupRecords(sqlite: Database.Database): { lastSuccess?: BackupRecord; lastVerified?: BackupRecord } {
  const out: { lastSuccess?: BackupRecord; lastVerified?: BackupRecord } = {};
  try {
    for (const kind of ['lastSuccess', 'lastVerified'] as const) {
      const row = sqlite.prepare('SELECT value FROM settings WHERE key = ? AND secret = 0').get(BACKUP_RECORD_KEYS[kind]) as { value: string } | undefined;
      if (row) out[kind] = JSON.parse(row.value) as BackupRecord;
    }
  } catch {
    /* no settings table yet */
  }
  return out;
}

/** Records into the data dir's database when it exists (best effort: never fails the caller). */
export function recordInDataDir(dataDir: string, kind: keyof typeof BACKUP_RECORD_KEYS, record: BackupRecord): boolean {
  const file = databaseFile(dataDir);
  if (!existsSync(file)) return false;
  try {
    const db = openDatabase(file);
    try {
      writeBackupRecord(db.$client, kind, record);
      return true;
    } finally {
      db.$client.close();
    }
  } catch {
    return false;
  }
}

/**
 * The records from any store (PostgreSQL: the settings table every replica shares), for the
 * backup gauges, whose source must answer synchronously at scrape time: the last values read,
 * refreshed in the background when older than `maxAgeMs` (a scrape never waits for the database).
 */
export function cachedBackupRecords(store: Store, maxAgeMs = 30_000): () => { lastSuccess?: BackupRecord; lastVerified?: BackupRecord } {
  let last: { lastSuccess?: BackupRecord; lastVerified?: BackupRecord } = {};
  let readAt = 0;
  let reading = false;
  const refresh = async (): Promise<void> => {
    reading = true;
    try {
      const { q, t } = store;
      const next: { lastSuccess?: BackupRecord; lastVerified?: BackupRecord } = {};
      for (const kind of ['lastSuccess', 'lastVerified'] as const) {
        const row = await store.one(q.select({ value: t.settings.value, secret: t.settings.secret }).from(t.settings).where(eq(t.settings.key, BACKUP_RECORD_KEYS[kind])));
        if (row && !row.secret) next[kind] = JSON.parse(row.value) as BackupRecord;
      }
      last = next;
      readAt = Date.now();
    } catch {
      /* database unreachable or closing: keep the last values */
    } finally {
      reading = false;
    }
  };
  return () => {
    if (!reading && Date.now() - readAt > maxAgeMs) void refresh();
    return last;
  };
}
