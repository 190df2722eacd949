import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort, pingTcp } from '../../server/redis/ping.js';
import { stopRunPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/**
 * Marks every process this run starts: set here, before the workers fork, it is inherited by
 * the workers and everything they spawn (servers, CLIs, redis-servers, browsers), including
 * through the helpers (they drop ENCLAVE_* and REDIS_URL only). The teardown looks for it.
 */
export const RUN_MARK = 'TEST_SUITE_RUN_MARK';

interface Run {
  readonly redisUrl: string;
  /** Projects whose teardown has not run yet (vitest.config.ts has two: main and postgres). */
  users: number;
  stop(): Promise<void>;
}

/**
 * Every vitest project runs its global setup (vitest.config.ts: `main` and `postgres`), in this
 * one main process: the run (mark, Redis, the lazily started PostgreSQL) is started by the first
 * and shared by the others through globalThis (each project may load this module anew); the last
 * teardown stops it.
 */
const RUN_KEY = '__enclaveTestRun';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const g = globalThis as { [RUN_KEY]?: Promise<Run> };
  g[RUN_KEY] ??= startRun();
  const run = await g[RUN_KEY];
  run.users++;
  project.provide('redisUrl', run.redisUrl);
  return async () => {
    if (--run.users > 0) return;
    delete g[RUN_KEY];
    await run.stop();
  };
}

/**
 * Starts one real redis-server for the whole run (noeviction and AOF, as in production) on a free
 * loopback port. Tests isolate themselves by key prefix or database number. The teardown fails
 * the run when a process the run started is still alive (an orphaned server, redis-server,
 * CLI or browser), after stopping it.
 */
async function startRun(): Promise<Run> {
  const runId = randomBytes(8).toString('hex');
  process.env[RUN_MARK] = runId;
  const exe = findExecutable('redis-server');
  if (!exe) {
    throw new Error('redis-server is not installed: the tests need a real Redis. Install it with: apt-get install -y redis-server');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-test-redis-'));
  const port = await freePort();
  const child: ChildProcess = spawn(
    exe,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction', '--databases', '64'],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  while (!(await pingTcp('127.0.0.1', port, 200))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('test redis-server did not start');
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    redisUrl: `redis://127.0.0.1:${port}`,
    users: 0,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      await stopRunPostgres(runId); // the run's PostgreSQL, if a file started one (test/helpers/postgres.ts)
      await checkNoLeftovers(runId);
    },
  };
}

interface Leftover {
  pid: number;
  command: string;
}

/** Processes carrying this run's mark, other than vitest's own (this process, its workers and helpers). */
function leftovers(runId: string): Leftover[] {
  if (process.platform !== 'linux') return []; // the check reads /proc
  const mark = `${RUN_MARK}=${runId}`;
  const found: Leftover[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!env.includes(mark)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // state and ppid follow the command name in parentheses (which may itself contain spaces)
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' || Number(ppid) === process.pid) continue; // exited; or vitest's own workers and tools
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (command.includes('vitest')) continue;
      found.push({ pid, command });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return found;
}

/**
 * After the whole run nothing it started may be left: such a process holds ports, memory and
 * (for an embedded redis-server) a data dir that is gone. Processes get a few seconds to finish
 * exiting; what is left is stopped and reported, and the run fails.
 */
async function checkNoLeftovers(runId: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let left = leftovers(runId);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = leftovers(runId);
  }
  if (left.length === 0) return;
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // vitest reports a teardown error but keeps the exit code: set it, so the run fails.
  process.exitCode = 1;
  throw new Error(`${left.length} process(es) started by the test run were still running after it (now killed):\n${left.map((p) => `  ${p.pid} ${p.command}`).join('\n')}`);
}
