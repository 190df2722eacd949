import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOllama } from '../fakes/fake-ollama.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { call, login, seedTenant, sys } from '../helpers/identity.js';
import { freshDatabase } from '../helpers/postgres.js';
import { Registry } from 'prom-client';
import { openPostgres } from '../../server/db/pg/connection.js';
import { poolCheck } from '../../server/doctor/pool-check.js';
import { instrumentPool } from '../../server/metrics/db-pool.js';
import { FAST } from './gateway-env.js';

/**
 * Two api replicas on one PostgreSQL and one Redis (issue 22): each is the whole app graph
 * (createServices + buildApp) with its own data dir, as two hosts would run it. What one
 * replica writes, the other serves; a revocation on one is refused by the other within the
 * revision poll; audit appends from both at once make one valid chain; an AI call through
 * either replica leaves its usage record in the shared database.
 */

let a: TestApp;
let b: TestApp;
let url: string;
let ollama: FakeOllama;

beforeAll(async () => {
  url = await freshDatabase('replicas');
  ollama = await new FakeOllama().start();
  const shared = { ENCLAVE_DATABASE_URL: url, ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') };
  const first = testConfig(shared);
  a = await startTestApp({ config: first, entitlements: unrestricted });
  // Same database, master key and Redis (the test Redis database of this file); its own data dir.
  b = await startTestApp({ config: testConfig({ ...shared, REDIS_URL: first.redisUrl! }), entitlements: unrestricted });
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await ollama?.close();
});

describe('two api replicas on one PostgreSQL', () => {
  it('a key created through one replica works on the other; revoked on one, the other refuses it within 1 s of the commit', async () => {
    const t = await seedTenant(a.services, 'replica', ['owner', 'member']);
    await a.services.gateway.deployments.create(sys(a.services), { name: 'ollama-r', kind: 'ollama', base_url: ollama.url, boundary: 'local', models: 'llama3.1:8b', options: FAST });
    const { key, secret } = await a.services.identity.keys.create(t.ctx, { name: 'replica-key', ownerUserId: t.users.member!.id });

    // Replica B has never seen the key: it verifies it from the shared database.
    const onB = await call(b.url, '/v1/models', { key: secret });
    expect(onB.status).toBe(200);
    // B learns about the deployment through the gateway revision poll, then serves a call.
    const client = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: secret, maxRetries: 0 });
    await expect
      .poll(async () => (await call(b.url, '/v1/models', { key: secret })).body?.data?.map((m: { id: string }) => m.id) ?? [], { timeout: 10_000 })
      .toContain('llama3.1:8b');
    const r = await client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hello from replica b' }] });
    expect(r.choices[0]!.message.content).toBeTruthy();
    // The call's usage record is in the shared database: replica A reads it.
    await b.services.gateway.usage.flush();
    const records = await a.services.tenantStore.usageRecords.list(t.ctx);
    expect(records.map((u) => ({ key: u.keyId, status: u.status, api: u.api }))).toContainEqual({ key: key.id, status: 'ok', api: 'chat' });

    // Revocation on A; B (which has the key cached) must refuse it within 1 s of the commit.
    await a.services.identity.keys.revoke(t.ctx, key.id);
    const committed = performance.now();
    let refusedAfter = Number.POSITIVE_INFINITY;
    for (;;) {
      const res = await call(b.url, '/v1/models', { key: secret });
      if (res.status === 401) {
        refusedAfter = performance.now() - committed;
        break;
      }
      if (performance.now() - committed > 10_000) break;
    }
    expect(refusedAfter, 'ms from the revocation commit until replica B refused the key').toBeLessThan(1_000);
  });

  it('audit appends from both replicas at once form one chain that verifies', async () => {
    const n = 40;
    const write = (s: TestApp, tag: string) =>
      Promise.all(Array.from({ length: n }, (_, i) => s.services.identity.audit.record(sys(s.services), { action: 'test.replica', tenantId: null, target: { type: 'test', id: `${tag}-${i}` } })));
    const [fromA, fromB] = await Promise.all([write(a, 'a'), write(b, 'b')]);
    const seqs = [...fromA, ...fromB].map((e) => e.seq).sort((x, y) => x - y);
    // Every append got its own place in the one chain: no seq twice, no gap between them.
    expect(new Set(seqs).size).toBe(2 * n);
    expect(seqs.at(-1)! - seqs[0]!).toBe(2 * n - 1);
    const v = await b.services.identity.audit.verify();
    expect(v.ok, JSON.stringify(v)).toBe(true);
  });

  it('a tenant id of another tenant is not found through either replica', async () => {
    const x = await seedTenant(a.services, 'rep-x', ['owner']);
    const y = await seedTenant(b.services, 'rep-y', ['owner']);
    // A session made on one replica is valid on the other (sessions live in the shared database).
    const session = await login(a.url, x.users.owner!.email);
    expect(session.status).toBe(200);
    expect((await call(b.url, `/admin/api/tenants/${x.tenant.id}/members`, { session })).status).toBe(200);
    expect((await call(b.url, `/admin/api/tenants/${y.tenant.id}/members`, { session })).status).toBe(404);
    expect((await call(a.url, `/admin/api/tenants/${y.tenant.id}/members`, { session })).status).toBe(404);
  });

  it('pool saturation: /metrics shows each replica pool; a full pool has waiting clients and acquire waits; doctor names the saturated process', async () => {
    const text = await (await fetch(`${a.url}/metrics`)).text();
    expect(text).toMatch(/^enclave_db_pool_max_connections 10$/m);
    expect(text).toMatch(/^enclave_db_pool_connections [1-9]\d*$/m);
    expect(text).toMatch(/^enclave_db_pool_acquire_seconds_count [1-9]\d*$/m);

    // A pool of 2 as a process would have it (application_name "enclave <pid>"), both connections held in transactions.
    const fake = 'enclave 4242424';
    const db = openPostgres({ url, poolMax: 2, applicationName: fake });
    const registry = new Registry();
    instrumentPool(db.$client, registry, 2);
    const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]?.value;
    /** A histogram's series: prom-client names each value (…_bucket, …_count). */
    const series = async (name: string) => (await registry.getSingleMetric(name)!.get()).values as { metricName?: string; labels: Record<string, unknown>; value: number }[];
    const held = [await db.$client.connect(), await db.$client.connect()];
    try {
      for (const c of held) await c.query('BEGIN');
      // A third query waits for a connection.
      const waiting = db.$client.query('SELECT 1');
      expect(await value('enclave_db_pool_waiting_clients')).toBe(1);
      expect(await value('enclave_db_pool_connections')).toBe(2);
      expect(await value('enclave_db_pool_idle_connections')).toBe(0);
      const outcome = await poolCheck({ databaseUrl: url, databaseCaFile: undefined, databasePoolMax: 2 });
      expect(outcome.status, outcome.message).toBe('warn');
      expect(outcome.message).toContain(fake);
      expect(outcome.message).toContain('ENCLAVE_DATABASE_POOL_MAX');
      await held[0]!.query('COMMIT');
      held.shift()!.release();
      await waiting;
      const hist = await series('enclave_db_pool_acquire_seconds');
      expect(hist.find((v) => v.metricName === 'enclave_db_pool_acquire_seconds_count')?.value).toBe(3);
      // The waiting query's checkout took at least until the release: not in the smallest bucket.
      expect(hist.find((v) => v.metricName === 'enclave_db_pool_acquire_seconds_bucket' && v.labels.le === 0.0001)?.value).toBeLessThan(3);
    } finally {
      for (const c of held) {
        await c.query('COMMIT');
        c.release();
      }
      await db.$client.end();
    }
    // The replicas themselves: connected, not saturated.
    const ok = await poolCheck({ databaseUrl: url, databaseCaFile: undefined, databasePoolMax: 10 });
    expect(ok.status, ok.message).toBe('ok');
    expect((ok.data as { processes: { process: string }[] }).processes.map((p) => p.process)).toContain(`enclave ${process.pid}`);
  });
});
