import { postgresStatus, type PgStatus } from '../ops/db-migrate/status.js';
import { accessSync, constants, existsSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from '../config/settings.js';
import { resolveMasterKey } from '../config/master-key.js';
import { RuntimeSettings } from '../config/runtime-settings.js';
import { sqliteStore } from '../db/store.js';
import { databaseFile, openDatabase, type Db } from '../db/connection.js';
import { migrationStatus } from '../db/migrator.js';
import { findExecutable, REDIS_MISSING } from '../redis/embedded.js';
import { systemClock } from '../clock.js';
import { backupAgeCheck, clockCheck, providersCheck, tlsCheck } from './extra-checks.js';
import { queueCheck } from './queue-check.js';
import { poolCheck } from './pool-check.js';

export type Status = 'ok' | 'warn' | 'fail';

export interface CheckOutcome {
  readonly id: string;
  readonly status: Status;
  /** What was found; for warn/fail it ends with the fix. */
  readonly message: string;
  readonly data?: Record<string, unknown>;
  /** Set when the check was skipped on request (--skip id); the status is then ok. */
  readonly skipped?: boolean;
}

/** Every check id runDoctor knows, in run order (skip flags use these). */
export const DOCTOR_CHECK_IDS = ['node', 'data_dir', 'disk', 'clock', 'database', 'migrations', 'db_pool', 'redis', 'queues', 'master_key', 'backup_age', 'tls', 'providers'] as const;
export type DoctorCheckId = (typeof DOCTOR_CHECK_IDS)[number];

export interface DoctorOptions {
  /** Check ids to skip (reported as ok with skipped: true). */
  readonly skip?: readonly string[];
  /** Opt-in: contact every enabled provider deployment (outbound calls). */
  readonly providers?: boolean;
  /** A TLS certificate (PEM) to check for expiry and host name; omitted = no tls check. */
  readonly tlsCert?: string;
  /** Backups older than this warn (default 26 h: a daily schedule plus slack); 7× this fails. */
  readonly backupMaxAgeHours?: number;
  readonly now?: () => number;
}

export interface DoctorReport {
  readonly status: Status;
  readonly checks: readonly CheckOutcome[];
}

/** Disk thresholds on the data dir's filesystem (free bytes and free share). */
export const DISK = { failBytes: 512 * 1024 ** 2, warnBytes: 2 * 1024 ** 3, failRatio: 0.05, warnRatio: 0.1 };

const rank: Record<Status, number> = { ok: 0, warn: 1, fail: 2 };
export const worst = (list: readonly { status: Status }[]): Status =>
  list.reduce<Status>((w, c) => (rank[c.status] > rank[w] ? c.status : w), 'ok');
export const exitCodeFor = (s: Status): number => rank[s];

function nodeVersion(): CheckOutcome {
  const major = Number(process.versions.node.split('.')[0]);
  return major >= 20
    ? { id: 'node', status: 'ok', message: `Node.js ${process.versions.node}` }
    : { id: 'node', status: 'fail', message: `Node.js ${process.versions.node} is too old; install Node.js 20 or newer` };
}

function dataDirWritable(config: Config): CheckOutcome {
  const dir = config.dataDir;
  if (!existsSync(dir)) {
    return { id: 'data_dir', status: 'fail', message: `${dir} does not exist; start the server once or create it` };
  }
  try {
    accessSync(dir, constants.W_OK);
    const probe = path.join(dir, `.doctor-${process.pid}`);
    writeFileSync(probe, 'x');
    rmSync(probe);
    return { id: 'data_dir', status: 'ok', message: `${dir} is writable` };
  } catch (e) {
    return { id: 'data_dir', status: 'fail', message: `${dir} is not writable (${(e as NodeJS.ErrnoException).code}); fix its owner or permissions` };
  }
}

export function diskSpace(dir: string): CheckOutcome {
  let target = dir;
  while (!existsSync(target)) target = path.dirname(target);
  const s = statfsSync(target);
  const free = s.bavail * s.bsize;
  const ratio = s.blocks > 0 ? s.bavail / s.blocks : 0;
  const data = { freeBytes: free, freeRatio: Math.round(ratio * 1000) / 1000 };
  const human = `${(free / 1024 ** 3).toFixed(1)} GiB free (${(ratio * 100).toFixed(0)}%)`;
  if (free < DISK.failBytes || ratio < DISK.failRatio) {
    return { id: 'disk', status: 'fail', message: `only ${human} on the data dir's filesystem; free space or move ENCLAVE_DATA_DIR`, data };
  }
  if (free < DISK.warnBytes || ratio < DISK.warnRatio) {
    return { id: 'disk', status: 'warn', message: `${human} on the data dir's filesystem; plan to free space`, data };
  }
  return { id: 'disk', status: 'ok', message: human, data };
}

/**
 * PostgreSQL (ENCLAVE_DATABASE_URL, issue 22): reachable, version ≥ 14, a primary (not a
 * standby), connections against max_connections, migrations, pool saturation (db_pool). Never
 * prints the URL's password.
 */
async function postgresChecks(config: Config): Promise<CheckOutcome[]> {
  let st: PgStatus;
  try {
    st = await postgresStatus({ url: config.databaseUrl!, ...(config.databaseCaFile ? { caFile: config.databaseCaFile } : {}), connectTimeoutMs: 5000 });
  } catch (e) {
    return [
      { id: 'database', status: 'fail', message: `PostgreSQL: ${(e as Error).message}` },
      { id: 'migrations', status: 'fail', message: 'not inspected: the database is not reachable' },
    ];
  }
  const { connections: c, migrations: m } = st;
  const data = { version: st.version, tls: st.tls, standby: st.inRecovery, connections: c };
  const busy = c.server >= c.max * 0.8;
  const database: CheckOutcome = st.inRecovery
    ? { id: 'database', status: 'fail', message: `PostgreSQL ${st.version} is a standby (read-only); point ENCLAVE_DATABASE_URL at the primary`, data }
    : busy
      ? { id: 'database', status: 'warn', message: `PostgreSQL ${st.version}: ${c.server} of ${c.max} connections in use; lower ENCLAVE_DATABASE_POOL_MAX or raise max_connections`, data }
      : { id: 'database', status: 'ok', message: `PostgreSQL ${st.version}${st.tls ? ', TLS' : ''}; ${c.database} connection(s) to this database, ${c.server} of ${c.max} on the server`, data };
  const migrations: CheckOutcome = m.unknown.length
    ? { id: 'migrations', status: 'fail', message: `database is newer than this Enclave (has ${m.unknown.at(-1)}); install a matching release` }
    : m.pending.length
      ? { id: 'migrations', status: 'fail', message: `${m.pending.length} pending migration(s); run: enclave db migrate`, data: { pending: m.pending } }
      : { id: 'migrations', status: 'ok', message: `all ${m.applied.length} migration(s) applied (head ${m.head})` };
  // Pool saturation of the Enclave processes connected to it (server/doctor/pool-check.ts).
  return [database, migrations, await poolCheck(config)];
}

async function databaseChecks(config: Config): Promise<{ outcomes: CheckOutcome[]; db?: Db }> {
  if (config.databaseUrl) return { outcomes: await postgresChecks(config) };
  const file = databaseFile(config.dataDir);
  if (!existsSync(file)) {
    const msg = `${file} does not exist; start the server or run: enclave migrate`;
    return {
      outcomes: [
        { id: 'database', status: 'fail', message: msg },
        { id: 'migrations', status: 'fail', message: 'no database; start the server once or run: enclave migrate' },
      ],
    };
  }
  const db = openDatabase(file);
  const outcomes: CheckOutcome[] = [];
  const quick = db.$client.pragma('quick_check', { simple: true }) as string;
  outcomes.push(
    quick === 'ok'
      ? { id: 'database', status: 'ok', message: 'PRAGMA quick_check: ok' }
      : { id: 'database', status: 'fail', message: `PRAGMA quick_check: ${quick}; restore the latest backup` },
  );
  const s = migrationStatus(db.$client);
  if (s.unknown.length) {
    outcomes.push({ id: 'migrations', status: 'fail', message: `database is newer than this Enclave (has ${s.unknown.at(-1)}); install a matching release` });
  } else if (s.pending.length) {
    outcomes.push({ id: 'migrations', status: 'fail', message: `${s.pending.length} pending migration(s); run: enclave migrate`, data: { pending: s.pending } });
  } else {
    outcomes.push({ id: 'migrations', status: 'ok', message: `all ${s.applied.length} migration(s) applied (head ${s.head})` });
  }
  return { outcomes, db };
}

export function redisTarget(config: Config): { url?: string; outcome?: CheckOutcome } {
  if (config.redisUrl) return { url: config.redisUrl };
  try {
    const state = JSON.parse(readFileSync(path.join(config.dataDir, 'redis', 'state.json'), 'utf8')) as { port: number };
    return { url: `redis://127.0.0.1:${state.port}/0` };
  } catch {
    const exe = findExecutable(config.redisServerBin);
    return {
      outcome: exe
        ? { id: 'redis', status: 'ok', message: `embedded mode: the server starts ${exe} (not running now)` }
        : { id: 'redis', status: 'fail', message: REDIS_MISSING },
    };
  }
}

async function redisCheck(config: Config): Promise<CheckOutcome> {
  const target = redisTarget(config);
  if (target.outcome) return target.outcome;
  const redis = new Redis(target.url!, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    let policy: string | undefined;
    let aof: string | undefined;
    try {
      policy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
      aof = ((await redis.config('GET', 'appendonly')) as string[])[1];
    } catch {
      return { id: 'redis', status: 'warn', message: 'reachable, but CONFIG is disabled: make sure maxmemory-policy is noeviction and appendonly is yes' };
    }
    if (policy !== 'noeviction') {
      return { id: 'redis', status: 'fail', message: `maxmemory-policy is ${policy}; set it to noeviction (queued jobs are lost under eviction)` };
    }
    if (aof !== 'yes') {
      return { id: 'redis', status: 'warn', message: 'appendonly is off; turn on AOF so queued jobs survive a Redis restart' };
    }
    return { id: 'redis', status: 'ok', message: 'reachable, maxmemory-policy noeviction, AOF on' };
  } catch (e) {
    return { id: 'redis', status: 'fail', message: `not reachable (${(e as Error).message}); check REDIS_URL and that Redis runs` };
  } finally {
    redis.disconnect();
  }
}

async function masterKeyCheck(config: Config, db: Db | undefined): Promise<CheckOutcome> {
  let box;
  try {
    box = resolveMasterKey(config, undefined, { create: false }).box;
  } catch (e) {
    return { id: 'master_key', status: 'fail', message: (e as Error).message };
  }
  if (!db) return { id: 'master_key', status: 'fail', message: 'no database to hold the self-test value; start the server once, or restore a backup' };
  const r = await new RuntimeSettings(sqliteStore(db), box, systemClock).checkSelfTest();
  return r.ok
    ? { id: 'master_key', status: 'ok', message: `master key ${box.currentKid} decrypts the self-test value` }
    : { id: 'master_key', status: 'fail', message: `master key ${box.currentKid}: ${r.reason}` };
}

type CheckFn = () => CheckOutcome | CheckOutcome[] | Promise<CheckOutcome | CheckOutcome[]>;

/**
 * The engine shared by `enclave doctor` and the installer's preflight: runs checks in order
 * into `checks`, reports a skipped one as `skipped(id)` says, and turns a check that throws
 * into a failed check (a broken check never hides the others).
 */
export function checkRunner<Id extends string>(skip: ReadonlySet<string>, skipped: (id: Id) => CheckOutcome) {
  const checks: CheckOutcome[] = [];
  const run = async (id: Id, fn: CheckFn): Promise<void> => {
    if (skip.has(id)) {
      checks.push(skipped(id));
      return;
    }
    try {
      const r = await fn();
      checks.push(...(Array.isArray(r) ? r : [r]));
    } catch (e) {
      checks.push({ id, status: 'fail', message: `check failed to run: ${(e as Error).message}` });
    }
  };
  return { checks, run };
}

/** Runs every check; never throws (a broken check is a failed check). */
export async function runDoctor(config: Config, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const skip = new Set(opts.skip ?? []);
  const now = opts.now ?? Date.now;
  const { checks, run } = checkRunner<DoctorCheckId>(skip, (id) => ({ id, status: 'ok', message: 'skipped (--skip)', skipped: true }));
  await run('node', nodeVersion);
  await run('data_dir', () => dataDirWritable(config));
  await run('disk', () => diskSpace(config.dataDir));
  const { outcomes, db } = await databaseChecks(config);
  try {
    await run('clock', () => clockCheck(db, now()));
    for (const o of outcomes) await run(o.id as DoctorCheckId, () => o);
    await run('redis', () => redisCheck(config));
    const redisDown = checks.find((c) => c.id === 'redis')?.status === 'fail';
    await run('queues', () =>
      redisDown
        ? { id: 'queues', status: 'warn', message: 'not inspected: Redis is not reachable; fix Redis first (see the redis check)' }
        : queueCheck(config, redisTarget(config).url, now()),
    );
    await run('master_key', () => masterKeyCheck(config, db));
    await run('backup_age', () => backupAgeCheck(db, now(), opts.backupMaxAgeHours ?? 26));
    if (opts.tlsCert) await run('tls', () => tlsCheck(opts.tlsCert!, config.publicUrl, now()));
    if (opts.providers) await run('providers', () => providersCheck(db));
  } finally {
    db?.$client.close();
  }
  return { status: worst(checks), checks };
}
