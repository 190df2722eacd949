import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import { createContext, type Classification, type RequestContext } from '../context.js';
import type { IdentityRepo } from '../db/repos/identity.js';
import type { JobsRepo } from '../db/repos/jobs.js';
import { chunkId, type KnowledgeRepo, type StoreFileRow } from '../db/repos/knowledge.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Identity } from '../identity/index.js';
import { applyKey } from '../identity/http.js';
import type { JobData } from '../jobs/queues.js';
import type { JobContext } from '../jobs/worker.js';
import { DEFAULT_CHUNKING, chunkSections, fromTokens } from './chunk.js';
import { EMBED_BATCH, toBlob, type Embedder } from './embed.js';
import { detectKind, parseDocument, ParseError } from './parse.js';
import { MAX_PAGES } from './service.js';

/**
 * The `knowledge_ingest` job on the ingest lane: parse → chunk → embed (through the gateway,
 * as the principal that attached the file, at the file's classification) → store chunks with
 * their vectors → mark the file completed. Until then nothing of the file is searchable
 * (search reads completed files only), so a failure never leaves half a file findable.
 *
 * Safe to run again at any point (worker killed, stalled, retried): chunk ids are
 * deterministic (store, file, index) and inserted-or-ignored, and chunks already stored are
 * not embedded again — a resumed ingestion adds only what is missing, never a duplicate.
 *
 * Failures: a file that cannot be parsed ends `failed` (parse_failed, with the reason) at
 * once; an embedding call that fails is retried EMBED_ATTEMPTS times with backoff (the gateway
 * itself retries and falls back within each call), then the file ends `failed`
 * (embedding_failed, with the upstream's reason). A refusal by policy or quota fails at once.
 */
export const EMBED_ATTEMPTS = 3;

export interface IngestDeps {
  readonly config: Config;
  readonly repo: KnowledgeRepo;
  readonly files: JobsRepo;
  readonly identity: Pick<Identity, 'keys'>;
  readonly identityRepo: Pick<IdentityRepo, 'membership'>;
  readonly embedder: Embedder;
  readonly clock: Clock;
  /** Backoff between embedding attempts (tests shorten it). */
  readonly retryDelayMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      },
      { once: true },
    );
  });

export function ingestProcessor(d: IngestDeps) {
  return async (job: Job<JobData>, jc: JobContext): Promise<{ status: string; chunks?: number }> => {
    const vectorStoreId = String(job.data.vectorStoreId);
    const fileId = String(job.data.fileId);
    return ingestFile(d, { vectorStoreId, fileId, signal: jc.signal, log: jc.log });
  };
}

