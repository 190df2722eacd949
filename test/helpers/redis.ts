import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort, pingTcp } from '../../server/redis/ping.js';
import { tempDir } from './app.js';
import { waitFor } from './wait.js';

/** A redis-server of a test's own, which the test may stop and start again on the same port and data dir. */
export interface PrivateRedis {
  readonly port: number;
  readonly dir: string;
  /** redis://127.0.0.1:<port>/<db> */
  url(db?: number): string;
  /** The running process, if any. */
  readonly child: ChildProcess | undefined;
  /** Starts it (again) on the same port and dir; resolves once it answers. */
  start(): Promise<void>;
  /** Stops it (SIGKILL by default: a crash; SIGTERM: a clean shutdown that flushes the AOF) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it and removes its dir. */
  close(): Promise<void>;
}

/**
 * Starts a private redis-server on a free loopback port (or `port`). `args` are extra
 * redis-server options, e.g. `['--appendonly', 'yes', '--maxmemory-policy', 'noeviction']`.
 */
export async function startPrivateRedis(opts: { port?: number; args?: readonly string[] } = {}): Promise<PrivateRedis> {
  const exe = findExecutable('redis-server');
  if (!exe) throw new Error('redis-server is not installed: the tests need a real Redis. Install it with: apt-get install -y redis-server');
  const port = opts.port ?? (await freePort());
  const dir = tempDir('enclave-test-redis-');
  let child: ChildProcess | undefined;
  const redis: PrivateRedis = {
    port,
    dir,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    get child() {
      return child;
    },
    async start() {
      const c = spawn(exe, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...(opts.args ?? [])], { stdio: 'ignore' });
      child = c;
      await waitFor(
        () => {
          if (c.exitCode !== null || c.signalCode !== null) throw new Error(`redis-server exited (${c.signalCode ?? c.exitCode})`);
          return pingTcp('127.0.0.1', port, 200);
        },
        { what: `redis-server answering on port ${port}`, until: (up) => up },
      );
    },
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill(signal);
      await exited;
    },
    async close() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}
