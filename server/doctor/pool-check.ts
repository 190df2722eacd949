import type { Config } from '../config/settings.js';
import { openPostgres } from '../db/pg/connection.js';
import type { CheckOutcome } from './checks.js';

/**
 * `db_pool` (PostgreSQL only, issue 22): are Enclave processes using all the connections their
 * pool may open? Each server and worker process connects as `enclave <pid>`
 * (application_name), with at most ENCLAVE_DATABASE_POOL_MAX connections. A process with every
 * one of them busy (running a statement or inside a transaction) at the moment of the check has
 * queries waiting inside Node for a connection. A snapshot: the Prometheus alert
 * EnclaveDbPoolSaturated (enclave_db_pool_waiting_clients, the acquire-wait histogram) watches
 * it over time. The database check already compares the server's total with max_connections.
 */
export interface PoolUse {
  readonly process: string;
  readonly connections: number;
  readonly busy: number;
}

const ENCLAVE_PROCESS = /^enclave \d+$/;

export function judgePools(use: readonly PoolUse[], poolMax: number): CheckOutcome {
  const data = { pool_max: poolMax, processes: use };
  if (!use.length) return { id: 'db_pool', status: 'ok', message: 'no Enclave server or worker is connected to this database (nothing to measure)', data };
  const full = use.filter((u) => u.busy >= poolMax);
  if (full.length) {
    return {
      id: 'db_pool',
      status: 'warn',
      message: `${full.map((u) => u.process).join(', ')}: all ${poolMax} pool connections busy, further queries wait for one; raise ENCLAVE_DATABASE_POOL_MAX within max_connections (docs/postgres.md, pool sizing) or add replicas, and watch enclave_db_pool_waiting_clients`,
      data,
    };
  }
  const most = Math.max(...use.map((u) => u.busy));
  return { id: 'db_pool', status: 'ok', message: `${use.length} Enclave process(es) connected; at most ${most} of ${poolMax} pool connections busy in one process`, data };
}

export async function poolCheck(config: Pick<Config, 'databaseUrl' | 'databaseCaFile' | 'databasePoolMax'>): Promise<CheckOutcome> {
  const db = openPostgres({ url: config.databaseUrl!, caFile: config.databaseCaFile, poolMax: 1, applicationName: 'enclave doctor', connectTimeoutMs: 5000 });
  try {
    const r = await db.$client.query<{ app: string; n: string; busy: string }>(
      `SELECT application_name AS app, count(*) AS n, count(*) FILTER (WHERE state <> 'idle') AS busy
         FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
        GROUP BY application_name`,
    );
    const use = r.rows.filter((x) => ENCLAVE_PROCESS.test(x.app)).map((x) => ({ process: x.app, connections: Number(x.n), busy: Number(x.busy) }));
    return judgePools(use, config.databasePoolMax);
  } catch (e) {
    return { id: 'db_pool', status: 'warn', message: `not inspected: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    await db.$client.end().catch(() => undefined);
  }
}
