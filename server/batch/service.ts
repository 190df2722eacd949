import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Access } from '../access/authorize.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import { requireTenant, type RequestContext } from '../context.js';
import type { BatchRow, FileRow, JobsRepo } from '../db/repos/jobs.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { JobQueues } from '../jobs/queues.js';
import type { KeyService } from '../keys/service.js';
import { BATCH_ENDPOINTS, describeProblems, parseBatchFile, type BatchEndpoint } from './validate.js';

/**
 * Files and batches (the OpenAI Batch API), owned by the tenant of the key that made them.
 * Uploaded files are validated line by line and stored under `<dataDir>/files/<tenant>/`;
 * a batch is a row (the source of truth) plus a job on the `ai` lane whose id is the batch
 * id (enqueueing twice is harmless; the reconciler re-enqueues lost jobs).
 */
export const BATCH_JOB = 'batch';
export const COMPLETION_WINDOWS: Record<string, number> = { '24h': 24 * 3600_000 };
/** Output files are kept this long (uploaded files until deleted). */
export const OUTPUT_FILE_TTL_MS = 30 * 24 * 3600_000;

export class BatchService {
  constructor(
    private readonly d: { config: Config; repo: JobsRepo; queues: JobQueues; access: Access; keys: KeyService; clock: Clock; log: Logger },
  ) {}

  private now(): number {
    return this.d.clock.now();
  }

  // ---- files ----

