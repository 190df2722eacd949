import { spawn, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort } from '../../server/redis/ping.js';
import { waitFor } from './wait.js';

/**
 * One real PostgreSQL (Debian's `postgresql` package) per test run, started lazily: only the
 * files that call startPostgres() pay for initdb (the rest of the suite's time is unchanged).
 * The first worker to need it starts it in a run directory named after the run's mark
 * (test/helpers/global-setup.ts sets TEST_SUITE_RUN_MARK before the workers fork); the others
 * find it there and join. The cluster runs detached from the worker that started it (vitest
 * ends a file's process when the file is done) and the global teardown stops it by PID
 * (stopRunPostgres). Each test file gets a database of its own (freshDatabase).
 *
 * initdb and postgres refuse to run as root; as root (CI, this machine) they run as the
 * `postgres` system user the package creates, in a run directory that user owns. Trust auth on
 * 127.0.0.1 and a private unix socket dir; fsync off (a test cluster never survives a crash).
 */

const RUN_MARK = 'TEST_SUITE_RUN_MARK';
const INSTALL_HINT = 'PostgreSQL is not installed: the Postgres tests need a real server. Install it with: apt-get install -y postgresql';

interface RunState {
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  /** ms from initdb to the first accepted connection (reported in bench/docs). */
  readonly startMs: number;
}

export interface TestPostgres {
  readonly port: number;
  readonly version: string;
  readonly startMs: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database?: string): string;
}

function runDir(runId: string): string {
  return path.join(tmpdir(), `enclave-test-pg-${runId}`);
}

function currentRunId(): string {
  const id = process.env[RUN_MARK];
  if (!id) throw new Error(`${RUN_MARK} is not set: run the Postgres tests through vitest (test/helpers/global-setup.ts sets it)`);
  return id;
}

/** The directory holding initdb and postgres: PATH first, else Debian's /usr/lib/postgresql/<major>/bin (newest). */
export function findPostgresBinDir(): string | undefined {
  const onPath = findExecutable('initdb');
  if (onPath) {
    const dir = path.dirname(realpathSync(onPath));
    if (existsSync(path.join(dir, 'postgres'))) return dir;
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(b) - Number(a));
  for (const m of majors) {
    const dir = path.join(base, m, 'bin');
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'postgres'))) return dir;
  }
  return undefined;
}

/** uid/gid of the `postgres` system user (from /etc/passwd: node has no getpwnam). */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, but there is no "postgres" system user to run PostgreSQL as (initdb refuses root). Install it with: apt-get install -y postgresql');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function runAs(): Pick<SpawnOptions, 'uid' | 'gid'> {
  return process.getuid?.() === 0 ? postgresUser() : {};
}

