/**
 * CPU per AI call inside one process: Enclave (same set-up as bench/gateway-overhead.ts:
 * API key auth, authorize(), data-boundary policy with every content detector, usage
 * records, metrics) and a keep-alive node:http client in this process, the fake upstream in
 * a child process (its CPU is not counted). Reports the process's CPU per call for batches
 * of sequential calls, and the *minimum* over batches — a number that stays comparable on a
 * machine shared with other work, where wall-clock figures do not. The client's own share
 * (≈ 35 µs per call for node:http on this machine) is included.
 *
 *   node --import tsx bench/gateway-cpu.ts [--batches 12] [--batch 500] [--limits]
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

if (process.env.BENCH_ROLE === 'fake') {
  const { FakeOpenAI } = await import('../test/fakes/fake-openai.js');
  const f = new FakeOpenAI();
  f.record = false;
  await f.start();
  process.send!({ url: f.url });
} else {
  const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_ROLE: 'fake' }, execArgv: ['--import', 'tsx'] });
  const fakeUrl: string = await new Promise((r) => child.once('message', (m: any) => r(m.url)));
  const pino = (await import('pino')).default;
  const { loadConfig } = await import('../server/config/load.js');
  const { buildApp, createServices } = await import('../server/app.js');
  const { listen } = await import('../server/http/server.js');
  const { systemContext } = await import('../server/identity/index.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-cpu-'));
  const config = loadConfig({ ENCLAVE_DATA_DIR: dir, ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_LOG_LEVEL: 'warn', PORT: '0', ENCLAVE_HOST: '127.0.0.1' });
  const services = await createServices(config, { log: pino({ level: 'warn' }) });
  const ctx = systemContext(services.log, services.clock, 'bench');
  const t = await services.identity.tenants.create(ctx, { slug: 'bench' });
  const tctx = await services.identity.tenants.scopeTo(ctx, t.id);
  const { secret } = await services.identity.keys.create(tctx, { name: 'bench', ownerUserId: null });
  services.gateway.deployments.create(ctx, { name: 'fake', kind: 'openai', base_url: `${fakeUrl}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 1000 });
  services.gateway.policies.write(tctx, { content: { default: { email: 'redact', phone: 'redact', iban: 'redact', card: 'redact', national_id: 'redact', secret: 'redact' } } }, Date.now());
  // --limits: the plan limits of bench/gateway-overhead.ts (high enough never to refuse), so
  // admission counts in Redis (leases far from every limit) as DESIGN.md §8 measures it.
  if (process.argv.includes('--limits')) {
    await services.metering.plans.upsert(ctx, { name: 'bench', limits: { requests_per_minute: 100_000_000, tokens_per_minute: 1_000_000_000_000, concurrent_requests: 100_000, monthly_tokens: 1_000_000_000_000 } });
    await services.metering.plans.assign(ctx, t.id, 'bench');
  }
  const server = await listen(buildApp(services), 0, '127.0.0.1');

  const BODY = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Summarise the quarterly report for the board in three bullet points.' }], max_tokens: 64 });
  const STREAM_BODY = JSON.stringify({ ...JSON.parse(BODY), stream: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const call = (body: string, route = '/v1/chat/completions'): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { agent, host: '127.0.0.1', port: server.port, path: route, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${secret}` } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const batches = arg('batches', 12);
  const size = arg('batch', 500);
  // --faces: the same call through every API face (issue 18), same prompt and answer.
  const user = JSON.parse(BODY).messages[1].content as string;
  const faces: (readonly [string, string, string])[] = process.argv.includes('--faces')
    ? [
        ['responses', JSON.stringify({ model: 'gpt-fake', instructions: 'You are terse.', input: user, max_output_tokens: 64, store: false }), '/v1/responses'],
        ['responses stream', JSON.stringify({ model: 'gpt-fake', instructions: 'You are terse.', input: user, max_output_tokens: 64, store: false, stream: true }), '/v1/responses'],
        ['messages', JSON.stringify({ model: 'gpt-fake', system: 'You are terse.', messages: [{ role: 'user', content: user }], max_tokens: 64 }), '/v1/messages'],
        ['messages stream', JSON.stringify({ model: 'gpt-fake', system: 'You are terse.', messages: [{ role: 'user', content: user }], max_tokens: 64, stream: true }), '/v1/messages'],
        ['ollama', JSON.stringify({ ...JSON.parse(BODY), stream: false }), '/ollama/api/chat'],
        ['ollama stream', JSON.stringify({ ...JSON.parse(BODY), stream: true }), '/ollama/api/chat'],
      ]
    : [];
  for (const [name, body, route] of [['unary', BODY, '/v1/chat/completions'] as const, ['stream', STREAM_BODY, '/v1/chat/completions'] as const, ...faces]) {
    for (let i = 0; i < 1000; i++) await call(body, route); // warm-up
    const per: number[] = [];
    for (let b = 0; b < batches; b++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < size; i++) await call(body, route);
      const c = process.cpuUsage(c0);
      per.push((c.user + c.system) / size);
    }
    per.sort((a, b) => a - b);
    console.log(`${name}: CPU per call (Enclave + client) min ${per[0]!.toFixed(0)} µs, median ${per[Math.floor(per.length / 2)]!.toFixed(0)} µs over ${batches} × ${size} calls`);
  }
  agent.destroy();
  await server.close(1000);
  await services.close();
  child.kill();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