  async upload(ctx: RequestContext, input: { purpose: string | undefined; filename: string | undefined; data: Buffer }): Promise<ReturnType<typeof serializeFile>> {
    await this.d.access.require(ctx, 'batches:write', {}, { type: 'file' });
    const tenant = requireTenant(ctx);
    if (input.purpose !== 'batch') {
      throw new AppError(400, 'invalid_purpose', `purpose must be "batch", "assistants" or "user_data" (got ${JSON.stringify(input.purpose ?? null)}).`, { param: 'purpose' });
    }
    if (input.data.length === 0) throw new AppError(400, 'invalid_file', 'The file is empty.', { param: 'file' });
    const text = input.data.toString('utf8');
    if (text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(input.data)) {
      throw new AppError(400, 'invalid_file', 'The file is not UTF-8 text (JSONL expected).', { param: 'file' });
    }
    const parsed = parseBatchFile(text, { maxLines: this.d.config.batchMaxLines });
    if (parsed.problems.length) {
      throw new AppError(400, 'invalid_file', `The batch file is invalid: ${describeProblems(parsed.problems)}.`, {
        param: 'file',
        details: { lines: parsed.problems },
      });
    }
    const now = this.now();
    const id = newId('file', now);
    const rel = path.join('files', tenant.id, `${id}.jsonl`);
    writeDurable(path.join(this.d.config.dataDir, rel), input.data);
    const filename = (input.filename ?? 'batch.jsonl').replace(/[\\/\r\n"]/g, '_').slice(0, 255) || 'batch.jsonl';
    const row = await this.d.repo.insertFile(ctx, {
      id,
      purpose: 'batch',
      filename,
      bytes: input.data.length,
      lineCount: parsed.lines.length,
      path: rel,
      keyId: ctx.principal?.keyId ?? null,
      createdAt: now,
      expiresAt: null,
    });
    return serializeFile(row);
  }

  private async fileRow(ctx: RequestContext, id: string): Promise<FileRow> {
    const f = await this.d.repo.file(ctx, id);
    if (!f) throw new AppError(404, 'file_not_found', `No file ${id}.`, { param: 'file_id' });
    return f;
  }

  /** Files are the Batch API's and knowledge's (purpose assistants/user_data, issue 20): either right reads and deletes them. */
  private async mayUseFiles(ctx: RequestContext): Promise<void> {
    if (this.d.access.authorize(ctx, 'files:write').allow) return;
    await this.d.access.require(ctx, 'batches:write');
  }

  async getFile(ctx: RequestContext, id: string): Promise<ReturnType<typeof serializeFile>> {
    await this.mayUseFiles(ctx);
    return serializeFile(await this.fileRow(ctx, id));
  }

  async listFiles(ctx: RequestContext, o: { after?: string; limit: number; purpose?: string }) {
    await this.mayUseFiles(ctx);
    const rows = await this.d.repo.listFiles(ctx, { ...o, limit: o.limit + 1 });
    const data = rows.slice(0, o.limit).map(serializeFile);
    return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: rows.length > o.limit };
  }

  /** The stored bytes (uploaded input, or a batch's output/error file). */
  async fileContent(ctx: RequestContext, id: string): Promise<{ data: Buffer; filename: string }> {
    await this.mayUseFiles(ctx);
    const f = await this.fileRow(ctx, id);
    try {
      return { data: readFileSync(path.join(this.d.config.dataDir, f.path)), filename: f.filename };
    } catch (e) {
      throw new AppError(410, 'file_gone', `The content of file ${id} is no longer stored.`, { cause: e });
    }
  }

  async deleteFile(ctx: RequestContext, id: string) {
    await this.mayUseFiles(ctx);
    const f = await this.fileRow(ctx, id);
    if (!(await this.d.repo.deleteFileIfUnused(ctx, id))) throw new AppError(409, 'file_in_use', `File ${id} is the input of a batch that has not finished; cancel it first.`);
    rmSync(path.join(this.d.config.dataDir, f.path), { force: true });
    return { id, object: 'file' as const, deleted: true };
  }

  // ---- batches ----

  async create(
    ctx: RequestContext,
    input: { input_file_id: string; endpoint: string; completion_window: string; metadata?: Record<string, string> | null },
    classification: string | undefined,
  ): Promise<ReturnType<typeof serializeBatch>> {
    await this.d.access.require(ctx, 'batches:write', {}, { type: 'batch' });
    const p = ctx.principal;
    if (p?.kind !== 'api_key' || !p.keyId) throw new AppError(403, 'batches_need_key', 'Batches are created with an API key (their lines run as that key).');
    if (!(BATCH_ENDPOINTS as readonly string[]).includes(input.endpoint)) {
      throw new AppError(400, 'invalid_endpoint', `endpoint must be one of ${BATCH_ENDPOINTS.join(', ')}.`, { param: 'endpoint' });
    }
    const windowMs = COMPLETION_WINDOWS[input.completion_window];
    if (!windowMs) throw new AppError(400, 'invalid_completion_window', 'completion_window must be "24h".', { param: 'completion_window' });
    const f = await this.d.repo.file(ctx, input.input_file_id);
    if (!f || f.purpose !== 'batch') throw new AppError(404, 'file_not_found', `No batch input file ${input.input_file_id}.`, { param: 'input_file_id' });
    const { lines } = await parseBatchFile(readFileSync(path.join(this.d.config.dataDir, f.path), 'utf8'), { maxLines: this.d.config.batchMaxLines });
    const wrong = lines.filter((l) => l.url !== input.endpoint);
    if (wrong.length) {
      throw new AppError(400, 'invalid_file', `Every line's url must be the batch endpoint ${input.endpoint}: ${wrong.slice(0, 5).map((l) => `line ${l.line} has ${l.url}`).join('; ')}.`, {
        param: 'input_file_id',
      });
    }
    const now = this.now();
    const id = newId('batch', now);
    const key = p.keyId;
    const row = await this.d.repo.insertBatch(ctx, {
      id,
      keyId: key,
      keyPrefix: (await this.d.keys.verifyStored(ctx, key)).prefix,
      userId: p.userId ?? null,
      endpoint: input.endpoint as BatchEndpoint,
      inputFileId: f.id,
      completionWindow: input.completion_window,
      status: 'validating',
      total: lines.length,
      metadata: input.metadata ? JSON.stringify(input.metadata) : null,
      classification: classification ?? null,
      createdAt: now,
      expiresAt: now + windowMs,
      enqueues: 1,
    });
    try {
      await this.enqueue(requireTenant(ctx).id, id);
    } catch (e) {
      // The row stays `validating`; the reconciler enqueues it when Redis is back.
      this.d.log.warn({ batchId: id, err: (e as Error).message }, 'batch created but not enqueued yet; the reconciler will');
    }
    return serializeBatch(row);
  }

  enqueue(tenantId: string, batchId: string) {
    return this.d.queues.add('ai', BATCH_JOB, { tenantId, batchId }, { jobId: batchId });
  }

  private async batchRow(ctx: RequestContext, id: string): Promise<BatchRow> {
    const b = await this.d.repo.batch(ctx, id);
    if (!b) throw new AppError(404, 'batch_not_found', `No batch ${id}.`, { param: 'batch_id' });
    return b;
  }

  async get(ctx: RequestContext, id: string): Promise<ReturnType<typeof serializeBatch>> {
    await this.d.access.require(ctx, 'batches:write');
    return serializeBatch(await this.batchRow(ctx, id));
  }

  async list(ctx: RequestContext, o: { after?: string; limit: number }) {
    await this.d.access.require(ctx, 'batches:write');
    const rows = await this.d.repo.listBatches(ctx, { ...o, limit: o.limit + 1 });
    const data = rows.slice(0, o.limit).map(serializeBatch);
    return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: rows.length > o.limit };
  }

