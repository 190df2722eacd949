import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import pino, { type Logger } from 'pino';
import { buildApp, createServices, type Services } from '../../server/app.js';
import type { Clock } from '../../server/clock.js';
import type { Entitlements } from '../../server/access/entitlements.js';
import { loadConfig } from '../../server/config/load.js';
import type { Config } from '../../server/config/settings.js';
import { listen, type RunningServer } from '../../server/http/server.js';

let dbCounter = 0;
/** vitest.config.ts maxWorkers: test files running at the same time are in different workers. */
const WORKERS = 2;
const DBS_PER_WORKER = 31;

/**
 * A database of the shared test Redis for one app or server process. Databases 1–62 are
 * split between vitest's workers (VITEST_POOL_ID is unique among workers running at the same
 * time), so two files running at once never share one: one file's FLUSHDB, queue jobs or
 * counters cannot reach another's. A file runs in a process of its own; the pid spreads
 * consecutive files of one worker over its range. 0 and 63 are left for tests that pick
 * their own.
 */
export function testRedisUrl(): string {
  const pool = Math.max(1, Number(process.env.VITEST_POOL_ID ?? 1));
  const db = 1 + ((pool - 1) % WORKERS) * DBS_PER_WORKER + ((process.pid * 7 + dbCounter++) % DBS_PER_WORKER);
  return `${inject('redisUrl')}/${db}`;
}

/**
 * Empties this worker's range of databases (test/helpers/setup-file.ts, before each file):
 * a file must not inherit an earlier file's keys in the same database number — BullMQ job
 * schedulers (whose kept next run made a worker's first job minutes late), queues, counters.
 */
export async function flushWorkerDatabases(): Promise<void> {
  const pool = Math.max(1, Number(process.env.VITEST_POOL_ID ?? 1));
  const first = 1 + ((pool - 1) % WORKERS) * DBS_PER_WORKER;
  const { Redis } = await import('ioredis');
  const r = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    const p = r.pipeline();
    for (let db = first; db < first + DBS_PER_WORKER; db++) p.select(db).flushdb();
    await p.exec();
  } finally {
    r.disconnect();
  }
}

/** A fresh data dir under the OS temp dir, removed by the returned cleanup. */
export function tempDir(prefix = 'enclave-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Test config: a temp data dir, the shared test Redis on its own database number, a random
 * master key, silent logs. `env` overrides any setting by its variable name.
 */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    ENCLAVE_DATA_DIR: tempDir(),
    REDIS_URL: testRedisUrl(),
    ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'),
    ENCLAVE_LOG_LEVEL: 'silent',
    PORT: '0',
    ENCLAVE_HOST: '127.0.0.1',
    ...env,
  });
}

export interface TestApp {
  readonly services: Services;
  readonly server: RunningServer;
  readonly url: string;
  close(): Promise<void>;
}

/** Builds the real app graph (createServices + buildApp) on a temp data dir and listens on a free port. */
export async function startTestApp(
  opts: { env?: Record<string, string>; clock?: Clock; config?: Config; entitlements?: Entitlements; log?: Logger } = {},
): Promise<TestApp> {
  const config = opts.config ?? testConfig(opts.env);
  const services = await createServices(config, { log: opts.log ?? pino({ level: 'silent' }), passwordLogN: 10, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.entitlements ? { entitlements: opts.entitlements } : {}) });
  const server = await listen(buildApp(services), 0, '127.0.0.1');
  return {
    services,
    server,
    url: `http://127.0.0.1:${server.port}`,
    close: async () => {
      await server.close(1000);
      await services.close();
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}
