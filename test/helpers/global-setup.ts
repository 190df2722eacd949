import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort, pingTcp } from '../../server/redis/ping.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/**
 * Starts one real redis-server for the whole run (noeviction and AOF, as in production) on a free
 * loopback port. Tests isolate themselves by key prefix or database number.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
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
  project.provide('redisUrl', `redis://127.0.0.1:${port}`);
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
}
