import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { checkRunner, worst, type CheckOutcome, type Status } from '../server/doctor/checks.js';
import { run } from './exec.js';

/**
 * Installer preflight: the doctor's check shape ({id, status ok|warn|fail, message}) and its
 * `worst()`; host facts come from `docker` on PATH so tests can stub them with a fake.
 */
export const MIN = { docker: '25.0.0', compose: '2.24.0' } as const;

/** kURL's disk thresholds: used share and free bytes on the data and Docker filesystems. */
export const DISK_THRESHOLDS = { failUsed: 0.8, warnUsed: 0.6, failFreeBytes: 5 * 1024 ** 3, warnFreeBytes: 10 * 1024 ** 3 };

export const RESOURCES = {
  base: { failCpu: 2, warnCpu: 4, failMem: 4 * 1024 ** 3, warnMem: 8 * 1024 ** 3 },
  ollama: { failCpu: 4, warnCpu: 8, failMem: 8 * 1024 ** 3, warnMem: 16 * 1024 ** 3 },
};

export const CHECK_IDS = ['root', 'docker', 'compose', 'cpu', 'memory', 'disk', 'docker_disk', 'ports', 'clock', 'fsync', 'gpu'] as const;
export type CheckId = (typeof CHECK_IDS)[number];

export interface PreflightOptions {
  readonly dir: string;
  readonly ports: readonly number[];
  readonly ollama: boolean;
  readonly skip: readonly string[];
  /** The ports belong to an Enclave proxy already running (re-run / upgrade): not a conflict. */
  readonly portsOwnedByUs?: boolean;
}

export interface PreflightReport {
  readonly status: Status;
  readonly checks: CheckOutcome[];
}

export interface DockerFacts {
  readonly serverVersion?: string;
  readonly composeVersion?: string;
  readonly ncpu?: number;
  readonly memTotal?: number;
  readonly rootDir?: string;
  readonly runtimes: string[];
  readonly error?: string;
}

