import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import { createContext, type RequestContext } from '../context.js';
import type { BatchRow, JobsRepo } from '../db/repos/jobs.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Identity } from '../identity/index.js';
import { applyKey } from '../identity/http.js';
import type { JobContext } from '../jobs/worker.js';
import type { JobData } from '../jobs/queues.js';
import type { LineExecutor, UsageInsert } from './gateway-call.js';
import { OUTPUT_FILE_TTL_MS, writeDurable } from './service.js';
import { parseBatchFile, type BatchLine } from './validate.js';

/** Lines of one batch in flight at once (the tenant cap limits batches, this their lines). */
const LINE_CONCURRENCY = 4;
/** How often a running batch re-reads its row (cancel). */
const STATUS_POLL_MS = 500;

const INTERRUPTED = JSON.stringify({
  code: 'batch_line_interrupted',
  message: 'The worker stopped while this request was in flight; it was not run again, because it may already have reached the model.',
});

/**
 * The `batch` job on the ai lane: runs the lines of one batch that have not started yet,
 * each as the key that created the batch, through the gateway pipeline; then writes the
 * output and error files. Safe to run again at any point (crash, stall, retry, redeploy):
 * a line's progress row is written before its call and its result (with its usage record)
 * in one transaction, so no line runs twice and no usage is recorded twice.
 */
