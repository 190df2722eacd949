import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.js';
import { freePort, pingTcp } from './ping.js';
import { pidAlive } from '../ops/pid-alive.js';

export interface EmbeddedRedis {
  readonly url: string;
  /** True when this process started redis-server (and so stops it). */
  readonly owned: boolean;
  stop(): Promise<void>;
}

export const REDIS_MISSING =
  'Redis is required: set REDIS_URL=redis://HOST:6379/0, or install redis-server (Debian/Ubuntu: apt-get install redis-server) so embedded mode can start it';

/** Finds an executable by name on PATH (or checks an explicit path). */
export function findExecutable(bin: string, envPath = process.env.PATH ?? ''): string | undefined {
  const candidates = bin.includes('/') ? [bin] : envPath.split(path.delimiter).filter(Boolean).map((d) => path.join(d, bin));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** `redis/state.json`, the pid file: the running redis-server and the Enclave process that owns it. */
interface State {
  port: number;
  pid: number;
  /** The process that started it (absent in files written before 0.1). */
  owner?: number;
}

/**
 * Embedded mode's Redis: a redis-server child on a free loopback port with its files in
 * `<dataDir>/redis`, AOF on and `noeviction` (BullMQ loses jobs under eviction). A second
 * Enclave process on the same data dir (a separate worker) reuses the running one via
 * `redis/state.json`; a lock file keeps two processes starting at once from spawning two.
 *
 * No leftovers: the child is tied to its owner's lifetime by a watchdog (see
 * {@link tieToParent}), so a crashed or OOM-killed Enclave does not leave a redis-server
 * holding its data dir; and should one be left anyway (the watchdog killed too), the next
 * start finds it by the pid file, checks it is ours (its working dir is our redis dir) and
 * its owner is gone, and stops it before starting a fresh one.
 */
export async function startEmbeddedRedis(opts: { bin: string; dataDir: string; log: Logger }): Promise<EmbeddedRedis> {
  const dir = path.join(opts.dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stateFile = path.join(dir, 'state.json');
  const lockFile = path.join(dir, 'start.lock');

  const reuse = async (): Promise<EmbeddedRedis | undefined> => {
    const state = readState(stateFile);
    if (state && state.owner !== undefined && state.owner !== process.pid && !pidAlive(state.owner)) {
      await stopStale(state, dir, opts.log);
      rmSync(stateFile, { force: true });
      return undefined;
    }
    if (state && (await pingTcp('127.0.0.1', state.port))) {
      return { url: `redis://127.0.0.1:${state.port}/0`, owned: false, stop: async () => {} };
    }
    return undefined;
  };

  const existing = await reuse();
  if (existing) return existing;
  const exe = findExecutable(opts.bin);
  if (!exe) throw new ConfigError(REDIS_MISSING);

  await acquireLock(lockFile);
  try {
    const again = await reuse();
    if (again) return again;
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const child = spawn(
        exe,
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--protected-mode', 'yes',
          '--dir', dir,
          '--appendonly', 'yes',
          '--maxmemory-policy', 'noeviction',
          '--save', '',
          '--daemonize', 'no',
          '--logfile', path.join(dir, 'redis.log'),
        ],
        // Its own process group: a terminal's Ctrl-C reaches every process of Enclave's group,
        // and redis-server would quit at once under processes that still drain their work
        // (the jobs worker, api workers). Enclave stops it explicitly, last.
        { stdio: 'ignore', detached: true },
      );
      if (await waitUntilUp(child, port)) {
        writeFileSync(stateFile, JSON.stringify({ port, pid: child.pid ?? 0, owner: process.pid } satisfies State));
        const watchdog = tieToParent(child);
        opts.log.info({ port, dir }, 'started embedded redis-server');
        let stopping = false;
        child.on('exit', (code, signal) => {
          // Its pid may be reused from now on: the watchdog must not signal it any more.
          watchdog?.kill('SIGKILL');
          if (!stopping) opts.log.error({ code, signal }, 'embedded redis-server exited unexpectedly');
        });
        return {
          url: `redis://127.0.0.1:${port}/0`,
          owned: true,
          stop: async () => {
            stopping = true;
            watchdog?.kill('SIGKILL');
            await stopChild(child);
            rmSync(stateFile, { force: true });
          },
        };
      }
      child.kill('SIGKILL');
      if (attempt >= 2) {
        throw new Error(`embedded redis-server did not start; see ${path.join(dir, 'redis.log')}`);
      }
    }
  } finally {
    rmSync(lockFile, { force: true });
  }
}

/**
 * Ties redis-server to this process's lifetime. Linux has no portable "die with the parent"
 * for a program we do not write (PR_SET_PDEATHSIG is not reachable from Node), so a tiny
 * watchdog shell holds the read end of a pipe whose write end only this process has: when
 * this process dies for any reason (SIGKILL, OOM killer, crash) the kernel closes it, `read`
 * returns, and the watchdog sends redis-server SIGTERM (it flushes its AOF and exits). The
 * watchdog is in its own process group, as redis-server is, so a terminal's Ctrl-C reaches
 * neither. Returns undefined where there is no /bin/sh (redis is then only stopped by us).
 */
function tieToParent(child: ChildProcess): ChildProcess | undefined {
  if (child.pid === undefined || !existsSync('/bin/sh')) return undefined;
  const watchdog = spawn('/bin/sh', ['-c', 'read _ || true; kill -TERM "$1" 2>/dev/null', 'enclave-redis-watchdog', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.on('error', () => {}); // no watchdog: redis is still stopped by stop()
  // Neither the watchdog nor its pipe keeps this process's event loop alive.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return watchdog;
}

/**
 * Stops a redis-server left running by an owner that died (found by the pid file), but only
 * when it is ours: on Linux its working directory is our redis dir (redis-server changes
 * into `--dir`). Anything else under that pid is left alone.
 */
async function stopStale(state: State, dir: string, log: Logger): Promise<void> {
  if (!state.pid || !pidAlive(state.pid) || !isOurs(state.pid, dir)) return;
  log.warn({ pid: state.pid, owner: state.owner }, 'stopping an embedded redis-server left behind by a process that is gone');
  try {
    process.kill(state.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (pidAlive(state.pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(state.pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      break;
    }
    await sleep(25);
  }
}

function isOurs(pid: number, dir: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dir);
  } catch {
    return false; // no /proc (or not ours to inspect): never signal a process we cannot identify
  }
}

function readState(file: string): State | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

async function waitUntilUp(child: ChildProcess, port: number): Promise<boolean> {
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !exited) {
    if (await pingTcp('127.0.0.1', port, 200)) return true;
    await sleep(25);
  }
  return false;
}

async function acquireLock(file: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return;
    } catch {
      const holder = Number(readFileSync(file, 'utf8').trim() || 0);
      if (!holder || !pidAlive(holder)) rmSync(file, { force: true });
      else if (Date.now() > deadline) throw new Error(`${file} is held by process ${holder}`);
      else await sleep(50);
    }
  }
}


function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    // SIGTERM makes redis-server flush its AOF and exit cleanly.
    child.kill('SIGTERM');
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function embeddedRedisRunning(dataDir: string): boolean {
  return existsSync(path.join(dataDir, 'redis', 'state.json'));
}
