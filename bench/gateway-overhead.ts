/**
 * Gateway overhead benchmark: the same fake OpenAI-compatible upstream called directly and
 * through Enclave with everything on (API key auth, authorize(), data-boundary policy with
 * content rules, usage records, metrics). The processes share the machine's cores: the
 * fake upstream, Enclave (the built server, `dist/server/main.js --role api`, with
 * ENCLAVE_API_WORKERS = --workers and its embedded redis-server) and this load generator
 * (node:http keep-alive agents).
 *
 *   npm run build && node --import tsx bench/gateway-overhead.ts [--seq 2000] [--conc 32] [--secs 8] [--workers 1] [--baseline] [--no-limits]
 *
 * BENCH_MAIN=path/to/main.js runs another build of the server (e.g. a private one of a work tree).
 * BENCH_DATABASE_URL=postgres://… runs it on PostgreSQL (an empty database; migrated at start).
 *
 * --baseline puts a bare node:http JSON proxy where Enclave would be: what any Node proxy costs
 * on this machine (the extra loopback hop included), the floor the targets are measured against.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const role = process.env.BENCH_ROLE;
const self = fileURLToPath(import.meta.url);
const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

if (role === 'fake') {
  const { FakeOpenAI } = await import('../test/fakes/fake-openai.js');
  const f = new FakeOpenAI();
  f.record = false;
  await f.start();
  process.send!({ url: f.url });
} else if (role === 'proxy') {
  // The reference point (--baseline): the least any Node proxy does — read the request, parse
  // and re-serialise its JSON, send it upstream on a keep-alive agent, parse and re-serialise
  // the answer. No auth, policy, limits, records or metrics.
  const up = new URL(process.env.FAKE_URL!);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const out = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      const ureq = http.request(
        { agent, host: up.hostname, port: up.port, path: req.url, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) } },
        (ures) => {
          const uc: Buffer[] = [];
          const stream = (ures.headers['content-type'] ?? '').startsWith('text/event-stream');
          if (stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            ures.pipe(res);
            return;
          }
          ures.on('data', (c: Buffer) => uc.push(c));
          ures.on('end', () => {
            const s = JSON.stringify(JSON.parse(Buffer.concat(uc).toString('utf8')));
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
            res.end(s);
          });
        },
      );
      ureq.end(out);
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ url: `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`, key: 'none', processes: 1 }));
  process.on('message', (m: unknown) => {
    if (m === 'cpu') {
      const c = process.cpuUsage();
      process.send!({ cpuUs: c.user + c.system });
    }
    if (m === 'rss') process.send!({ rss: process.memoryUsage().rss, usage: 0, loopP99: 0, loopMax: 0 });
    if (m === 'stop') process.exit(0);
  });
} else if (role === 'enclave') {
  // Prepares the data dir (tenant, key, deployment, policy) with the real services, closes
  // them, then runs the real server on it: `dist/server/main.js --role api` (run
  // `npm run build` first), ENCLAVE_API_WORKERS from --workers, embedded redis-server.
  const pino = (await import('pino')).default;
  const { loadConfig } = await import('../server/config/load.js');
  const { createServices } = await import('../server/app.js');
  const { systemContext } = await import('../server/identity/index.js');
  const { freePort } = await import('../server/redis/ping.js');
  const dir = process.env.BENCH_DIR!;
  const masterKey = randomBytes(32).toString('base64');
  const redis = await import('../server/redis/embedded.js');
  const setupRedis = await redis.startEmbeddedRedis({ bin: 'redis-server', dataDir: path.join(dir, 'setup'), log: pino({ level: 'silent' }) });
  // BENCH_DATABASE_URL=postgres://… runs Enclave on PostgreSQL (issue 22) instead of SQLite in the data dir.
  const dbEnv: Record<string, string> = process.env.BENCH_DATABASE_URL ? { ENCLAVE_DATABASE_URL: process.env.BENCH_DATABASE_URL } : {};
  const config = loadConfig({ ENCLAVE_DATA_DIR: dir, ENCLAVE_MASTER_KEY: masterKey, ENCLAVE_LOG_LEVEL: 'warn', REDIS_URL: setupRedis.url, ...dbEnv });
  const services = await createServices(config, { log: pino({ level: 'warn' }) });
  const ctx = systemContext(services.log, services.clock, 'bench');
  const t = await services.identity.tenants.create(ctx, { slug: 'bench' });
  const tctx = await services.identity.tenants.scopeTo(ctx, t.id);
  const { secret } = await services.identity.keys.create(tctx, { name: 'bench', ownerUserId: null });
  services.gateway.deployments.create(ctx, { name: 'fake', kind: 'openai', base_url: `${process.env.FAKE_URL}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 1000 });
  // Limits on at the tenant level (high enough never to refuse), so admission reserves and
  // settles in Redis on every call, as it does for any tenant whose plan sets limits.
  // --no-limits leaves the default plan (no limits: admission does not touch Redis).
  if (!process.argv.includes('--no-limits')) {
    await services.metering.plans.upsert(ctx, { name: 'bench', limits: { requests_per_minute: 100_000_000, tokens_per_minute: 1_000_000_000_000, concurrent_requests: 100_000, monthly_tokens: 1_000_000_000_000 } });
    await services.metering.plans.assign(ctx, t.id, 'bench');
  }
  // Content rules on for every detector (redact), so the scan runs on every call.
  services.gateway.policies.write(tctx, { content: { default: { email: 'redact', phone: 'redact', iban: 'redact', card: 'redact', national_id: 'redact', secret: 'redact' } } }, Date.now());
  await services.close();
  await setupRedis.stop();

  const port = await freePort();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL' && !k.startsWith('BENCH_')) env[k] = v;
  Object.assign(env, { ENCLAVE_DATA_DIR: dir, ENCLAVE_MASTER_KEY: masterKey, ENCLAVE_LOG_LEVEL: 'info', // production's level: one request line per call (to /dev/null)
    PORT: String(port), ENCLAVE_HOST: '127.0.0.1', ENCLAVE_API_WORKERS: process.env.BENCH_WORKERS ?? '1', ...dbEnv });
  const { spawn } = await import('node:child_process');
  const server = spawn(process.execPath, [...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/gwprof'] : []), process.env.BENCH_MAIN ?? path.join(path.dirname(self), '..', 'dist', 'server', 'main.js'), '--role', 'api'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const { pingTcp } = await import('../server/redis/ping.js');
  for (let i = 0; ; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    if (r?.ok) break;
    if (i > 600 || server.exitCode !== null) throw new Error('the server did not become ready');
    await new Promise((res) => setTimeout(res, 50));
  }
  void pingTcp;
  // Every worker of a cluster must be up, not only the first to answer.
  await new Promise((res) => setTimeout(res, 1500));
  const { readFileSync, readdirSync } = await import('node:fs');
  /** The server's node processes: the supervisor/server and its node children (not redis-server). */
  const tree = (): number[] => {
    const out = [server.pid!];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === server.pid && readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'node') out.push(Number(d));
      } catch {
        /* gone */
      }
    }
    return out;
  };
  const cpuUs = (): number =>
    tree().reduce((n, pid) => {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
        return n + ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // utime + stime, in clock ticks (100 Hz)
      } catch {
        return n;
      }
    }, 0);
  const rss = (): number =>
    tree().reduce((n, pid) => {
      try {
        return n + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
      } catch {
        return n;
      }
    }, 0);
  process.send!({ url: `http://127.0.0.1:${port}`, key: secret, processes: tree().length });
  process.on('message', async (m: any) => {
    if (m === 'cpu') process.send!({ cpuUs: cpuUs() });
    if (m === 'rss') {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      await new Promise((res) => setTimeout(res, 1500)); // usage writers flush
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(path.join(dir, 'enclave.db'), { readonly: true });
      const usage = (db.prepare('SELECT count(*) AS n FROM usage_records').get() as { n: number }).n;
      db.close();
      // How admission decided (lease = in process, redis = a script call per call): leases must carry the load.
      const admissions = [...text.matchAll(/^enclave_ratelimit_admissions_total\{store="(\w+)"\} (\S+)$/gm)].map((x) => `${x[1]} ${x[2]}`).join(', ');
      process.send!({ rss: rss(), usage, loopP99: gauge('nodejs_eventloop_lag_p99_seconds') * 1000, loopMax: gauge('nodejs_eventloop_lag_max_seconds') * 1000, admissions });
    }
    if (m === 'stop') {
      server.kill('SIGTERM');
      await new Promise((res) => server.once('exit', res));
      process.exit(0);
    }
  });
}

