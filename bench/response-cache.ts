/**
 * Response cache (issue 19): latency of a hit against a miss and against the cache being off,
 * in one run, one process (the real services and HTTP app in-process, an embedded redis-server,
 * the fake OpenAI-compatible upstream; the same tenant, deployment and prompt shape), calls
 * interleaved one by one (off, miss, hit, off, miss, hit …) so machine noise falls on all three.
 *
 *   node --import tsx bench/response-cache.ts [--n 1000] [--latency 0] [--no-limits]
 *
 * off  = a key for which the tenant's cache is off (the plain pipeline: one cheap check more);
 * miss = cache on, a new prompt every time (a lookup that finds nothing, the upstream call, the
 *        encrypted store after the usage record);
 * hit  = cache on, the same prompt (a lookup, decrypt, replay; no upstream).
 * --latency N makes the fake upstream wait N ms before it answers (a model's time): a miss pays it,
 * a hit does not. Reported: client-side latency p50/p99 and Enclave's own time per call
 * (x-enclave-overhead-ms: total minus upstream wait).
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { buildApp, createServices } from '../server/app.js';
import { loadConfig } from '../server/config/load.js';
import { listen } from '../server/http/server.js';
import { systemContext } from '../server/identity/index.js';
import { startEmbeddedRedis } from '../server/redis/embedded.js';
import { FakeOpenAI } from '../test/fakes/fake-openai.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const N = arg('n', 1000);

const dir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-cache-'));
const fake = new FakeOpenAI();
fake.record = false;
fake.latencyMs = arg('latency', 0);
await fake.start();
const log = pino({ level: 'silent' });
const redis = await startEmbeddedRedis({ bin: 'redis-server', dataDir: path.join(dir, 'redis'), log });
const config = loadConfig({ ENCLAVE_DATA_DIR: dir, ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_LOG_LEVEL: 'silent', REDIS_URL: redis.url, PORT: '0', ENCLAVE_HOST: '127.0.0.1' });
const services = await createServices(config, { log });
const ctx = systemContext(services.log, services.clock, 'bench');
const t = await services.identity.tenants.create(ctx, { slug: 'bench' });
const tctx = await services.identity.tenants.scopeTo(ctx, t.id);
const on = await services.identity.keys.create(tctx, { name: 'cached', ownerUserId: null });
const off = await services.identity.keys.create(tctx, { name: 'plain', ownerUserId: null });
await services.gateway.deployments.create(ctx, { name: 'fake', kind: 'openai', base_url: `${fake.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 1000 });
await services.gateway.cacheAdmin.update(tctx, { keys: { [on.key.id]: true } });
// Plan limits on (never refusing), as gateway-overhead.ts: admission reserves in Redis on every call,
// and the cache's read overlaps it. --no-limits: the default plan (admission does not touch Redis).
if (!process.argv.includes('--no-limits')) {
  await services.metering.plans.upsert(ctx, { name: 'bench', limits: { requests_per_minute: 100_000_000, tokens_per_minute: 1_000_000_000_000, concurrent_requests: 100_000, monthly_tokens: 1_000_000_000_000 } });
  await services.metering.plans.assign(ctx, t.id, 'bench');
}
const server = await listen(buildApp(services), 0, '127.0.0.1');
const url = `http://127.0.0.1:${server.port}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(key: string, prompt: string): Promise<{ ms: number; overhead: number; cache: string | undefined }> {
  const body = JSON.stringify({ model: 'gpt-fake', temperature: 0, max_tokens: 64, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: prompt }] });
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(`${url}/v1/chat/completions`, { agent, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        const c = res.headers['x-enclave-cache'];
        resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, overhead: Number(res.headers['x-enclave-overhead-ms']), cache: typeof c === 'string' ? c : undefined });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const HIT = 'Summarise the quarterly report for the board in three bullet points.';
const kinds = ['off', 'miss', 'hit'] as const;
const res: Record<(typeof kinds)[number], { ms: number[]; overhead: number[] }> = { off: { ms: [], overhead: [] }, miss: { ms: [], overhead: [] }, hit: { ms: [], overhead: [] } };
const rtt: number[] = [];
await call(on.secret, HIT); // fills the entry the hits read
for (let i = 0; i < 200; i++) await call(off.secret, `warm ${i}`); // JIT
for (let i = 0; i < N; i++) {
  for (const k of kinds) {
    const r = k === 'off' ? await call(off.secret, `${HIT} #${i}`) : k === 'miss' ? await call(on.secret, `${HIT} #${i}`) : await call(on.secret, HIT);
    const want = k === 'off' ? undefined : k;
    if (r.cache !== want) throw new Error(`expected x-enclave-cache ${want}, got ${r.cache}`);
    res[k].ms.push(r.ms);
    res[k].overhead.push(r.overhead);
  }
  // The reference for the cache's own Redis read: one GET round trip on the server's client, interleaved the same way.
  const t0 = process.hrtime.bigint();
  await services.redis.get('bench:nothing');
  rtt.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
console.log(`n=${N} per kind, upstream latency ${fake.latencyMs} ms, plan limits ${process.argv.includes('--no-limits') ? 'off' : 'on'}, node ${process.version}, load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);
console.log('kind   p50 ms   p99 ms   overhead p50 ms   overhead p99 ms');
for (const k of kinds) {
  const r = res[k];
  console.log(`${k.padEnd(5)} ${pct(r.ms, 50).toFixed(3).padStart(8)} ${pct(r.ms, 99).toFixed(3).padStart(8)} ${pct(r.overhead, 50).toFixed(3).padStart(17)} ${pct(r.overhead, 99).toFixed(3).padStart(17)}`);
}
console.log(`redis GET round trip p50 ${pct(rtt, 50).toFixed(3)} ms, p99 ${pct(rtt, 99).toFixed(3)} ms`);
console.log(`hit/miss p50: ${(pct(res.hit.ms, 50) / pct(res.miss.ms, 50)).toFixed(2)}`);

// CPU per call of this process (client + Enclave + the in-process fake upstream; Redis excluded), back to back.
const cpu = async (key: string, prompt: (i: number) => string): Promise<number> => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await call(key, prompt(i));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N / 1000;
};
const cpuOff = await cpu(off.secret, (i) => `${HIT} cpu ${i}`);
const cpuMiss = await cpu(on.secret, (i) => `${HIT} cpu-miss ${i}`);
const cpuHit = await cpu(on.secret, () => HIT);
console.log(`CPU per call (ms, this process): off ${cpuOff.toFixed(3)}, miss ${cpuMiss.toFixed(3)}, hit ${cpuHit.toFixed(3)}`);

agent.destroy();
await server.close(2000);
await services.close();
await redis.stop();
await fake.close();
rmSync(dir, { recursive: true, force: true });
