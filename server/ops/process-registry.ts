import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { pidAlive } from './pid-alive.js';

/**
 * Which processes use a data dir: every server/worker process writes
 * `<dataDir>/run/<role>-<pid>.pid` at start and removes it on shutdown, and touches it every
 * few seconds. A record is live when its pid runs on this host, or, for a record written on
 * another host or container (pids mean nothing across pid namespaces), when it was touched
 * recently. `enclave backup restore` takes `<dataDir>/run/restore.lock` and refuses while a
 * live record exists; a starting server refuses while a live restore lock exists. Both write
 * their own record before looking for the other's, so one of two racing sides always sees
 * the other.
 */
export const HEARTBEAT_MS = 5_000;
export const STALE_MS = 30_000;

export interface ProcessRecord {
  readonly pid: number;
  readonly role: string;
  readonly host: string;
  readonly startedAt: string;
  readonly file: string;
}

export class DataDirBusyError extends Error {
  override readonly name = 'DataDirBusyError';
}

export function runDir(dataDir: string): string {
  return path.join(dataDir, 'run');
}


function readRecord(file: string): ProcessRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as Omit<ProcessRecord, 'file'>;
    return typeof r.pid === 'number' ? { ...r, file } : undefined;
  } catch {
    return undefined;
  }
}

function isLive(r: ProcessRecord, now: number): boolean {
  if (r.host === hostname()) return r.pid !== process.pid && pidAlive(r.pid);
  try {
    return now - statSync(r.file).mtimeMs < STALE_MS;
  } catch {
    return false;
  }
}

/** Live server/worker processes on this data dir (stale records on this host are removed). */
export function liveProcesses(dataDir: string, now = Date.now()): ProcessRecord[] {
  const dir = runDir(dataDir);
  if (!existsSync(dir)) return [];
  const out: ProcessRecord[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.pid')) continue;
    const r = readRecord(path.join(dir, name));
    if (!r) continue;
    if (isLive(r, now)) out.push(r);
    else if (r.host === hostname()) rmSync(r.file, { force: true });
  }
  return out;
}

function restoreLockFile(dataDir: string): string {
  return path.join(runDir(dataDir), 'restore.lock');
}

/** The live restore holding the data dir, if any. */
export function activeRestore(dataDir: string, now = Date.now()): ProcessRecord | undefined {
  const r = readRecord(restoreLockFile(dataDir));
  return r && isLive(r, now) ? r : undefined;
}

function writeRecord(file: string, role: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify({ pid: process.pid, role, host: hostname(), startedAt: new Date().toISOString() }), { mode: 0o600 });
}

function heartbeat(file: string): () => void {
  const t = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      /* removed under us: nothing to refresh */
    }
  }, HEARTBEAT_MS);
  t.unref();
  return () => clearInterval(t);
}

/**
 * Registers this process as a user of the data dir. Throws DataDirBusyError while a restore
 * runs. The returned function unregisters (also done on process exit).
 */
export function registerProcess(dataDir: string, role: string): () => void {
  const file = path.join(runDir(dataDir), `${role}-${process.pid}.pid`);
  writeRecord(file, role);
  const restore = activeRestore(dataDir);
  if (restore) {
    rmSync(file, { force: true });
    throw new DataDirBusyError(`a restore (pid ${restore.pid} on ${restore.host}) is replacing the database in ${dataDir}; start again when it has finished`);
  }
  const stop = heartbeat(file);
  const remove = (): void => {
    stop();
    rmSync(file, { force: true });
  };
  process.once('exit', remove);
  return () => {
    process.removeListener('exit', remove);
    remove();
  };
}

/** Removes the record of a process that died without unregistering (the api supervisor, for a killed worker). */
export function forgetProcess(dataDir: string, role: string, pid: number): void {
  rmSync(path.join(runDir(dataDir), `${role}-${pid}.pid`), { force: true });
}

/**
 * Takes the restore lock. Throws DataDirBusyError naming the live processes, unless
 * `force` (the operator says they are gone).
 */
export function acquireRestoreLock(dataDir: string, opts: { force?: boolean } = {}): () => void {
  const file = restoreLockFile(dataDir);
  const other = activeRestore(dataDir);
  if (other) throw new DataDirBusyError(`another restore (pid ${other.pid} on ${other.host}) is running on ${dataDir}`);
  writeRecord(file, 'restore');
  const live = liveProcesses(dataDir);
  if (live.length && !opts.force) {
    rmSync(file, { force: true });
    const list = live.map((p) => `${p.role} pid ${p.pid} on ${p.host}`).join(', ');
    throw new DataDirBusyError(
      `the data dir is in use by ${list}; stop them first (docker compose stop server worker), or pass --stop to stop those on this host, or --force if they are gone`,
    );
  }
  const stop = heartbeat(file);
  const remove = (): void => {
    stop();
    rmSync(file, { force: true });
  };
  process.once('exit', remove);
  return () => {
    process.removeListener('exit', remove);
    remove();
  };
}

/** Sends SIGTERM to live processes on this host and waits until they are gone. */
export async function stopProcesses(dataDir: string, timeoutMs = 30_000): Promise<ProcessRecord[]> {
  const live = liveProcesses(dataDir);
  const remote = live.filter((p) => p.host !== hostname());
  if (remote.length) {
    throw new DataDirBusyError(
      `cannot stop ${remote.map((p) => `${p.role} pid ${p.pid} on ${p.host}`).join(', ')} from here (another host or container); stop them there (docker compose stop server worker)`,
    );
  }
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (live.some((p) => pidAlive(p.pid))) {
    if (Date.now() > deadline) throw new DataDirBusyError(`processes ${live.filter((p) => pidAlive(p.pid)).map((p) => p.pid).join(', ')} did not stop within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of live) rmSync(p.file, { force: true });
  return live;
}

/**
 * A named exclusive lock under run/ (e.g. "backup": one backup at a time). Throws
 * DataDirBusyError while a live holder exists; a dead holder's lock is taken over.
 */
export function acquireLock(dataDir: string, name: string, what: string): () => void {
  const file = path.join(runDir(dataDir), `${name}.lock`);
  const held = readRecord(file);
  if (held && ((held.pid === process.pid && held.host === hostname()) || isLive(held, Date.now()))) throw new DataDirBusyError(`${what} is already running (pid ${held.pid} on ${held.host}); wait for it to finish`);
  writeRecord(file, name);
  const stop = heartbeat(file);
  const remove = (): void => {
    stop();
    const r = readRecord(file);
    if (r?.pid === process.pid) rmSync(file, { force: true });
  };
  process.once('exit', remove);
  return () => {
    process.removeListener('exit', remove);
    remove();
  };
}