/** Compares dotted versions (ignores a leading v and any -suffix). */
export function compareVersions(a: string, b: string): number {
  const pa = a.replace(/^v/, '').split(/[-+]/)[0]!.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.replace(/^v/, '').split(/[-+]/)[0]!.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function dockerFacts(): DockerFacts {
  const v = run('docker', ['version', '--format', '{{json .}}'], { timeoutMs: 20_000 });
  if (v.missing) return { runtimes: [], error: 'docker is not installed (install Docker Engine 25 or newer)' };
  let serverVersion: string | undefined;
  try {
    serverVersion = (JSON.parse(v.stdout) as { Server?: { Version?: string } | null }).Server?.Version;
  } catch {
    /* handled below */
  }
  if (v.code !== 0 || !serverVersion) {
    const why = (v.stderr || v.stdout).trim().split('\n')[0] ?? '';
    return { runtimes: [], error: `the Docker daemon is not reachable (${why || `exit ${v.code}`}); start it, or add this user to the docker group` };
  }
  const c = run('docker', ['compose', 'version', '--short'], { timeoutMs: 20_000 });
  const composeVersion = c.code === 0 ? c.stdout.trim().replace(/^v/, '') : undefined;
  const i = run('docker', ['info', '--format', '{{json .}}'], { timeoutMs: 20_000 });
  let info: { NCPU?: number; MemTotal?: number; DockerRootDir?: string; Runtimes?: Record<string, unknown> } = {};
  try {
    info = JSON.parse(i.stdout) as typeof info;
  } catch {
    /* unknown resources are reported as warnings */
  }
  return {
    serverVersion,
    composeVersion,
    ncpu: info.NCPU,
    memTotal: info.MemTotal,
    rootDir: info.DockerRootDir,
    runtimes: Object.keys(info.Runtimes ?? {}),
  };
}

const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;

function rootCheck(): CheckOutcome {
  const uid = process.getuid?.() ?? 0;
  return uid === 0
    ? { id: 'root', status: 'ok', message: 'running as root: secret files can be owned by the container users that read them' }
    : {
        id: 'root',
        status: 'fail',
        message: `running as uid ${uid}: secrets must be owned by the container users (10001, 1000, 472, 101); run with sudo (or --skip-check root if those uids already match)`,
      };
}

function dockerCheck(f: DockerFacts): CheckOutcome {
  if (f.error) return { id: 'docker', status: 'fail', message: f.error };
  return compareVersions(f.serverVersion!, MIN.docker) >= 0
    ? { id: 'docker', status: 'ok', message: `Docker Engine ${f.serverVersion}` }
    : { id: 'docker', status: 'fail', message: `Docker Engine ${f.serverVersion} is older than ${MIN.docker}; upgrade Docker` };
}

function composeCheck(f: DockerFacts): CheckOutcome {
  if (f.error) return { id: 'compose', status: 'fail', message: 'needs a working Docker daemon first' };
  if (!f.composeVersion) return { id: 'compose', status: 'fail', message: 'the Docker Compose plugin is missing; install docker-compose-plugin (v2)' };
  return compareVersions(f.composeVersion, MIN.compose) >= 0
    ? { id: 'compose', status: 'ok', message: `Docker Compose ${f.composeVersion}` }
    : {
        id: 'compose',
        status: 'fail',
        message: `Docker Compose ${f.composeVersion} is older than ${MIN.compose} (needed: depends_on restart, --wait, start_interval); upgrade docker-compose-plugin`,
      };
}

function resourceChecks(f: DockerFacts, ollama: boolean): CheckOutcome[] {
  const t = ollama ? RESOURCES.ollama : RESOURCES.base;
  const profile = ollama ? 'with the ollama profile' : 'for the base stack';
  const out: CheckOutcome[] = [];
  if (f.ncpu === undefined) out.push({ id: 'cpu', status: f.error ? 'fail' : 'warn', message: 'CPU count as Docker sees it is unknown' });
  else if (f.ncpu < t.failCpu) out.push({ id: 'cpu', status: 'fail', message: `Docker sees ${f.ncpu} CPUs; ${t.failCpu} is the minimum ${profile}` });
  else if (f.ncpu < t.warnCpu) out.push({ id: 'cpu', status: 'warn', message: `Docker sees ${f.ncpu} CPUs; ${t.warnCpu} recommended ${profile}` });
  else out.push({ id: 'cpu', status: 'ok', message: `Docker sees ${f.ncpu} CPUs` });
  if (f.memTotal === undefined) out.push({ id: 'memory', status: f.error ? 'fail' : 'warn', message: 'memory as Docker sees it is unknown' });
  else if (f.memTotal < t.failMem) out.push({ id: 'memory', status: 'fail', message: `Docker sees ${gib(f.memTotal)} RAM; ${gib(t.failMem)} is the minimum ${profile}` });
  else if (f.memTotal < t.warnMem) out.push({ id: 'memory', status: 'warn', message: `Docker sees ${gib(f.memTotal)} RAM; ${gib(t.warnMem)} recommended ${profile}` });
  else out.push({ id: 'memory', status: 'ok', message: `Docker sees ${gib(f.memTotal)} RAM` });
  return out;
}

/** Used share and free space of the filesystem holding `dir` (kURL thresholds). */
export function diskUsage(id: string, dir: string, label: string): CheckOutcome {
  let target = dir;
  while (!existsSync(target)) target = path.dirname(target);
  const s = statfsSync(target);
  const free = s.bavail * s.bsize;
  const used = s.blocks > 0 ? 1 - s.bfree / s.blocks : 1;
  const data = { path: target, freeBytes: free, usedRatio: Math.round(used * 1000) / 1000 };
  const human = `${gib(free)} free, ${(used * 100).toFixed(0)}% used on ${label} (${target})`;
  const T = DISK_THRESHOLDS;
  if (used > T.failUsed || free < T.failFreeBytes) return { id, status: 'fail', message: `${human}; free space (fail above ${T.failUsed * 100}% or below ${gib(T.failFreeBytes)})`, data };
  if (used > T.warnUsed || free < T.warnFreeBytes) return { id, status: 'warn', message: `${human}; plan to free space`, data };
  return { id, status: 'ok', message: human, data };
}

/** A port is busy when something accepts a connection on it or it cannot be bound. */
export async function portFree(port: number): Promise<{ free: boolean; why?: string }> {
  const accepts = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(500);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
  if (accepts) return { free: false, why: 'something accepts connections on it' };
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      // EACCES: an unprivileged installer cannot bind <1024; Docker can, and nothing answered.
      resolve(e.code === 'EADDRINUSE' ? { free: false, why: 'address in use' } : { free: true });
    });
    srv.listen({ port, host: '0.0.0.0', exclusive: true }, () => srv.close(() => resolve({ free: true })));
  });
}

async function portsCheck(ports: readonly number[], ownedByUs: boolean): Promise<CheckOutcome> {
  if (ownedByUs) return { id: 'ports', status: 'ok', message: `ports ${ports.join(', ')} are served by this Enclave's proxy` };
  const busy: string[] = [];
  for (const p of ports) {
    const r = await portFree(p);
    if (!r.free) busy.push(`${p} (${r.why})`);
  }
  return busy.length
    ? { id: 'ports', status: 'fail', message: `port(s) in use: ${busy.join(', ')}; stop that service or choose --http-port/--https-port` }
    : { id: 'ports', status: 'ok', message: `ports ${ports.join(', ')} are free` };
}