function start(r: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; info: any }> {
  const child = fork(self, process.argv.slice(2), { env: { ...process.env, BENCH_ROLE: r, ...env }, execArgv: ['--import', 'tsx', ...(process.env.BENCH_PROF && r === 'enclave' ? ['--cpu-prof', '--cpu-prof-dir=/tmp/gwprof'] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, info }));
    child.once('exit', (c) => reject(new Error(`${r} exited ${c}`)));
  });
}

const BODY = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Summarise the quarterly report for the board in three bullet points.' }], max_tokens: 64 });
const STREAM_BODY = JSON.stringify({ ...JSON.parse(BODY), stream: true });

function request(agent: http.Agent, url: string, p: string, body: string, key?: string, firstByte = false): Promise<number> {
  const u = new URL(url + p);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(
      { agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(key ? { authorization: `Bearer ${key}` } : {}) } },
      (res) => {
        const oh = res.headers['x-enclave-overhead-ms'];
        if (typeof oh === 'string') overheads.push(Number(oh));
        let first = 0;
        res.on('data', () => {
          if (!first) first = Number(process.hrtime.bigint() - t0) / 1e6;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
          resolve(firstByte ? first : Number(process.hrtime.bigint() - t0) / 1e6);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const overheads: number[] = [];
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function sequential(url: string, p: string, body: string, n: number, key?: string, firstByte = false): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) await request(agent, url, p, body, key, firstByte); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await request(agent, url, p, body, key, firstByte));
  agent.destroy();
  return out;
}

function cpuOf(child: ChildProcess): Promise<number> {
  child.send('cpu');
  return new Promise((r) => {
    const on = (m: any): void => {
      if (typeof m?.cpuUs !== 'number') return;
      child.off('message', on);
      r(m.cpuUs);
    };
    child.on('message', on);
  });
}

async function concurrent(url: string, p: string, body: string, conc: number, secs: number, key?: string): Promise<{ rps: number; lat: number[]; total: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const lat: number[] = [];
  const end = Date.now() + secs * 1000;
  const warmEnd = Date.now() + 1000;
  let count = 0;
  let total = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (Date.now() < end) {
        const ms = await request(agent, url, p, body, key);
        total++;
        if (Date.now() > warmEnd) {
          lat.push(ms);
          count++;
        }
      }
    }),
  );
  agent.destroy();
  return { rps: count / (secs - 1), lat, total };
}

