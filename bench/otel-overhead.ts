/**
 * OpenTelemetry's cost on the call path (issue 25), in one run: three Enclave servers on the same
 * machine and the same fake upstream — one without tracing, one exporting to a collector that
 * takes everything (a minimal OTLP/HTTP sink in this process), one exporting to a collector that
 * is down (OTEL_EXPORTER_OTLP_ENDPOINT on a closed port: every export fails, the queue fills, spans
 * are dropped) — driven alternately (sequential calls interleaved one by one, concurrent windows
 * in turn, the order reversed in the second round), so machine noise falls on all alike.
 *
 *   npm run build && node --import tsx bench/otel-overhead.ts [--seq 2000] [--conc 16] [--secs 6]
 *   BENCH_MAIN=bench/source-main.mjs node --import tsx bench/otel-overhead.ts   (from the sources, no build)
 *
 * The servers are gateway-overhead.ts's `enclave` role (auth, policy with content rules, plan
 * limits, usage records, metrics; ENCLAVE_LOG_LEVEL=info).
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const overhead = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gateway-overhead.ts');
const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

interface Started {
  child: ChildProcess;
  // IPC message from gateway-overhead.ts's roles.
  info: any;
}

function start(role: string, env: Record<string, string>): Promise<Started> {
  const child = fork(overhead, [], { env: { ...process.env, BENCH_ROLE: role, ...env }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, info }));
    child.once('exit', (c) => reject(new Error(`${role} exited ${c}`)));
  });
}

/** A port nothing listens on (bound, then closed): the collector that is down. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const BODY = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Summarise the quarterly report for the board in three bullet points.' }], max_tokens: 64 });

function call(agent: http.Agent, url: string, key: string, overheads?: number[]): Promise<number> {
  const u = new URL(`${url}/v1/chat/completions`);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(
      { agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY), authorization: `Bearer ${key}` } },
      (res) => {
        const oh = res.headers['x-enclave-overhead-ms'];
        if (overheads && typeof oh === 'string') overheads.push(Number(oh));
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

function cpuOf(child: ChildProcess): Promise<number> {
  child.send('cpu');
  return new Promise((r) => {
    const on = (m: { cpuUs?: number }): void => {
      if (typeof m?.cpuUs !== 'number') return;
      child.off('message', on);
      r(m.cpuUs);
    };
    child.on('message', on);
  });
}

async function window(url: string, key: string, conc: number, secs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const end = Date.now() + secs * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (Date.now() < end) {
        await call(agent, url, key);
        n++;
      }
    }),
  );
  agent.destroy();
  return n;
}

async function main(): Promise<void> {
  const seqN = arg('seq', 2000);
  const conc = arg('conc', 16);
  const secs = arg('secs', 6);
  const dirs = [mkdtempSync(path.join(tmpdir(), 'enclave-otel-off-')), mkdtempSync(path.join(tmpdir(), 'enclave-otel-down-')), mkdtempSync(path.join(tmpdir(), 'enclave-otel-up-'))];
  const fake = await start('fake', {});
  const down = await closedPort();
  const common = { FAKE_URL: fake.info.url as string, BENCH_WORKERS: '1' };
  // The collector that is up: answers every export 200 (spans counted, not decoded).
  let received = 0;
  const sink = http.createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      received++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  const up = (sink.address() as net.AddressInfo).port;
  const off = await start('enclave', { ...common, BENCH_DIR: dirs[0]! });
  const onUp = await start('enclave', { ...common, BENCH_DIR: dirs[2]!, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${up}` });
  const on = await start('enclave', { ...common, BENCH_DIR: dirs[1]!, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${down}` });
  const side = (name: string, s: Started) => ({ name, s, lat: [] as number[], oh: [] as number[], agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), calls: 0, cpuUs: 0 });
  const sides = [side('OTel off', off), side('OTel on, collector up', onUp), side('OTel on, collector down', on)];
  try {
    for (let i = 0; i < 300; i++) for (const x of sides) await call(x.agent, x.s.info.url, x.s.info.key); // warm-up
    for (let i = 0; i < seqN; i++) {
      // Interleaved, the order flipped every call: neither side always goes first.
      for (const x of i % 2 ? [...sides].reverse() : sides) x.lat.push(await call(x.agent, x.s.info.url, x.s.info.key, x.oh));
    }
    const f = (v: number): string => v.toFixed(3);
    console.log(`sequential (${seqN} each, interleaved):`);
    for (const x of sides) console.log(`  ${x.name.padEnd(24)} p50 ${f(pct(x.lat, 50))} p99 ${f(pct(x.lat, 99))} ms | x-enclave-overhead-ms p50 ${f(pct(x.oh, 50))} p99 ${f(pct(x.oh, 99))}`);
    const [o, u, d] = sides as [(typeof sides)[0], (typeof sides)[0], (typeof sides)[0]];
    console.log(`  tracing (collector up vs off): p50 ${f(pct(u.lat, 50) - pct(o.lat, 50))} ms, p99 ${f(pct(u.lat, 99) - pct(o.lat, 99))} ms`);
    console.log(`  collector down vs up:          p50 ${f(pct(d.lat, 50) - pct(u.lat, 50))} ms, p99 ${f(pct(d.lat, 99) - pct(u.lat, 99))} ms`);
    for (let round = 0; round < 2; round++) {
      for (const x of round % 2 ? [...sides].reverse() : sides) {
        const c0 = await cpuOf(x.s.child);
        x.calls += await window(x.s.info.url, x.s.info.key, conc, secs / 2);
        x.cpuUs += (await cpuOf(x.s.child)) - c0;
      }
    }
    console.log(`concurrent ${conc} (2 windows of ${secs / 2} s each, in turn):`);
    for (const x of sides) console.log(`  ${x.name.padEnd(24)} ${(x.calls / secs).toFixed(0)} req/s, CPU ${(x.cpuUs / 1000 / x.calls).toFixed(3)} ms per call`);
    console.log(`  throughput, collector up / off: ${((u.calls / o.calls) * 100).toFixed(1)} %; collector down / up: ${((d.calls / u.calls) * 100).toFixed(1)} %`);
    console.log(`  exports the live collector took: ${received}`);
    on.child.send('rss');
    const m: { usage: number } = await new Promise((r) => on.child.once('message', r));
    console.log(`usage records written by the server whose collector is down: ${m.usage} (calls: ${300 + seqN + d.calls})`);
  } finally {
    for (const x of sides) {
      x.agent.destroy();
      x.s.child.send('stop');
      await new Promise((r) => x.s.child.once('exit', r));
    }
    fake.child.kill();
    sink.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

await main();
