/**
 * Gateway memory under sustained load: 30,000 chat calls (16 concurrent) through Enclave with
 * everything on against the fake OpenAI-compatible upstream, in one process; after every
 * 5,000 calls a full GC, then heap and RSS. A flat heapUsed means no leak; RSS above it is
 * what the allocator keeps for reuse.
 *
 *   node --expose-gc --import tsx bench/gateway-memory.ts
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { FakeOpenAI } from '../test/fakes/fake-openai.js';
import { loadConfig } from '../server/config/load.js';
import { buildApp, createServices } from '../server/app.js';
import { listen } from '../server/http/server.js';
import { systemContext } from '../server/identity/index.js';
const f = new FakeOpenAI(); (f as any).record = false; await f.start();
const dir = mkdtempSync(path.join(tmpdir(), 'mem-'));
const config = loadConfig({ ENCLAVE_DATA_DIR: dir, ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_LOG_LEVEL: 'warn', PORT: '0', ENCLAVE_HOST: '127.0.0.1' });
const s = await createServices(config, { log: pino({ level: 'warn' }) });
const ctx = systemContext(s.log, s.clock, 'bench');
const t = await s.identity.tenants.create(ctx, { slug: 'bench' });
const tctx = await s.identity.tenants.scopeTo(ctx, t.id);
const { secret } = await s.identity.keys.create(tctx, { name: 'bench', ownerUserId: null });
await s.gateway.deployments.create(ctx, { name: 'fake', kind: 'openai', base_url: `${f.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 1000 });
const server = await listen(buildApp(s), 0, '127.0.0.1');
await new Promise((r) => setTimeout(r, 500));
const body = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content: 'hello' }], max_tokens: 16 });
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const one = () => new Promise<void>((res, rej) => { const r = http.request({ agent, host: '127.0.0.1', port: server.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}`, 'content-length': Buffer.byteLength(body) } }, (x) => { x.resume(); x.on('end', () => (x.statusCode === 200 ? res() : rej(new Error(String(x.statusCode))))); }); r.on('error', rej); r.end(body); });
for (let round = 0; round < 6; round++) {
  for (let i = 0; i < 5000 / 16; i++) await Promise.all(Array.from({ length: 16 }, one));
  await s.gateway.usage.flush();
  (globalThis as any).gc();
  const m = process.memoryUsage();
  console.log(`after ${(round + 1) * 5000} calls: heapUsed ${(m.heapUsed / 1048576).toFixed(1)} MB, rss ${(m.rss / 1048576).toFixed(1)} MB, external ${(m.external / 1048576).toFixed(1)} MB`);
}
await server.close(100); await s.close(); process.exit(0);
