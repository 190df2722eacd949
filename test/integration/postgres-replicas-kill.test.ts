import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOllama } from '../fakes/fake-ollama.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { freshDatabase } from '../helpers/postgres.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { rawRows } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait.js';
import { FAST } from './gateway-env.js';

/**
 * Two api replicas on one PostgreSQL + Redis; replica A is a real process and is killed with
 * SIGKILL while calls run through both (issue 22). Every call whose client got a complete 2xx
 * answer (a whole JSON body, or a stream that reached `data: [DONE]`) has exactly one usage
 * record in the shared database, and replica B keeps serving.
 *
 * Usage records are batched (server/db/batched-writer.ts). Before, a record was queued when the
 * call finished and written up to 50 ms later, after the client had its answer: a SIGKILL lost
 * the records of the calls answered in those last milliseconds (this test failed so, with
 * answered calls missing). Now the answer ends only after its record's write
 * (server/gateway/settle.ts: group commit).
 */

let b: TestApp;
let a: ServerProcess | undefined;
let ollama: FakeOllama;
let secret: string;
let url: string;

beforeAll(async () => {
  url = await freshDatabase('replicas_kill');
  ollama = await new FakeOllama().start();
  const masterKey = randomBytes(32).toString('base64');
  const config = testConfig({ ENCLAVE_DATABASE_URL: url, ENCLAVE_MASTER_KEY: masterKey });
  b = await startTestApp({ config, entitlements: unrestricted });
  const t = await seedTenant(b.services, 'kill', ['owner']);
  await b.services.gateway.deployments.create(sys(b.services), { name: 'ollama-k', kind: 'ollama', base_url: ollama.url, boundary: 'local', models: 'llama3.1:8b', options: FAST });
  secret = (await b.services.identity.keys.create(t.ctx, { name: 'kill-key', ownerUserId: t.users.owner!.id })).secret;
  // Replica A: the real entry point as its own process on the same database, Redis and master key.
  a = await spawnServer({ role: 'api', env: { ENCLAVE_DATABASE_URL: url, REDIS_URL: config.redisUrl!, ENCLAVE_MASTER_KEY: masterKey } });
}, 90_000);

afterAll(async () => {
  if (a && a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
  await b?.close();
  await ollama?.close();
});

/** One call through `base`; true when the client received a complete 2xx answer. Throws when the replica is unreachable. */
async function chat(base: string, requestId: string, stream: boolean): Promise<boolean> {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify({ model: 'llama3.1:8b', stream, messages: [{ role: 'user', content: `call ${requestId}` }] }),
  });
  const text = await res.text();
  if (res.status !== 200) return false;
  return stream ? text.endsWith('data: [DONE]\n\n') : Boolean((JSON.parse(text) as { choices?: unknown[] }).choices?.length);
}

describe('SIGKILL of an api replica mid-traffic', () => {
  it('every call answered completely has exactly one usage record; the other replica keeps serving', async () => {
    const replicas = { a: a!.url, b: b.url };
    const completed: { id: string; on: 'a' | 'b'; after: boolean }[] = [];
    let aDown = false;
    let killed = false;
    let stop = false;
    let n = 0;
    // A small load balancer in the client: round robin over both, A dropped once unreachable.
    const loop = async (): Promise<void> => {
      while (!stop) {
        const i = n++;
        const on: 'a' | 'b' = !aDown && i % 2 === 0 ? 'a' : 'b';
        const id = `req_kill_${i}`;
        try {
          if (await chat(replicas[on], id, i % 3 === 0)) completed.push({ id, on, after: killed });
        } catch {
          if (on === 'a') aDown = true; // connection refused/reset: not a completed call
          else throw new Error(`replica B failed a call (${id})`);
        }
      }
    };
    const loops = Array.from({ length: 6 }, loop);
    await waitFor(() => completed.filter((c) => c.on === 'a').length, { until: (k) => k >= 60, what: '60 calls completed on replica A', timeout: 30_000 });
    // The database stalls (a lock, as a slow disk or a long transaction would): A's next usage
    // write waits on it, with calls still arriving. The kill lands while A's records of
    // finished calls are waiting to be written — the moment an answer sent before its record
    // was written would lose that record. Deterministic: no race against the flush timer.
    const stall = new pg.Client({ connectionString: url });
    await stall.connect();
    try {
      await stall.query('BEGIN');
      await stall.query('LOCK TABLE usage_records IN EXCLUSIVE MODE');
      const appName = `enclave ${a!.child.pid}`;
      await waitFor(async () => Number((await stall.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [appName])).rows[0].n), {
        what: "replica A's usage write waiting on the stalled table",
        timeout: 30_000,
      });
      a!.child.kill('SIGKILL');
      killed = true;
      await a!.exited();
    } finally {
      await stall.query('ROLLBACK');
      await stall.end();
    }
    expect((await a!.exited()).signal).toBe('SIGKILL');
    await waitFor(() => completed.filter((c) => c.after && c.on === 'b').length, { until: (k) => k >= 40, what: '40 calls completed on replica B after the kill', timeout: 30_000 });
    stop = true;
    await Promise.all(loops);

    await b.services.gateway.usage.flush();
    const rows = await rawRows(b.services.store, sql`SELECT request_id, count(*) AS n FROM usage_records WHERE request_id LIKE 'req_kill_%' GROUP BY request_id`);
    const records = new Map(rows.map((r) => [String(r.request_id), Number(r.n)]));
    const onA = completed.filter((c) => c.on === 'a');
    const missing = completed.filter((c) => !records.has(c.id)).map((c) => `${c.id}@${c.on}`);
    const twice = [...records].filter(([, k]) => k !== 1).map(([id]) => id);
    expect(missing, `answered calls without a usage record (${onA.length} answered by A before the kill)`).toEqual([]);
    expect(twice, 'request ids with more than one record').toEqual([]);
    expect(onA.length).toBeGreaterThanOrEqual(60);
  }, 120_000);
});
