// Start-up time of the `enclave` CLI: runs the built CLI (bin/enclave.js → dist/) RUNS times per
// command against a temp data dir and prints the median and max wall time, and the median CPU
// time (user + sys of the child, which a busy machine disturbs less than wall time).
//   npm run build && node --import tsx bench/cli-startup.ts [--runs 10] [--cli other/bin.js] [filter…]
// Targets (DESIGN.md §8): `enclave --help` ≤ 300 ms, a simple read command ≤ 600 ms (median).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const RUNS = Number(flag('--runs') ?? 10);
// --cli <file>: another build's entry (e.g. the commit before, for an A/B in one run).
const BIN = path.resolve(flag('--cli') ?? 'bin/enclave.js');
const filters = args;

const dataDir = mkdtempSync(path.join(tmpdir(), 'enclave-bench-cli-'));
const env: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') env[k] = v;
env.ENCLAVE_DATA_DIR = dataDir;

/** CPU time (user + sys, ms) of this process's reaped children so far; Linux only, 10 ms ticks. */
function childCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 16 and 17 of /proc/<pid>/stat (cutime, cstime); f starts at field 3.
    return ((Number(f[13]) + Number(f[14])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

interface Run {
  readonly ms: number;
  readonly cpuMs: number | undefined;
  readonly code: number;
  readonly stderr: string;
}

function runOnce(argv: readonly string[], stdin = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const cpu0 = childCpuMs();
    const t0 = performance.now();
    const p = spawn(process.execPath, [BIN, ...argv], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      const ms = performance.now() - t0;
      const cpu1 = childCpuMs();
      resolve({ ms, cpuMs: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0, code: code ?? 1, stderr });
    });
    p.stdin.end(stdin);
  });
}

async function must(argv: readonly string[], stdin = ''): Promise<void> {
  const r = await runOnce(argv, stdin);
  if (r.code !== 0) throw new Error(`enclave ${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

// What is measured. `admin create` writes (a new administrator per run, deactivated after the
// run, untimed, to stay within the community licence's seats) and hashes the password with the
// production scrypt cost; the others read.
let adminN = 0;
const COMMANDS: {
  readonly label: string;
  readonly argv: () => readonly string[];
  readonly stdin?: string;
  readonly after?: () => Promise<void>;
}[] = [
  { label: '--help', argv: () => ['--help'] },
  { label: '--version', argv: () => ['--version'] },
  { label: 'tenants --help', argv: () => ['tenants', '--help'] },
  { label: 'tenants list', argv: () => ['tenants', 'list'] },
  { label: 'tenants list --json', argv: () => ['tenants', 'list', '--json'] },
  { label: 'users list', argv: () => ['users', 'list'] },
  { label: 'keys list --tenant bench', argv: () => ['keys', 'list', '--tenant', 'bench'] },
  { label: 'plans list', argv: () => ['plans', 'list'] },
  { label: 'prices list', argv: () => ['prices', 'list'] },
  { label: 'providers list', argv: () => ['providers', 'list'] },
  { label: 'sso list', argv: () => ['sso', 'list'] },
  { label: 'audit verify', argv: () => ['audit', 'verify'] },
  { label: 'license show', argv: () => ['license', 'show'] },
  { label: 'config show', argv: () => ['config', 'show'] },
  {
    label: 'admin create (scrypt N=2^15)',
    argv: () => ['admin', 'create', '--email', `bench${adminN++}@example.com`, '--password-stdin'],
    stdin: 'bench-password-7f3a9c\n',
    after: () => must(['users', 'deactivate', `bench${adminN - 1}@example.com`]),
  },
];

const median = (sorted: readonly number[]): number => (sorted[Math.floor((sorted.length - 1) / 2)]! + sorted[Math.ceil((sorted.length - 1) / 2)]!) / 2;

try {
  // A migrated database (this also says so when dist/ is not built) with one tenant, so the read commands read something, and a standing
  // administrator, so that each measured one may be deactivated again.
  await must(['migrate']);
  await must(['tenants', 'create', 'bench', '--name', 'Bench']);
  await must(['admin', 'create', '--email', 'owner@example.com', '--password-stdin'], 'bench-password-7f3a9c\n');
  console.log(`enclave CLI start-up (${path.relative(process.cwd(), BIN)}), ${RUNS} runs per command after 1 warm-up run, node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}`);
  console.log('| command | median | max | CPU (median) |');
  console.log('| --- | --- | --- | --- |');
  for (const c of COMMANDS) {
    if (filters.length && !filters.some((f) => c.label.includes(f))) continue;
    await must(c.argv(), c.stdin);
    await c.after?.();
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await runOnce(c.argv(), c.stdin);
      if (r.code !== 0) throw new Error(`enclave ${c.label} failed (${r.code}): ${r.stderr.trim()}`);
      runs.push(r);
      await c.after?.();
    }
    const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
    const cpu = runs.flatMap((r) => (r.cpuMs === undefined ? [] : [r.cpuMs])).sort((a, b) => a - b);
    console.log(`| \`enclave ${c.label}\` | ${median(ms).toFixed(0)} ms | ${ms.at(-1)!.toFixed(0)} ms | ${cpu.length ? `${median(cpu).toFixed(0)} ms` : 'n/a'} |`);
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
