import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { systemClock } from '../../server/clock.js';
import type { Jobs } from '../../server/jobs/index.js';
import { isLane, LANES, type Lane } from '../../server/jobs/lanes.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity, type CliIdentity } from './admin.js';

/**
 * `enclave jobs`: the failed-jobs view of the lanes (same operations as the admin API's
 * /admin/api/jobs). Talks to Redis (REDIS_URL, or the embedded redis-server of the data
 * dir) and to the database (a discarded batch job fails its batch).
 */
function redisUrlFor(dataDir: string, configured: string | undefined): string {
  if (configured) return configured;
  const state = path.join(dataDir, 'redis', 'state.json');
  if (existsSync(state)) {
    try {
      const { port } = JSON.parse(readFileSync(state, 'utf8')) as { port: number };
      return `redis://127.0.0.1:${port}/0`;
    } catch {
      /* fall through */
    }
  }
  throw new CliError('no Redis to talk to: set REDIS_URL, or start Enclave (embedded mode) on this data dir first', 2);
}

async function withJobs<T>(fn: (j: Jobs, c: CliIdentity) => Promise<T>): Promise<T> {
  const config = cliConfig();
  // BullMQ and ioredis load only for a command that runs (not for --help or a usage error).
  const { createJobs } = await import('../../server/jobs/index.js');
  return withIdentity(async (c) => {
    const log = pino({ level: 'silent' });
    const jobs = createJobs({ config, redisUrl: redisUrlFor(config.dataDir, config.redisUrl), store: c.store, tenantStore: c.tenantStore, access: c.identity.access, keys: c.identity.keys, clock: systemClock, log });
    try {
      return await fn(jobs, c);
    } finally {
      await jobs.close();
    }
  });
}

function lane(v: string): Lane {
  if (!isLane(v)) throw new CliError(`unknown queue ${v}: use ${LANES.join(', ')}`, 2);
  return v;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('background jobs: queue counts and failed jobs (retry, discard)');
  jobs
    .command('counts')
    .description('jobs per queue and state')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withJobs(async (j, c) => {
        await c.identity.access.require(c.ctx, 'platform:jobs:read');
        const counts = await j.queues.counts();
        if (opts.json) return printJson(counts);
        printTable(
          LANES.map((q) => ({ queue: q, ...counts[q] })),
          ['queue', 'waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'],
        );
      }),
    );
  jobs
    .command('list')
    .description('failed jobs, newest first')
    .option('--queue <queue>', `only this queue (${LANES.join(', ')})`)
    .option('--limit <n>', 'at most this many', '50')
    .option('--json', 'print JSON')
    .action((opts: { queue?: string; limit: string; json?: boolean }) =>
      withJobs(async (j, c) => {
        await c.identity.access.require(c.ctx, 'platform:jobs:read');
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new CliError('--limit must be a positive whole number', 2);
        const rows = await j.queues.listFailed({ limit, ...(opts.queue ? { queue: lane(opts.queue) } : {}) });
        if (opts.json) return printJson(rows);
        if (!rows.length) return void process.stdout.write('no failed jobs\n');
        printTable(
          rows.map((r) => ({ ...r, failed_at: r.failed_at ? new Date(r.failed_at).toISOString() : '', failed_reason: r.failed_reason.slice(0, 80) })),
          ['queue', 'id', 'name', 'tenant_id', 'attempts_made', 'failed_at', 'failed_reason'],
        );
      }),
    );
  for (const op of ['retry', 'discard'] as const) {
    jobs
      .command(`${op} <queue> <id>`)
      .description(op === 'retry' ? 'move a failed job back to waiting (attempts start again)' : 'remove a failed job for good (a batch job fails its batch)')
      .option('--json', 'print JSON')
      .action((queue: string, id: string, opts: { json?: boolean }) =>
        withJobs(async (j, c) => {
          await c.identity.access.require(c.ctx, 'platform:jobs:write');
          const q = lane(queue);
          const job = op === 'retry' ? await j.queues.retry(q, id) : await j.queues.discard(q, id);
          await c.identity.audit.record(c.ctx, { action: `jobs.${op}`, tenantId: job.tenant_id, target: { type: 'job', id: `${q}:${id}` }, details: { name: job.name } });
          if (opts.json) return printJson(job);
          process.stdout.write(`${op === 'retry' ? 'retried' : 'discarded'} ${q} job ${id} (${job.name})\n`);
        }),
      );
  }
}