async function main(): Promise<void> {
  const seqN = arg('seq', 2000);
  const conc = arg('conc', 32);
  const secs = arg('secs', 8);
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-'));
  const fake = await start('fake');
  const baseline = process.argv.includes('--baseline');
  const enc = await start(baseline ? 'proxy' : 'enclave', { FAKE_URL: fake.info.url, BENCH_DIR: dir, BENCH_WORKERS: String(arg('workers', 1)) });
  console.log(
    baseline
      ? 'Baseline: a bare node:http JSON proxy in place of Enclave (the "enclave" figures below are that proxy\'s)'
      : `Enclave: dist/server/main.js --role api, ENCLAVE_API_WORKERS=${arg('workers', 1)} (${enc.info.processes} node process${enc.info.processes > 1 ? 'es' : ''})`,
  );
  const F = fake.info.url as string;
  const E = enc.info.url as string;
  const key = enc.info.key as string;
  try {
    const f = (x: number) => x.toFixed(3);
    const d1 = await sequential(F, '/v1/chat/completions', BODY, seqN);
    overheads.length = 0;
    const seqCpu0 = await cpuOf(enc.child);
    const e1 = await sequential(E, '/v1/chat/completions', BODY, seqN, key);
    const seqCpuMs = ((await cpuOf(enc.child)) - seqCpu0) / 1000;
    if (overheads.length) console.log(`x-enclave-overhead-ms (time inside Enclave, sequential): p50 ${pct(overheads, 50).toFixed(3)} p99 ${pct(overheads, 99).toFixed(3)} ms`);
    console.log(`enclave CPU per sequential call: ${(seqCpuMs / (seqN + 200)).toFixed(3)} ms (warm-up included)`);
    console.log(`sequential (${seqN}): direct p50 ${f(pct(d1, 50))} p99 ${f(pct(d1, 99))} ms | enclave p50 ${f(pct(e1, 50))} p99 ${f(pct(e1, 99))} ms | added p50 ${f(pct(e1, 50) - pct(d1, 50))} p99 ${f(pct(e1, 99) - pct(d1, 99))} ms`);
    const ds = await sequential(F, '/v1/chat/completions', STREAM_BODY, Math.min(seqN, 1000), undefined, true);
    const es = await sequential(E, '/v1/chat/completions', STREAM_BODY, Math.min(seqN, 1000), key, true);
    console.log(`streaming TTFT: direct p50 ${f(pct(ds, 50))} p99 ${f(pct(ds, 99))} ms | enclave p50 ${f(pct(es, 50))} p99 ${f(pct(es, 99))} ms | added p50 ${f(pct(es, 50) - pct(ds, 50))} ms`);
    const dc = await concurrent(F, '/v1/chat/completions', BODY, conc, secs);
    const cpu0 = await cpuOf(enc.child);
    const ec = await concurrent(E, '/v1/chat/completions', BODY, conc, secs, key);
    const cpuMs = ((await cpuOf(enc.child)) - cpu0) / 1000;
    console.log(`concurrent ${conc}: direct ${dc.rps.toFixed(0)} req/s p50 ${f(pct(dc.lat, 50))} p99 ${f(pct(dc.lat, 99))} ms | enclave ${ec.rps.toFixed(0)} req/s p50 ${f(pct(ec.lat, 50))} p99 ${f(pct(ec.lat, 99))} ms | added p50 ${f(pct(ec.lat, 50) - pct(dc.lat, 50))} p99 ${f(pct(ec.lat, 99) - pct(dc.lat, 99))} ms`);
    // Enclave's own CPU (user + system) per call over the whole concurrent phase (warm-up second included).
    console.log(`enclave CPU at ${conc} connections: ${(cpuMs / (ec.total || 1)).toFixed(3)} ms per call (${ec.total} calls, ${((cpuMs / secs / 10)).toFixed(0)} % of one core; node processes only, 10 ms resolution)`);
    enc.child.send('rss');
    const m: any = await new Promise((r) => enc.child.once('message', r));
    console.log(`enclave RSS after ${m.usage} calls: ${(m.rss / 1048576).toFixed(1)} MB; usage records written: ${m.usage}; event-loop lag (prom-client, last interval) p99 ${m.loopP99.toFixed(1)} ms, max ${m.loopMax.toFixed(1)} ms${m.admissions ? `; admissions by store: ${m.admissions}` : ''}`);
  } finally {
    enc.child.send('stop');
    await new Promise((r) => enc.child.once('exit', r));
    fake.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!role) await main();
