/**
 * Throughput with 1 and with 2 api replicas on one PostgreSQL (issue 22), same run. Two real
 * server processes (`server/main.ts --role api`, or BENCH_MAIN=dist/server/main.js) share one
 * PostgreSQL database and one Redis; a fake OpenAI-compatible upstream runs in a child
 * process; this process is the load generator (node:http keep-alive, a closed loop of --conc
 * connections in total). Phases alternate 1 → 2 → 1 → 2 replicas (the load generator spreads
 * its connections round-robin over the replicas of the phase); each phase reports completed
 * calls per second and latency p50 / p99. Every call has its usage record before its answer
 * ends (server/gateway/settle.ts); the bench checks that records = answered calls at the end.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/bench node --import tsx bench/replicas.ts [--conc 32] [--secs 6]
 *
 * BENCH_DATABASE_URL must name an empty scratch database (migrated at start; a new master key
 * each run, so a database used before refuses it). Redis:
 * REDIS_URL, else a redis-server from PATH on a private port. Everything — PostgreSQL, Redis,
 * the upstream, both replicas and the load generator — shares this machine's cores: on a
 * 2-core box a second replica cannot add CPU, it only shows what the shared database and the
 * replica split cost.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const ROOT = path.join(path.dirname(self), '..');
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
  await main();
}

async function main(): Promise<void> {
  const url = process.env.BENCH_DATABASE_URL;
  if (!url) {
    console.log('bench/replicas.ts: skipped (set BENCH_DATABASE_URL to a scratch PostgreSQL database)');
    return;
  }
  const CONC = arg('conc', 32);
  const SECS = arg('secs', 6);
  const pino = (await import('pino')).default;
  const { loadConfig } = await import('../server/config/load.js');
  const { createServices } = await import('../server/app.js');
  const { systemContext } = await import('../server/identity/index.js');
  const { freePort, pingTcp } = await import('../server/redis/ping.js');
  const { findExecutable } = await import('../server/redis/embedded.js');
  const { openPostgres } = await import('../server/db/pg/connection.js');
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(path.join(tmpdir(), 'enclave-bench-replicas-'));
    dirs.push(d);
    return d;
  };
  const children: ChildProcess[] = [];
  try {
    let redisUrl = process.env.REDIS_URL;
    if (!redisUrl) {
      const port = await freePort();
      children.push(spawn(findExecutable('redis-server')!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', tmp()], { stdio: 'ignore' }));
      while (!(await pingTcp('127.0.0.1', port, 200))) await new Promise((r) => setTimeout(r, 25));
      redisUrl = `redis://127.0.0.1:${port}/0`;
    }
    const fake = fork(self, [], { env: { ...process.env, BENCH_ROLE: 'fake' }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(fake);
    const fakeUrl = await new Promise<string>((resolve) => fake.once('message', (m: { url: string }) => resolve(m.url)));

    // Seed with the real services: a tenant, its key, the deployment (no plan limits).
    const masterKey = randomBytes(32).toString('base64');
    const shared = { ENCLAVE_DATABASE_URL: url, ENCLAVE_MASTER_KEY: masterKey, REDIS_URL: redisUrl };
    const services = await createServices(loadConfig({ ...shared, ENCLAVE_DATA_DIR: tmp(), ENCLAVE_LOG_LEVEL: 'warn' }), { log: pino({ level: 'warn' }) });
    const ctx = systemContext(services.log, services.clock, 'bench');
    const t = await services.identity.tenants.create(ctx, { slug: `bench-${randomBytes(4).toString('hex')}` });
    const tctx = await services.identity.tenants.scopeTo(ctx, t.id);
    const { secret } = await services.identity.keys.create(tctx, { name: 'bench', ownerUserId: null });
    await services.gateway.deployments.create(ctx, { name: `fake-${randomBytes(3).toString('hex')}`, kind: 'openai', base_url: `${fakeUrl}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 1000 });
    await services.close();

    // Two replicas: the real entry point, each its own process and data dir.
    const main = process.env.BENCH_MAIN ? [process.env.BENCH_MAIN] : ['--import', 'tsx', path.join(ROOT, 'server', 'main.ts')];
    const replicas: string[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL' && !k.startsWith('BENCH_')) env[k] = v;
      Object.assign(env, shared, { ENCLAVE_DATA_DIR: tmp(), ENCLAVE_LOG_LEVEL: 'info', PORT: String(port), ENCLAVE_HOST: '127.0.0.1', ENCLAVE_API_WORKERS: '1' });
      const child = spawn(process.execPath, [...main, '--role', 'api'], { env, cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      replicas.push(`http://127.0.0.1:${port}`);
    }
    for (const r of replicas) {
      for (let i = 0; ; i++) {
        const res = await fetch(`${r}/readyz`).catch(() => undefined);
        if (res?.ok) break;
        if (i > 1200) throw new Error(`replica ${r} did not become ready`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }

    const body = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content: 'Summarise the quarterly report in three bullet points.' }], max_tokens: 64 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
    const call = (base: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const u = new URL(`${base}/v1/chat/completions`);
        const t0 = performance.now();
        const req = http.request(
          { agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${secret}` } },
          (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    let answered = 0;
    const phase = async (targets: string[], secs: number): Promise<{ rps: number; p50: number; p99: number }> => {
      const lat: number[] = [];
      const until = performance.now() + secs * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CONC }, async (_, c) => {
          for (let i = c; performance.now() < until; i += CONC) lat.push(await call(targets[i % targets.length]!));
        }),
      );
      answered += lat.length;
      const s = lat.sort((x, y) => x - y);
      return { rps: lat.length / ((performance.now() - t0) / 1000), p50: s[Math.floor(s.length / 2)]!, p99: s[Math.floor(s.length * 0.99)]! };
    };
    // Warm-up: both replicas (JIT, caches, pools), then each alone.
    await phase(replicas, SECS);
    const rows: [string, { rps: number; p50: number; p99: number }][] = [];
    for (const n of [1, 2, 1, 2]) rows.push([`${n} replica${n > 1 ? 's' : ''}`, await phase(replicas.slice(0, n), SECS)]);
    console.log(`\n${CONC} connections, ${SECS} s per phase, one PostgreSQL + one Redis, fake upstream; all on this machine's ${(await import('node:os')).cpus().length} cores`);
    console.log('phase        calls/s   p50 ms   p99 ms');
    for (const [name, r] of rows) console.log(`${name.padEnd(11)} ${r.rps.toFixed(0).padStart(8)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}`);

    // Every answered call has its usage record (written before its answer ended).
    const pg = openPostgres({ url, poolMax: 1, applicationName: 'bench-replicas' });
    const n = Number((await pg.$client.query('SELECT count(*) AS n FROM usage_records WHERE tenant_id = $1', [t.id])).rows[0].n);
    await pg.$client.end();
    console.log(`usage records of this run: ${n}; answered calls: ${answered}${n === answered ? '' : ' (MISMATCH)'}`);
    agent.destroy();
  } finally {
    for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
