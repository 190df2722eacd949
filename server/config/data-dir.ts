import { chmodSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/**
 * The data dir holds the database (with every tenant's usage, audit log and encrypted
 * secrets), uploaded and batch files, backups, the generated master key and the embedded
 * Redis: nobody but the service account may read it.
 *
 *  - The process umask becomes 077, so everything created later (SQLite's -wal/-shm, batch
 *    and upload files, backups, audit archives, Redis files) is 0600 / 0700 whoever creates it.
 *  - At start the data dir is made 0700 and what already exists in it is tightened to
 *    0600 (files) / 0700 (directories): data dirs made by older releases, or copied in.
 * Symbolic links are left alone (their targets may be outside the data dir); files owned by
 * another user (a shared volume) are reported, not fatal.
 */
export const DATA_DIR_MODE = 0o700;
export const DATA_FILE_MODE = 0o600;

export function restrictUmask(): void {
  try {
    process.umask(0o077);
  } catch {
    /* worker threads cannot change the umask; files are still created with explicit modes */
  }
}

export function secureDataDir(dataDir: string, log?: Logger): { tightened: number; failed: string[] } {
  restrictUmask();
  mkdirSync(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  let tightened = 0;
  const failed: string[] = [];
  const fix = (p: string, st: Stats): void => {
    const want = st.isDirectory() ? DATA_DIR_MODE : DATA_FILE_MODE;
    if ((st.mode & 0o777) === want || (st.mode & 0o077) === 0) return; // already private
    try {
      chmodSync(p, want);
      tightened++;
    } catch (e) {
      failed.push(`${p} (${(e as NodeJS.ErrnoException).code})`);
    }
  };
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      let st: Stats;
      try {
        st = lstatSync(p);
      } catch {
        continue; // removed meanwhile
      }
      if (st.isSymbolicLink()) continue;
      if (st.isDirectory()) {
        fix(p, st);
        walk(p);
      } else if (st.isFile()) fix(p, st);
    }
  };
  fix(dataDir, lstatSync(dataDir));
  walk(dataDir);
  if (tightened) log?.info({ dataDir, tightened }, 'made data dir entries private (0600 files, 0700 directories)');
  if (failed.length) log?.warn({ dataDir, failed: failed.slice(0, 10) }, 'could not make some data dir entries private; check their owner');
  return { tightened, failed };
}