  /** validating/in_progress → cancelling; the worker stops taking lines and ends it as cancelled. */
  async cancel(ctx: RequestContext, id: string): Promise<ReturnType<typeof serializeBatch>> {
    await this.d.access.require(ctx, 'batches:write', {}, { type: 'batch', id });
    const b = await this.batchRow(ctx, id);
    if (b.status === 'cancelling' || b.status === 'cancelled') return serializeBatch(b);
    if (b.status !== 'validating' && b.status !== 'in_progress') {
      throw new AppError(409, 'batch_not_cancellable', `Batch ${id} is ${b.status}; only validating or in_progress batches can be cancelled.`);
    }
    await this.d.repo.updateBatch(ctx, id, { status: 'cancelling', cancellingAt: this.now() }, ['validating', 'in_progress']);
    return serializeBatch(await this.batchRow(ctx, id));
  }
}

/** tmp + fsync + rename: a crash never leaves half a file under the final name. */
export function writeDurable(file: string, data: Buffer | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

const sec = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));

/** The one serializer for files: the OpenAI FileObject shape (no storage path). */
export function serializeFile(f: FileRow) {
  return {
    id: f.id,
    object: 'file' as const,
    bytes: f.bytes,
    created_at: sec(f.createdAt)!,
    expires_at: sec(f.expiresAt),
    filename: f.filename,
    purpose: f.purpose,
    status: 'processed' as const,
    status_details: null,
  };
}

/** The one serializer for batches: the OpenAI Batch shape (no key, no internal counters). */
export function serializeBatch(b: BatchRow) {
  const errors = b.errors ? (JSON.parse(b.errors) as { code: string; message: string; line?: number | null; param?: string | null }[]) : null;
  return {
    id: b.id,
    object: 'batch' as const,
    endpoint: b.endpoint,
    errors: errors ? { object: 'list' as const, data: errors.map((e) => ({ code: e.code, message: e.message, line: e.line ?? null, param: e.param ?? null })) } : null,
    input_file_id: b.inputFileId,
    completion_window: b.completionWindow,
    status: b.status,
    output_file_id: b.outputFileId,
    error_file_id: b.errorFileId,
    created_at: sec(b.createdAt)!,
    in_progress_at: sec(b.inProgressAt),
    expires_at: sec(b.expiresAt),
    finalizing_at: sec(b.finalizingAt),
    completed_at: sec(b.completedAt),
    failed_at: sec(b.failedAt),
    expired_at: sec(b.expiredAt),
    cancelling_at: sec(b.cancellingAt),
    cancelled_at: sec(b.cancelledAt),
    request_counts: { total: b.total, completed: b.completed, failed: b.failed },
    metadata: b.metadata ? (JSON.parse(b.metadata) as Record<string, string>) : null,
  };
}