export function batchProcessor(d: {
  config: Config;
  repo: JobsRepo;
  identity: Identity;
  execute: LineExecutor;
  clock: Clock;
  /** After a line's usage record is committed (the gateway's monthly token count). */
  afterUsage?: (u: UsageInsert) => void;
}) {
  return async (job: Job<JobData>, jc: JobContext): Promise<{ status: string }> => {
    const batchId = String(job.data.batchId);
    const tenant = await d.repo.batchTenant(batchId);
    if (!tenant) return { status: 'gone' };
    const ctx = createContext({ requestId: `job_${batchId}`, log: jc.log, clock: d.clock, tenant });
    let b = (await d.repo.batch(ctx, batchId))!;
    const now = (): number => d.clock.now();

    if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return { status: b.status };
    const interrupted = await d.repo.interruptRunning(ctx, batchId, INTERRUPTED, now());
    if (interrupted) {
      jc.log.warn({ batchId, lines: interrupted }, 'batch: lines in flight at a crash marked failed (not re-run)');
      b = (await d.repo.batch(ctx, batchId))!;
    }
    if (b.status === 'cancelling') return finalize(d, ctx, b, 'cancelled');
    if (now() >= b.expiresAt) return finalize(d, ctx, b, 'expired');
    if (b.status === 'finalizing') return finalize(d, ctx, b, 'completed');
    if (b.status === 'validating') {
      await d.repo.updateBatch(ctx, batchId, { status: 'in_progress', inProgressAt: now() }, ['validating']);
    }
    // The key the batch runs as, re-checked now (revoked, expired, owner gone, tenant suspended).
    let keyCtx: () => RequestContext;
    try {
      const key = await d.identity.keys.verifyStored(ctx, b.keyId);
      keyCtx = () => applyKey(createContext({ requestId: newId('req', now()), log: jc.log, clock: d.clock }), key);
    } catch (e) {
      const err = e instanceof AppError ? e : new AppError(500, 'internal_error', (e as Error).message);
      return finalize(d, ctx, (await d.repo.batch(ctx, batchId))!, 'failed', [{ code: err.code, message: `The batch's API key can no longer be used: ${err.message}` }]);
    }

    const file = await d.repo.file(ctx, b.inputFileId);
    if (!file) return finalize(d, ctx, b, 'failed', [{ code: 'file_not_found', message: `The input file ${b.inputFileId} was deleted.` }]);
    const { lines } = parseBatchFile(readFileSync(path.join(d.config.dataDir, file.path), 'utf8'), { maxLines: Number.MAX_SAFE_INTEGER });
    const started = await d.repo.startedLines(ctx, batchId);
    const pending = lines.filter((l) => !started.has(l.line));

    // Cancel and expiry are noticed between lines; in-flight lines are aborted on cancel.
    const stop = new AbortController();
    // The poll aborts lines in flight; each lane also re-reads the row before it starts a line
    // (one indexed read), so no line starts after a cancel has committed, however fast lines run.
    const checkStopped = async (): Promise<boolean> => {
      const cur = await d.repo.batch(ctx, batchId);
      if (!cur || cur.status === 'cancelling' || now() >= cur.expiresAt) stop.abort(new Error('batch stopped'));
      return stop.signal.aborted;
    };
    // A failed read is logged; the lanes read again before each line.
    const poll = setInterval(() => void checkStopped().catch((e: Error) => jc.log.warn({ batchId, err: e.message }, 'batch: status poll failed')), STATUS_POLL_MS);
    poll.unref();
    const lineSignal = AbortSignal.any([stop.signal, jc.signal]);

    let next = 0;
    const runOne = async (line: BatchLine): Promise<void> => {
      const lctx = keyCtx();
      await d.repo.startLine(ctx, batchId, line.line, line.customId, lctx.requestId, now());
      let out;
      try {
        out = await d.execute(lctx, line, { signal: lineSignal, workflow: batchId, classification: b.classification });
      } catch (e) {
        out = {
          statusCode: 500,
          body: { error: { message: 'Internal error while running this request.', type: 'server_error', code: 'internal_error', param: null } },
          usage: undefined,
        };
        jc.log.error({ batchId, line: line.line, err: (e as Error).message }, 'batch: line failed unexpectedly');
      }
      const ok = out.statusCode >= 200 && out.statusCode < 300;
      await d.repo.finishLine(ctx, batchId, line.line, { status: ok ? 'completed' : 'failed', statusCode: out.statusCode, body: JSON.stringify(out.body), error: null, now: now() }, out.usage);
      if (out.usage) d.afterUsage?.(out.usage);
    };
    const lane = async (): Promise<void> => {
      while (next < pending.length && !lineSignal.aborted && !(await checkStopped())) {
        const line = pending[next++]!;
        await runOne(line);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(LINE_CONCURRENCY, pending.length) }, lane));
    } finally {
      clearInterval(poll);
    }

    b = (await d.repo.batch(ctx, batchId))!;
    if (b.status === 'cancelling') return finalize(d, ctx, b, 'cancelled');
    if (now() >= b.expiresAt && next < pending.length) return finalize(d, ctx, b, 'expired');
    if (jc.shutdown.aborted && next < pending.length) return jc.defer(0); // resumes on another (or the next) worker
    if (jc.signal.aborted && next < pending.length) throw new Error('job_timeout: batch lines left');
    return finalize(d, ctx, b, 'completed');
  };
}

type Final = 'completed' | 'failed' | 'expired' | 'cancelled';

/**
 * Writes the output file (2xx responses) and the error file (other responses, and lines
 * that never ran when the batch expired, was cancelled or failed), then the final status.
 * Idempotent: a crash here leaves the batch `finalizing`, and the next run does it again.
 */
