import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * PostgreSQL pool saturation (issue 22): how many of the process's connections are open and
 * idle, how many queries wait for one, and how long getting one takes. A pool at its limit
 * with clients waiting means this replica's database work queues inside Node before it
 * reaches PostgreSQL (raise ENCLAVE_DATABASE_POOL_MAX within max_connections, or add
 * replicas); docs/postgres.md "Pool sizing per replica" and the EnclaveDbPoolSaturated alert
 * (compose/prometheus/rules/enclave.yml). Only on PostgreSQL: SQLite has no pool.
 *
 * Gauges are read at scrape time from the pool's own counters (no bookkeeping per query). The
 * acquire histogram times every checkout: node-postgres' Pool.query checks out through
 * `this.connect(cb)` and transactions through `connect()`, so wrapping the instance's
 * `connect` sees both.
 */

/** Seconds to get a connection: ~0 from the idle list, a connect (~ms), or a wait for a busy pool (up to the connect timeout). */
const ACQUIRE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

export function instrumentPool(pool: pg.Pool, registry: Registry, max: number): void {
  // Several api processes (server/cluster.ts) each have a pool: the aggregated /metrics sums them.
  new Gauge({
    aggregator: 'sum',
    name: 'enclave_db_pool_connections',
    help: 'PostgreSQL connections this process has open (busy and idle).',
    registers: [registry],
    collect() {
      this.set(pool.totalCount);
    },
  });
  new Gauge({
    aggregator: 'sum',
    name: 'enclave_db_pool_idle_connections',
    help: 'PostgreSQL connections open and idle in this process.',
    registers: [registry],
    collect() {
      this.set(pool.idleCount);
    },
  });
  new Gauge({
    aggregator: 'sum',
    name: 'enclave_db_pool_waiting_clients',
    help: 'Queries and transactions waiting for a PostgreSQL connection (the pool is at its limit).',
    registers: [registry],
    collect() {
      this.set(pool.waitingCount);
    },
  });
  new Gauge({
    aggregator: 'sum',
    name: 'enclave_db_pool_max_connections',
    help: 'The pool limit (ENCLAVE_DATABASE_POOL_MAX) of this process.',
    registers: [registry],
  }).set(max);
  const acquire = new Histogram({
    name: 'enclave_db_pool_acquire_seconds',
    help: 'Time to get a PostgreSQL connection from the pool (idle, new, or after waiting for one).',
    buckets: ACQUIRE_BUCKETS,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'enclave_db_pool_acquire_errors_total',
    help: 'Checkouts that failed (connect error, or no connection within the connect timeout).',
    registers: [registry],
  });

  const connect = pool.connect.bind(pool) as (cb?: ConnectCallback) => Promise<pg.PoolClient> | undefined;
  const wrapped = (cb?: ConnectCallback): Promise<pg.PoolClient> | undefined => {
    const t0 = performance.now();
    const seen = (err: unknown): void => {
      acquire.observe((performance.now() - t0) / 1000);
      if (err) failures.inc();
    };
    if (cb) {
      return connect((err, client, done) => {
        seen(err);
        cb(err, client, done);
      });
    }
    return connect()!.then(
      (client) => {
        seen(undefined);
        return client;
      },
      (e: unknown) => {
        seen(e);
        throw e;
      },
    );
  };
  pool.connect = wrapped as typeof pool.connect;
}