function run(cmd: string, args: string[], opts: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} failed (exit ${code}): ${err.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

async function startCluster(dir: string): Promise<RunState> {
  const bin = findPostgresBinDir();
  if (!bin) throw new Error(INSTALL_HINT);
  const started = performance.now();
  const owner = runAs();
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  const sock = path.join(dir, 'sock');
  mkdirSync(sock, { mode: 0o700 });
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(sock, owner.uid, owner.gid);
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...owner, cwd: dir });
  const port = await freePort();
  const log = openSync(path.join(dir, 'postgres.log'), 'a');
  if (owner.uid !== undefined && owner.gid !== undefined) chownSync(path.join(dir, 'postgres.log'), owner.uid, owner.gid);
  const child = spawn(
    path.join(bin, 'postgres'),
    [
      '-D', data, '-p', String(port), '-k', sock,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=200', '-c', 'shared_buffers=32MB',
    ],
    // Detached: it outlives the file (and worker) that started it; the global teardown stops it.
    { ...owner, cwd: dir, detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('postgres did not start');
  // Written before the wait, so the teardown stops it even if it never answers.
  writeFileSync(path.join(dir, 'postgres.pid'), String(pid));
  const { default: pg } = await import('pg');
  const version = await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited (${child.exitCode}): ${readFileSync(path.join(dir, 'postgres.log'), 'utf8').trim().split('\n').slice(-3).join(' | ')}`);
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
      try {
        await c.connect();
        return String((await c.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version);
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    { what: `the test PostgreSQL answering on port ${port}`, timeout: 30_000, interval: 50 },
  );
  return { port, pid, version, startMs: Math.round(performance.now() - started) };
}

let joined: Promise<TestPostgres> | undefined;

/**
 * The run's PostgreSQL, started on first use (by whichever worker gets here first; the others
 * wait for its state file). Resolves once it accepts connections.
 */
export function startPostgres(): Promise<TestPostgres> {
  joined ??= join();
  return joined;
}

async function join(): Promise<TestPostgres> {
  const dir = runDir(currentRunId());
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755); // the postgres user must reach its data dir inside
  const stateFile = path.join(dir, 'state.json');
  const errorFile = path.join(dir, 'error.txt');
  let starter = false;
  try {
    mkdirSync(path.join(dir, 'starting'));
    starter = true;
  } catch {
    /* another worker is starting it */
  }
  let state: RunState;
  if (starter) {
    try {
      state = await startCluster(dir);
      writeFileSync(`${stateFile}.tmp`, JSON.stringify(state));
      renameSync(`${stateFile}.tmp`, stateFile);
    } catch (e) {
      writeFileSync(errorFile, (e as Error).message);
      throw e;
    }
  } else {
    const found = await waitFor(
      (): RunState | { error: string } | undefined => {
        if (existsSync(errorFile)) return { error: readFileSync(errorFile, 'utf8') };
        return existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as RunState) : undefined;
      },
      { what: 'the test PostgreSQL started by another worker', timeout: 45_000, interval: 50 },
    );
    if (!found || 'error' in found) throw new Error(`the test PostgreSQL failed to start in another worker: ${found?.error}`);
    state = found;
  }
  return {
    port: state.port,
    version: state.version,
    startMs: state.startMs,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${state.port}/${database}`,
  };
}

let dbCounter = 0;

/** A new, empty database on the run's PostgreSQL; returns its URL. */
export async function freshDatabase(prefix = 'enclave'): Promise<string> {
  const pgServer = await startPostgres();
  const name = `${prefix}_${process.pid}_${dbCounter++}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: pgServer.url() });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE "${name}"`);
  } finally {
    await c.end();
  }
  return pgServer.url(name);
}

/**
 * Turns TLS on in the run's PostgreSQL with this certificate and key (ssl is reloadable: no
 * restart). Plain connections stay allowed (the trust rules cover both), so other files are
 * unaffected. A test of a server without TLS cannot rely on this one staying plain.
 */
export async function enableTls(certPem: string, keyPem: string): Promise<void> {
  const server = await startPostgres();
  const dir = path.join(runDir(currentRunId()), `tls-${process.pid}-${dbCounter++}`);
  mkdirSync(dir, { mode: 0o700 });
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  writeFileSync(cert, certPem, { mode: 0o600 });
  writeFileSync(key, keyPem, { mode: 0o600 });
  const owner = runAs();
  if (owner.uid !== undefined && owner.gid !== undefined) for (const f of [dir, cert, key]) chownSync(f, owner.uid, owner.gid);
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: server.url() });
  await c.connect();
  try {
    await c.query(`ALTER SYSTEM SET ssl_cert_file = '${cert}'`);
    await c.query(`ALTER SYSTEM SET ssl_key_file = '${key}'`);
    await c.query('ALTER SYSTEM SET ssl = on');
    await c.query('SELECT pg_reload_conf()');
  } finally {
    await c.end();
  }
  await waitFor(
    async () => {
      const probe = new pg.Client({ connectionString: server.url() });
      await probe.connect();
      try {
        return (await probe.query<{ ssl: string }>('SHOW ssl')).rows[0]?.ssl === 'on';
      } finally {
        await probe.end();
      }
    },
    { what: 'the test PostgreSQL reloading with ssl = on' },
  );
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Global teardown: stops the run's PostgreSQL (if a file started one) by its PID — SIGINT is
 * PostgreSQL's fast shutdown — waits for it to exit (SIGKILL after 10 s) and removes its dir.
 */
export async function stopRunPostgres(runId: string): Promise<void> {
  const dir = runDir(runId);
  if (!existsSync(dir)) return;
  const pidFile = path.join(dir, 'postgres.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (pid > 0 && alive(pid)) {
      process.kill(pid, 'SIGINT');
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
