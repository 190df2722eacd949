#!/usr/bin/env node
import type { Services } from './app.js';
import { clusterRole, isClusterWorker } from './cluster-env.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/settings.js';
import type { RunningServer } from './http/server.js';
import type { JobWorker } from './jobs/worker.js';
import { createLogger } from './logger.js';
import type { WorkerMetricsServer } from './metrics/worker-server.js';
import { resolveMetricsToken } from './metrics/token.js';
import { DataDirBusyError, registerProcess } from './ops/process-registry.js';
import { APP_VERSION } from './paths.js';

type Role = 'api' | 'worker' | 'all';

function parseRole(argv: string[]): Role {
  const i = argv.indexOf('--role');
  const value = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--role='))?.slice(7);
  const role = value ?? 'all';
  if (role !== 'api' && role !== 'worker' && role !== 'all') {
    fail(`unknown --role ${role}: use api, worker or all`, 2);
  }
  return role as Role;
}

function fail(message: string, code: number): never {
  process.stderr.write(`enclave: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const started = performance.now();
  // A cluster worker's role comes from its supervisor (server/cluster.ts), not argv.
  const role = clusterRole() ?? parseRole(process.argv.slice(2));
  let config: Config;
  try {
    config = loadConfig();
    // ENCLAVE_METRICS_TOKEN_FILE (docker secret) read once here: /metrics on PORT and the worker's port.
    config.metricsToken = resolveMetricsToken(config);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, 2);
    throw e;
  }
  const log = createLogger(config.logLevel).child({ role });

  if (!isClusterWorker() && role !== 'worker' && config.apiWorkers > 1) {
    // ENCLAVE_API_WORKERS > 1: this process supervises; the workers serve. The supervisor
    // never loads the application itself (the imports below): it starts faster and stays small.
    const { supervise } = await import('./cluster.js');
    try {
      await supervise(config, log.child({ supervisor: true }), { apiWorkers: config.apiWorkers, withJobs: role === 'all', exit: (code) => process.exit(code) });
    } catch (e) {
      if (e instanceof ConfigError || e instanceof DataDirBusyError) fail(e.message, 2);
      fail(`start-up failed: ${(e as Error).message}`, 1);
    }
    return;
  }

  const [{ buildApp, createServices, StartupError }, { SchemaTooNewError }, { listen }, { startWorker }, { WorkerStartError }, { readBackupRecords, cachedBackupRecords }, { startWorkerMetricsServer }, { announceReady, joinMetricsAggregation }] =
    await Promise.all([
      import('./app.js'),
      import('./db/migrator.js'),
      import('./http/server.js'),
      import('./jobs/runtime.js'),
      import('./jobs/worker.js'),
      import('./ops/backup/records.js'),
      import('./metrics/worker-server.js'),
      import('./cluster.js'),
    ]);

  // A signal during start-up is kept and honoured once start-up is done (a clean stop: the
  // embedded redis-server and the process record go too). The default action — exit on the
  // spot — left an orphaned redis-server when SIGTERM came between listen and ready.
  let early: string | undefined;
  let onSignal = (signal: string): void => {
    if (early) process.exit(1); // a second signal: stop waiting for start-up
    early = signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // A cluster worker stops when its supervisor says so (SIGTERM): a terminal's Ctrl-C reaches
  // every process of the group, and obeying it too would make the supervisor's SIGTERM a
  // "second signal" that skips the drain.
  process.on('SIGINT', () => (isClusterWorker() ? log.debug('SIGINT: waiting for the supervisor') : onSignal('SIGINT')));

  // Registers this process under <dataDir>/run so a restore refuses while it runs (server/ops/process-registry.ts).
  let unregister: () => void;
  try {
    unregister = registerProcess(config.dataDir, role);
  } catch (e) {
    if (e instanceof DataDirBusyError) fail(e.message, 2);
    throw e;
  }

  let services: Services;
  try {
    services = await createServices(config, { log });
  } catch (e) {
    unregister();
    if (e instanceof ConfigError || e instanceof StartupError || e instanceof SchemaTooNewError) fail(e.message, 2);
    fail(`start-up failed: ${(e as Error).message}`, 1);
  }

  if (services.sqlite) {
    const sqlite = services.sqlite.$client;
    services.metrics.trackBackups(() => readBackupRecords(sqlite));
  } else services.metrics.trackBackups(cachedBackupRecords(services.store)); // PostgreSQL: the shared settings, read off the scrape path
  // In a cluster, /metrics on any worker answers for all of them (server/cluster.ts).
  joinMetricsAggregation(services.metrics.registry);

  let http: RunningServer | undefined;
  let worker: JobWorker | undefined;
  let workerMetrics: WorkerMetricsServer | undefined;
  if (role === 'api' || role === 'all') {
    try {
      http = await listen(buildApp(services), config.port, config.host);
    } catch (e) {
      await services.close();
      fail(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}; set PORT to a free port`, 1);
    }
  }
  if (role === 'worker' || role === 'all') {
    // BullMQ lanes, schedules and the heartbeat file the compose health check reads (server/jobs).
    try {
      worker = await startWorker(services);
      // The worker's own /metrics (issue 9), only in the worker role: `all` serves the same registry on PORT.
      if (role === 'worker' && config.workerMetricsPort !== undefined && !isClusterWorker()) {
        workerMetrics = await startWorkerMetricsServer({ metrics: services.metrics, port: config.workerMetricsPort, host: config.host, token: config.metricsToken, public: config.metricsPublic, trustProxy: config.trustProxy });
      }
    } catch (e) {
      await worker?.close().catch(() => undefined);
      await http?.close(1000);
      await services.close();
      unregister();
      fail(e instanceof WorkerStartError ? e.message : `worker start-up failed: ${(e as Error).message}`, e instanceof WorkerStartError ? 2 : 1);
    }
  }

  announceReady(http?.port);
  log.info(
    { version: APP_VERSION, port: http?.port, metricsPort: workerMetrics?.port, host: config.host, startupMs: Math.round(performance.now() - started) },
    'enclave ready',
  );

  let shuttingDown = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    log.info({ signal, inFlight: http?.inFlight() ?? 0 }, 'shutting down');
    services.readiness.markDraining();
    const result = await http?.close(config.shutdownTimeoutMs);
    // Graceful: running batches finish their in-flight lines and go back to the queue.
    await worker?.close().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'worker close failed'));
    await workerMetrics?.close();
    if (result?.forced) log.warn('shutdown deadline reached: closed remaining connections');
    await services.close();
    unregister();
    log.info('stopped');
    process.exit(0);
  };
  onSignal = (signal) => void shutdown(signal);
  if (early) void shutdown(early);
}

main().catch((e: unknown) => fail(`start-up failed: ${(e as Error).stack ?? String(e)}`, 1));