async function finalize(
  d: { config: Config; repo: JobsRepo; clock: Clock },
  ctx: RequestContext,
  b: BatchRow,
  status: Final,
  errors?: { code: string; message: string }[],
): Promise<{ status: string }> {
  const now = d.clock.now();
  await d.repo.updateBatch(ctx, b.id, { status: status === 'completed' ? 'finalizing' : b.status, finalizingAt: b.finalizingAt ?? now });
  const done = await d.repo.finishedLines(ctx, b.id);
  const out: string[] = [];
  const err: string[] = [];
  for (const l of done) {
    const id = `batch_req_${b.id.slice(6)}_${l.line}`;
    if (l.error !== null && l.body === null) {
      err.push(JSON.stringify({ id, custom_id: l.customId, response: null, error: JSON.parse(l.error) }));
    } else if (l.body !== null) {
      const entry = JSON.stringify({ id, custom_id: l.customId, response: { status_code: l.statusCode, request_id: l.requestId, body: JSON.parse(l.body) }, error: null });
      (l.status === 'completed' ? out : err).push(entry);
    }
  }
  let unrun = 0;
  if (status !== 'completed') {
    // Lines that never started: say why in the error file (OpenAI: expired requests are listed there).
    const file = await d.repo.file(ctx, b.inputFileId);
    const startedSet = new Set(done.map((l) => l.line));
    if (file) {
      let lines: BatchLine[] = [];
      try {
        lines = parseBatchFile(readFileSync(path.join(d.config.dataDir, file.path), 'utf8'), { maxLines: Number.MAX_SAFE_INTEGER }).lines;
      } catch {
        /* input gone: nothing to list */
      }
      const reason =
        status === 'expired'
          ? { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' }
          : status === 'cancelled'
            ? { code: 'batch_cancelled', message: 'The batch was cancelled before this request ran.' }
            : { code: 'batch_failed', message: 'The batch failed before this request ran.' };
      for (const l of lines) {
        if (startedSet.has(l.line)) continue;
        unrun++;
        err.push(JSON.stringify({ id: `batch_req_${b.id.slice(6)}_${l.line}`, custom_id: l.customId, response: null, error: reason }));
      }
    }
  }
  const outputFileId = out.length ? await writeOutput(d, ctx, b, 'output', out, now) : null;
  const errorFileId = err.length ? await writeOutput(d, ctx, b, 'errors', err, now) : null;
  const stamp: Record<Final, string> = { completed: 'completedAt', failed: 'failedAt', expired: 'expiredAt', cancelled: 'cancelledAt' };
  await d.repo.updateBatch(ctx, b.id, {
    status,
    outputFileId,
    errorFileId,
    [stamp[status]]: now,
    ...(errors ? { errors: JSON.stringify(errors) } : {}),
    ...(status === 'expired' || status === 'cancelled' || status === 'failed' ? { failed: b.failed + unrun } : {}),
  });
  // The rows' copies of the bodies are no longer needed once the files exist.
  await d.repo.clearLineBodies(ctx, b.id);
  return { status };
}

async function writeOutput(d: { config: Config; repo: JobsRepo }, ctx: RequestContext, b: BatchRow, kind: 'output' | 'errors', lines: string[], now: number): Promise<string> {
  // Deterministic ids: finalizing twice overwrites the same files instead of adding new ones.
  const id = `file_${b.id.slice(6)}${kind === 'output' ? 'o' : 'e'}`;
  const rel = path.join('files', ctx.tenant!.id, `${id}.jsonl`);
  const data = lines.join('\n') + '\n';
  writeDurable(path.join(d.config.dataDir, rel), data);
  if (!(await d.repo.file(ctx, id))) {
    await d.repo.insertFile(ctx, {
      id,
      purpose: 'batch_output',
      filename: `${b.id}_${kind === 'output' ? 'output' : 'error'}.jsonl`,
      bytes: Buffer.byteLength(data),
      lineCount: lines.length,
      path: rel,
      keyId: b.keyId,
      createdAt: now,
      expiresAt: now + OUTPUT_FILE_TTL_MS,
    });
  }
  return id;
}

/** Ends an open batch as failed (reconciler gave up, or an admin discarded its job); writes what it has. */
export async function failBatch(d: { config: Config; repo: JobsRepo; clock: Clock }, ctx: RequestContext, batchId: string, code: string, message: string): Promise<void> {
  const b = await d.repo.batch(ctx, batchId);
  if (!b || ['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return;
  await d.repo.interruptRunning(ctx, batchId, INTERRUPTED, d.clock.now());
  await finalize(d, ctx, (await d.repo.batch(ctx, batchId))!, 'failed', [{ code, message }]);
}
