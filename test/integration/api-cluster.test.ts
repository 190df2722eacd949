import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { loadConfig } from '../../server/config/load.js';
import { systemContext } from '../../server/identity/index.js';
import { REPLY_PIECES } from '../fakes/common.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { tempDir, testRedisUrl } from '../helpers/app.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * ENCLAVE_API_WORKERS=2 (server/cluster.ts): a supervisor, two api workers and the jobs
 * worker on one port, embedded redis owned by the supervisor. Calls spread over the api
 * workers, one usage record each, /metrics aggregated over the workers, a killed worker
 * replaced, SIGTERM stops all of it.
 */
let fake: FakeOpenAI;
let server: ServerProcess;
let key: string;
const masterKey = randomBytes(32).toString('base64');
const dataDir = tempDir();

beforeAll(async () => {
  fake = new FakeOpenAI();
  await fake.start();
  // The data dir prepared in-process first (tenant, key, deployment), then served by the cluster.
  const config = loadConfig({ ENCLAVE_DATA_DIR: dataDir, ENCLAVE_MASTER_KEY: masterKey, REDIS_URL: testRedisUrl(), ENCLAVE_LOG_LEVEL: 'silent' });
  const s = await createServices(config, { log: pino({ level: 'silent' }) });
  const ctx = systemContext(s.log, s.clock, 'test');
  const t = await s.identity.tenants.create(ctx, { slug: 'acme' });
  key = (await s.identity.keys.create((await s.identity.tenants.scopeTo(ctx, t.id)), { name: 'k', ownerUserId: null })).secret;
  await s.gateway.deployments.create(ctx, { name: 'fake', kind: 'openai', base_url: `${fake.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 10 });
  await s.close();

  server = await spawnServer({ role: 'all', env: { ENCLAVE_DATA_DIR: dataDir, ENCLAVE_MASTER_KEY: masterKey, ENCLAVE_API_WORKERS: '2', REDIS_URL: undefined } });
  await waitFor(() => server.logs.some((l) => l.msg === 'enclave ready (cluster)'), { timeout: 30_000, what: 'the cluster ready' });
}, 60_000);

afterAll(async () => {
  if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  await fake?.close();
});

const chatLogs = (from = 0) => server.logs.slice(from).filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
function workerPids(from = 0): Set<unknown> {
  return new Set(chatLogs(from).map((l) => l.pid));
}
/** A client that opens a fresh connection per call (the supervisor hands connections out round-robin) and never retries. */
const freshClient = () => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0, httpAgent: new http.Agent({ keepAlive: false }) } as ConstructorParameters<typeof OpenAI>[0]);
const REPLY = REPLY_PIECES.join('');

// In order, also under --sequence.shuffle: one cluster's life (serve, lose a worker, stop); a
// cluster per test would cost three start-ups of four processes each.
describe('api cluster (ENCLAVE_API_WORKERS=2)', { shuffle: false }, () => {
  it('serves /v1 from both api workers, one usage record per call, /metrics aggregated over the workers', async () => {
    const calls = 24;
    // A fresh connection per call: the supervisor hands connections out round-robin.
    for (let i = 0; i < calls; i++) {
      const r = await freshClient().chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `hello ${i}` }] });
      expect(r.choices[0]!.message.content).toBe(REPLY);
    }
    await waitFor(() => chatLogs().length, { until: (n) => n >= calls, what: `${calls} request log lines` });
    expect(workerPids().size).toBe(2);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const sum = metrics
      .split('\n')
      .filter((l) => l.startsWith('enclave_gateway_requests_total{'))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    expect(sum).toBe(calls);
    // One build_info series, not one per worker.
    expect(metrics.split('\n').filter((l) => l.startsWith('enclave_build_info{'))).toHaveLength(1);

    // Usage records are written by whichever worker served the call: all of them land.
    const { default: Database } = await import('better-sqlite3');
    await waitFor(
      () => {
        const db = new Database(path.join(dataDir, 'enclave.db'), { readonly: true });
        try {
          return (db.prepare('SELECT count(*) AS n FROM usage_records').get() as { n: number }).n;
        } finally {
          db.close();
        }
      },
      { until: (n) => n === calls, what: `${calls} usage records` },
    );
  });

  it('replaces a worker that dies; calls keep working', async () => {
    const victim = [...workerPids()][0] as number;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => server.logs.some((l) => l.msg === 'worker exited unexpectedly; restarting'), { what: 'the supervisor noticing the dead worker' });
    await waitFor(() => server.logs.filter((l) => l.msg === 'enclave ready' && l.role === 'api').length, { until: (n) => n >= 3, timeout: 30_000, what: 'a replacement api worker ready' });
    // No retries: every call must succeed on its own, and none reached the dead worker.
    const from = server.logs.length;
    for (let i = 0; i < 4; i++) {
      const r = await freshClient().chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'again' }] });
      expect(r.choices[0]!.message.content).toBe(REPLY);
    }
    await waitFor(() => chatLogs(from).length, { until: (n) => n >= 4, what: '4 request log lines' });
    const servedBy = workerPids(from);
    expect(servedBy.size).toBeGreaterThan(0);
    expect(servedBy.has(victim)).toBe(false);
  }, 60_000);

  it('SIGTERM stops every worker and the embedded redis-server, exit 0', async () => {
    server.child.kill('SIGTERM');
    const { code } = await server.exited();
    expect(code).toBe(0);
    expect(existsSync(path.join(dataDir, 'redis', 'state.json'))).toBe(false);
    expect(readdirSync(path.join(dataDir, 'run')).filter((f) => f.endsWith('.pid'))).toEqual([]);
    expect(server.logs.filter((l) => l.msg === 'stopped').length).toBeGreaterThanOrEqual(4);
  }, 40_000);
});