/** One file's ingestion (the job's body; tests and the bench call it directly). */
export async function ingestFile(d: IngestDeps, o: { vectorStoreId: string; fileId: string; signal?: AbortSignal; log: RequestContext['log'] }): Promise<{ status: string; chunks?: number }> {
  const { vectorStoreId, fileId } = o;
  const tenant = await d.repo.storeTenant(vectorStoreId);
  if (!tenant) return { status: 'gone' };
  const ctx = createContext({ requestId: `job_ingest_${fileId}`, log: o.log, clock: d.clock, tenant, principal: { kind: 'system', id: 'ingest' } });
  const sf = await d.repo.storeFile(ctx, vectorStoreId, fileId);
  if (!sf) return { status: 'gone' };
  if (sf.status !== 'in_progress') return { status: sf.status };
  const now = (): number => d.clock.now();
  const fail = async (code: string, message: string): Promise<{ status: string }> => {
    await d.repo.updateStoreFile(ctx, vectorStoreId, fileId, { status: 'failed', lastError: JSON.stringify({ code, message }), updatedAt: now() }, ['in_progress']);
    // Nothing of a failed file stays stored (it was never searchable; this frees the space).
    await d.repo.deleteChunks(ctx, vectorStoreId, fileId);
    o.log.warn({ vectorStoreId, fileId, code }, 'knowledge: ingestion failed');
    return { status: 'failed' };
  };

  const file = await d.files.file(ctx, fileId);
  if (!file) return fail('file_not_found', `The file ${fileId} was deleted.`);
  const store = await d.repo.vectorStore(ctx, vectorStoreId);
  if (!store) return { status: 'gone' };

  // The principal the embedding calls run as: the key that attached the file (re-checked
  // now: revoked, expired, owner gone), or the user (their current role), else the system.
  let callCtx: () => RequestContext;
  try {
    callCtx = await principalFor(d, ctx, sf);
  } catch (e) {
    const err = e instanceof AppError ? e : new AppError(500, 'internal_error', (e as Error).message);
    return fail(err.code, `The ingestion cannot run as the one who added the file: ${err.message}`);
  }

  let data: Buffer;
  try {
    data = readFileSync(path.join(d.config.dataDir, file.path));
  } catch {
    return fail('file_gone', `The content of file ${fileId} is no longer stored.`);
  }
  let sections;
  let pages: number | null;
  try {
    const parsed = await parseDocument(detectKind(file.filename), data, { maxPages: MAX_PAGES });
    sections = parsed.sections;
    pages = parsed.pages;
  } catch (e) {
    if (e instanceof ParseError || e instanceof AppError) return fail('parse_failed', (e as Error).message);
    throw e;
  }
  const chunks = chunkSections(sections, fromTokens(DEFAULT_CHUNKING.maxTokens, DEFAULT_CHUNKING.overlapTokens));
  if (!chunks.length) return fail('parse_failed', 'The file contains no text.');
  await d.repo.updateStoreFile(ctx, vectorStoreId, fileId, { pages, updatedAt: now() }, ['in_progress']);

  const have = await d.repo.chunkIndexes(ctx, vectorStoreId, fileId);
  const todo = chunks.filter((c) => !have.has(c.index));
  const classification = sf.classification as Classification;
  for (let i = 0; i < todo.length; i += EMBED_BATCH) {
    o.signal?.throwIfAborted();
    const batch = todo.slice(i, i + EMBED_BATCH);
    let vectors: Float32Array[] | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        vectors = await d.embedder.embed(callCtx(), { model: store.embeddingModel, texts: batch.map((c) => c.text), classification, ...(o.signal ? { signal: o.signal } : {}) });
        break;
      } catch (e) {
        o.signal?.throwIfAborted();
        const err = e instanceof AppError ? e : new AppError(502, 'embedding_failed', (e as Error).message);
        // Refusals (policy, quota, key) and the last attempt end the file; upstream trouble is retried.
        if (err.status < 500 || attempt >= EMBED_ATTEMPTS) {
          return fail('embedding_failed', `Embedding with ${store.embeddingModel} failed${err.status >= 500 ? ` after ${attempt} attempts` : ''}: ${err.code}: ${err.message}`);
        }
        await sleep((d.retryDelayMs ?? 1000) * 2 ** (attempt - 1), o.signal);
      }
    }
    const t = now();
    await d.repo.insertChunks(
      ctx,
      batch.map((c, j) => ({ id: chunkId(vectorStoreId, fileId, c.index), vectorStoreId, fileId, chunkIndex: c.index, page: c.page, text: c.text, embedding: toBlob(vectors[j]!), createdAt: t })),
    );
    // Removed meanwhile (file detached, store deleted): take back what this run added.
    const n = await d.repo.updateStoreFile(ctx, vectorStoreId, fileId, { chunkCount: have.size + i + batch.length, updatedAt: t }, ['in_progress']);
    if (!n) {
      if (!(await d.repo.storeFile(ctx, vectorStoreId, fileId))) await d.repo.deleteChunks(ctx, vectorStoreId, fileId);
      return { status: 'gone' };
    }
  }
  const bytes = chunks.reduce((s, c) => s + Buffer.byteLength(c.text) + 0, 0);
  await d.repo.updateStoreFile(ctx, vectorStoreId, fileId, { status: 'completed', chunkCount: chunks.length, usageBytes: bytes, lastError: null, updatedAt: now() }, ['in_progress']);
  await d.repo.tx(async () => {
    const files = await d.repo.listStoreFiles(ctx, vectorStoreId, { limit: 100_000, status: 'completed' });
    await d.repo.updateStore(ctx, vectorStoreId, { usageBytes: files.reduce((s, f) => s + f.usageBytes, 0), lastActiveAt: now() });
  });
  return { status: 'completed', chunks: chunks.length };
}

async function principalFor(d: IngestDeps, ctx: RequestContext, sf: StoreFileRow): Promise<() => RequestContext> {
  const base = () => createContext({ requestId: newId('req', d.clock.now()), log: ctx.log, clock: d.clock, tenant: ctx.tenant! });
  if (sf.keyId) {
    const key = await d.identity.keys.verifyStored(ctx, sf.keyId);
    return () => applyKey(base(), key);
  }
  if (sf.userId) {
    const m = await d.identityRepo.membership(ctx, sf.userId);
    if (!m) throw new AppError(403, 'not_a_member', 'The user who added the file is no longer a member of this tenant.');
    const userId = sf.userId;
    return () => ({ ...base(), principal: { kind: 'user', id: userId, userId, role: m.role } });
  }
  return () => ({ ...base(), principal: { kind: 'system', id: 'ingest' } });
}
