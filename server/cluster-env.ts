import cluster from 'node:cluster';

/**
 * What a process learns about its place in an api cluster (server/cluster.ts) — kept apart
 * from the supervisor so modules such as the routing catalogue can ask without importing it.
 * The variables are internal (no `ENCLAVE_` prefix: that namespace is the settings').
 */
export const CLUSTER_ROLE_ENV = '_ENCLAVE_CLUSTER_ROLE';
export const API_WORKERS_ENV = '_ENCLAVE_API_WORKERS';

/** Whether this process is a worker of a cluster (ENCLAVE_API_WORKERS > 1). */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** The role the supervisor gave this worker, if it is one. */
export function clusterRole(): 'api' | 'worker' | undefined {
  const r = cluster.isWorker ? process.env[CLUSTER_ROLE_ENV] : undefined;
  return r === 'api' || r === 'worker' ? r : undefined;
}

/** This process's share of a per-deployment limit: 10 over 2 api workers is 5 each (never below 1). */
export function workerShare(limit: number): number {
  const n = Number(process.env[API_WORKERS_ENV] ?? 1);
  return Number.isInteger(n) && n > 1 ? Math.max(1, Math.floor(limit / n)) : limit;
}
