import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import { resolveMasterKey } from './config/master-key.js';
import type { Config } from './config/settings.js';
import { startEmbeddedRedis, type EmbeddedRedis } from './redis/embedded.js';
import { forgetProcess, registerProcess } from './ops/process-registry.js';
import { API_WORKERS_ENV, CLUSTER_ROLE_ENV } from './cluster-env.js';

/**
 * Several api processes behind one port (ENCLAVE_API_WORKERS > 1), with node:cluster.
 *
 * Why: one Node process uses one core for JavaScript, and the gateway's throughput target
 * (DESIGN.md §8) needs both cores of a 2-core box. The primary is a supervisor only — it
 * takes no requests: it creates the master key (embedded mode) and starts the embedded
 * redis-server once, forks the workers (each an ordinary `--role api` process: its own
 * services, caches, breakers and usage writer, all of which already work across processes —
 * key and catalogue changes travel through the database's revisions, limits through Redis),
 * restarts a worker that dies, answers /metrics aggregation, and on SIGTERM drains them all.
 * Connections are spread round-robin by the primary; a keep-alive connection stays with
 * one worker.
 *
 * Per-worker state, by design: circuit breakers (each worker learns on its own, as
 * LiteLLM's per-instance cooldowns do), a deployment's `max_concurrency` (divided between
 * the workers: server/cluster-env.ts workerShare), and the in-memory fallback counters used while Redis
 * is down.
 */

const METRICS_REQ = 'enclave:metrics-req';
const METRICS_RES = 'enclave:metrics-res';
const READY = 'enclave:ready';

interface Message {
  readonly type?: string;
  readonly id?: number;
  readonly text?: string;
  readonly error?: string;
  readonly port?: number;
}

/** Tells the primary this worker listens (it logs one "ready" line for the group). */
export function announceReady(port: number | undefined): void {
  if (cluster.isWorker) process.send?.({ type: READY, port } satisfies Message);
}

let metricsSeq = 0;
let aggregatorInstalled = false;

/**
 * The whole cluster's metrics for a scrape that reached this worker (after
 * {@link joinMetricsAggregation}): the primary asks every
 * worker (prom-client's AggregatorRegistry) and answers with the aggregated text.
 */
export function clusterMetrics(): Promise<string> {
  const id = ++metricsSeq;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the cluster primary did not answer the metrics request'));
    }, 6000);
    const onMessage = (m: Message): void => {
      if (m?.type !== METRICS_RES || m.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m.text ?? '');
    };
    process.on('message', onMessage);
    process.send!({ type: METRICS_REQ, id } satisfies Message);
  });
}

/** In a cluster worker, installs the aggregation listener early (before the first scrape reaches another worker). */
export function joinMetricsAggregation(registry: import('prom-client').Registry): void {
  if (!cluster.isWorker || aggregatorInstalled) return;
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  aggregatorInstalled = true;
}

/**
 * The supervisor. `roles` are the workers to run: `api` × workers, plus one `worker` (jobs)
 * for `--role all`. Resolves never: it exits the process when the group stops.
 */
export async function supervise(config: Config, log: Logger, opts: { apiWorkers: number; withJobs: boolean; exit: (code: number) => never }): Promise<void> {
  const unregister = registerProcess(config.dataDir, 'supervisor');
  // Created once here, so the workers starting together read the same key (embedded mode).
  resolveMasterKey(config, log);
  let redis: EmbeddedRedis | undefined;
  const env: Record<string, string> = {};
  if (!config.redisUrl) {
    redis = await startEmbeddedRedis({ bin: config.redisServerBin, dataDir: config.dataDir, log });
    // The workers reuse it and never stop it: it lives as long as the supervisor.
    env.REDIS_URL = redis.url;
  }
  const aggregator = new AggregatorRegistry();
  const roles: ('api' | 'worker')[] = [...Array<'api'>(opts.apiWorkers).fill('api'), ...(opts.withJobs ? (['worker'] as const) : [])];
  const roleOf = new Map<Worker, 'api' | 'worker'>();
  let readyCount = 0;
  let stopping = false;
  const started = performance.now();
  const failures = new Map<number, number>();

  const fork = (role: 'api' | 'worker', slot: number): void => {
    const w = cluster.fork({ ...env, [CLUSTER_ROLE_ENV]: role, ...(role === 'api' ? { [API_WORKERS_ENV]: String(opts.apiWorkers) } : {}) });
    roleOf.set(w, role);
    let ready = false;
    const bornAt = Date.now();
    w.on('message', (m: Message) => {
      if (m?.type === READY) {
        ready = true;
        if (++readyCount === roles.length) {
          log.info({ port: m.port, apiWorkers: opts.apiWorkers, jobs: opts.withJobs, startupMs: Math.round(performance.now() - started) }, 'enclave ready (cluster)');
        }
      } else if (m?.type === METRICS_REQ && typeof m.id === 'number') {
        aggregator.clusterMetrics().then(
          (text) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, text } satisfies Message),
          (e: unknown) => w.isConnected() && w.send({ type: METRICS_RES, id: m.id, error: (e as Error).message } satisfies Message),
        );
      }
    });
    const pid = w.process.pid;
    w.on('exit', (code, signal) => {
      roleOf.delete(w);
      if (pid !== undefined) forgetProcess(config.dataDir, role, pid);
      if (stopping) return;
      // A worker that fails before it was ever ready with a configuration error (exit 2) will
      // fail again: stop the group with the worker's message already on stderr.
      if (!ready && code === 2) {
        log.error({ role, code }, 'worker could not start; stopping');
        void stop('worker start-up failure', 2);
        return;
      }
      const n = (Date.now() - bornAt > 60_000 ? 0 : (failures.get(slot) ?? 0)) + 1;
      failures.set(slot, n);
      const delay = Math.min(30_000, 500 * 2 ** (n - 1));
      log.error({ role, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting');
      setTimeout(() => {
        if (!stopping) fork(role, slot);
      }, delay).unref();
    });
  };

  const stop = async (why: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ why, workers: roleOf.size }, 'stopping workers');
    const exits = [...roleOf.keys()].map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    // Workers drain on SIGTERM only (they ignore a terminal's SIGINT, which reaches the whole group).
    for (const w of roleOf.keys()) w.process.kill('SIGTERM');
    const deadline = setTimeout(() => {
      for (const w of roleOf.keys()) w.process.kill('SIGKILL');
    }, config.shutdownTimeoutMs + 5000);
    await Promise.all(exits);
    clearTimeout(deadline);
    await redis?.stop().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'embedded redis-server stop failed'));
    unregister();
    log.info('stopped');
    opts.exit(code);
  };
  let signals = 0;
  const onSignal = (sig: 'SIGTERM' | 'SIGINT'): void => {
    if (++signals > 1) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      for (const w of roleOf.keys()) w.process.kill('SIGKILL');
      opts.exit(1);
    }
    void stop(sig, 0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  roles.forEach((role, slot) => fork(role, slot));
}
