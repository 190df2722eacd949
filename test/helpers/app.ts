import { rememberDatabase, testDialect } from './dialect.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { testRedisUrl } from './redis-db.js';
import pino, { type Logger } from 'pino';
import { buildApp, createServices, type Services } from '../../server/app.js';
import type { Clock } from '../../server/clock.js';
import type { Entitlements } from '../../server/access/entitlements.js';
import { loadConfig } from '../../server/config/load.js';
import type { Config } from '../../server/config/settings.js';
import { listen, type RunningServer } from '../../server/http/server.js';

// testRedisUrl and flushWorkerDatabases live in redis-db.ts (light: the per-file setup imports it).
export { flushWorkerDatabases, testRedisUrl } from './redis-db.js';

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

/**
 * TEST_DIALECT=postgres (npm run test:postgres): every startTestApp() without its own
 * ENCLAVE_DATABASE_URL gets a fresh database on the run's PostgreSQL instead of SQLite in its
 * data dir, so the integration suite runs on the second dialect unchanged (docs/postgres.md).
 */
async function dialectEnv(): Promise<Record<string, string>> {
  if (testDialect() !== 'postgres') return {};
  const { freshDatabase } = await import('./postgres.js');
  return { ENCLAVE_DATABASE_URL: await freshDatabase('app') };
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
  const config = opts.config ?? testConfig({ ...(await dialectEnv()), ...opts.env });
  rememberDatabase(config.dataDir, config.databaseUrl);
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