/** NTP state from timedatectl, else chronyc; licences, OIDC tokens and TOTP need a right clock. */
export function clockCheck(): CheckOutcome {
  const t = run('timedatectl', ['show', '-p', 'NTPSynchronized', '-p', 'NTP'], { timeoutMs: 5000 });
  if (!t.missing && t.code === 0) {
    const kv = Object.fromEntries(t.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
    if (kv.NTPSynchronized === 'yes') return { id: 'clock', status: 'ok', message: 'clock synchronized (timedatectl)' };
    if (kv.NTP === 'yes') return { id: 'clock', status: 'warn', message: 'NTP is enabled but the clock is not synchronized yet; check again shortly' };
    return { id: 'clock', status: 'fail', message: 'clock not synchronized and NTP inactive; enable it: timedatectl set-ntp true (or configure chrony against your internal NTP server)' };
  }
  const c = run('chronyc', ['-n', 'tracking'], { timeoutMs: 5000 });
  if (!c.missing && c.code === 0) {
    return /Leap status\s*:\s*Normal/.test(c.stdout)
      ? { id: 'clock', status: 'ok', message: 'clock synchronized (chrony)' }
      : { id: 'clock', status: 'fail', message: 'chrony reports the clock is not synchronized; check its sources: chronyc sources' };
  }
  return { id: 'clock', status: 'warn', message: 'cannot tell whether the clock is synchronized (no timedatectl or chronyc); make sure NTP runs' };
}

/** fsync latency on the install dir (SQLite commit latency; network filesystems are slow). */
export function fsyncCheck(dir: string): CheckOutcome {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `.preflight-fsync-${process.pid}`);
  const fd = openSync(file, 'w');
  const times: number[] = [];
  try {
    const buf = Buffer.alloc(4096, 1);
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      writeSync(fd, buf);
      fsyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  const p50 = times[Math.floor(times.length / 2)]!;
  const data = { p50Ms: Math.round(p50 * 100) / 100 };
  if (p50 > 50) return { id: 'fsync', status: 'warn', message: `fsync takes ${p50.toFixed(1)} ms (p50) on ${dir}; use local SSD storage, not a network filesystem`, data };
  return { id: 'fsync', status: 'ok', message: `fsync ${p50.toFixed(1)} ms (p50)`, data };
}

function gpuCheck(f: DockerFacts): CheckOutcome {
  return f.runtimes.includes('nvidia')
    ? { id: 'gpu', status: 'ok', message: 'nvidia container runtime available for the ollama profile' }
    : {
        id: 'gpu',
        status: 'fail',
        message:
          'the ollama profile reserves an NVIDIA GPU but Docker has no nvidia runtime; install the NVIDIA Container Toolkit and run: nvidia-ctk runtime configure --runtime=docker (or --skip-check gpu and remove the GPU reservation in docker-compose.override.yml for CPU-only, slow inference)',
      };
}

/** Runs every check (a skipped one is reported as a warning naming its flag). Never throws. */
export async function runPreflight(opts: PreflightOptions, facts: DockerFacts = dockerFacts()): Promise<PreflightReport> {
  const skip = new Set(opts.skip);
  // A skipped preflight check is a warning: the operator chose to install without it.
  const { checks, run: add } = checkRunner<CheckId>(skip, (id) => ({ id, status: 'warn', message: `skipped (--skip-check ${id})` }));
  await add('root', rootCheck);
  await add('docker', () => dockerCheck(facts));
  await add('compose', () => composeCheck(facts));
  if (skip.has('cpu') || skip.has('memory')) {
    await add('cpu', () => resourceChecks(facts, opts.ollama)[0]!);
    await add('memory', () => resourceChecks(facts, opts.ollama)[1]!);
  } else {
    await add('cpu', () => resourceChecks(facts, opts.ollama));
  }
  await add('disk', () => diskUsage('disk', opts.dir, 'the install dir'));
  if (facts.rootDir && existsSync(facts.rootDir)) await add('docker_disk', () => diskUsage('docker_disk', facts.rootDir!, "Docker's data root"));
  await add('ports', () => portsCheck(opts.ports, opts.portsOwnedByUs ?? false));
  await add('clock', clockCheck);
  await add('fsync', () => fsyncCheck(opts.dir));
  if (opts.ollama) await add('gpu', () => gpuCheck(facts));
  return { status: worst(checks), checks };
}

export function formatReport(r: PreflightReport): string {
  const mark: Record<Status, string> = { ok: 'PASS', warn: 'WARN', fail: 'FAIL' };
  return r.checks.map((c) => `  [${mark[c.status]}] ${c.id.padEnd(11)} ${c.message}`).join('\n') + '\n';
}
