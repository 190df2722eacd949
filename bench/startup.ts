// Cold start to ready and idle memory of the embedded appliance (`--role all`, as `npm start`
// runs it): first start on an empty data dir, then restarts on the existing database.
//   npm run build && node --import tsx bench/startup.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../server/redis/ping.js';

const RUNS = 5;
const IDLE_MS = 10_000;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

async function startOnce(dataDir: string, measureIdle: boolean): Promise<{ readyMs: number; rss?: number }> {
  const port = await freePort();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') env[k] = v;
  Object.assign(env, { PORT: String(port), ENCLAVE_HOST: '127.0.0.1', ENCLAVE_DATA_DIR: dataDir, ENCLAVE_LOG_LEVEL: 'warn' });
  const t0 = performance.now();
  const child = spawn(process.execPath, ['dist/server/main.js', '--role', 'all'], { env, stdio: 'ignore' });
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const readyMs = performance.now() - t0;
  let rss: number | undefined;
  if (measureIdle) {
    await new Promise((r) => setTimeout(r, IDLE_MS));
    rss = rssMb(child.pid!);
  }
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return rss === undefined ? { readyMs } : { readyMs, rss };
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-start-'));
const first = await startOnce(dataDir, false);
const warm: number[] = [];
let rss = 0;
for (let i = 0; i < RUNS; i++) {
  const r = await startOnce(dataDir, i === RUNS - 1);
  warm.push(r.readyMs);
  if (r.rss) rss = r.rss;
}
rmSync(dataDir, { recursive: true, force: true });
warm.sort((a, b) => a - b);
console.log(`first start (empty data dir, migrations, key generation) to ready: ${first.readyMs.toFixed(0)} ms`);
console.log(`restart on existing database to ready: median ${warm[Math.floor(RUNS / 2)]!.toFixed(0)} ms, max ${warm.at(-1)!.toFixed(0)} ms (${RUNS} runs)`);
console.log(`idle RSS after ${IDLE_MS / 1000} s: ${rss.toFixed(1)} MB`);
