import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Access } from '../access/authorize.js';
import { writeDurable, serializeFile } from '../batch/service.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import { requireTenant, type Classification, type RequestContext } from '../context.js';
import type { FileRow, JobsRepo } from '../db/repos/jobs.js';
import type { FileStatus, KnowledgeRepo, StoreFileRow, VectorStoreRow } from '../db/repos/knowledge.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { JobQueues } from '../jobs/queues.js';
import type { Embedder } from './embed.js';
import { CONTENT_TYPES, detectKind } from './parse.js';
import { hybridSearch, VectorCache, type Filter, type ScoredHit } from './search.js';
import { collection, knowledgeFile, knowledgeHit, openaiStoreFile, openaiVectorStore, type Citation, type KnowledgeHit } from './serialize.js';

/**
 * Knowledge (issue 20): files for retrieval, vector stores (= the console's collections), the
 * files in them and their ingestion, hybrid search. Every object belongs to the tenant of the
 * context; a store is shared with the whole tenant or is one user's (or, for an ownerless API
 * key, the key's); another tenant's — or another user's private — store is "not found".
 *
 * Classification: a store has one (the default of its files); a file's may only be higher.
 * Ingestion embeds a file at its classification (the gateway's data-boundary policy decides
 * which deployments may see it); retrieval reports the highest classification among what it
 * returned, and callers raise their call to it before routing (retrieve.ts).
 */
export const INGEST_JOB = 'knowledge_ingest';
export const CLASS_ORDER: Record<Classification, number> = { public: 0, internal: 1, confidential: 2, restricted: 3 };
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
/** Pages of a PDF ingested at most. */
export const MAX_PAGES = 2000;
export const MAX_STORES_PER_QUERY = 10;
export const MAX_BATCH_FILES = 100;

export function higher(a: Classification, b: Classification): Classification {
  return CLASS_ORDER[a] >= CLASS_ORDER[b] ? a : b;
}

/**
 * One job per attachment: the attach time is part of the id, so a file removed and attached
 * again gets a new job (BullMQ keeps finished jobs' ids), while enqueueing the same
 * attachment twice (reconciler) is harmless. BullMQ job ids may not contain ':'.
 */
export function ingestJobId(vectorStoreId: string, fileId: string, attachedAt: number): string {
  return `ing_${vectorStoreId}_${fileId}_${attachedAt}`;
}

export interface KnowledgeDeps {
  readonly config: Config;
  readonly repo: KnowledgeRepo;
  readonly files: JobsRepo;
  readonly queues: JobQueues;
  readonly access: Access;
  readonly embedder: Embedder;
  /** The tenant's embedding models (catalogue, filtered by the tenant's policy), the first is the default. */
  readonly embeddingModels: (ctx: RequestContext) => Promise<string[]>;
  /** Whether the conversation is the caller's (citations are read through it). */
  readonly conversationOwned: (ctx: RequestContext, conversationId: string) => Promise<boolean>;
  readonly clock: Clock;
  readonly log: Logger;
}

type Who = { userId: string | null; keyId: string | null };

export class KnowledgeService {
  /** Vectors of recently searched stores (search.ts VectorCache). */
  private readonly vectors = new VectorCache();
  constructor(readonly d: KnowledgeDeps) {}

  private now(): number {
    return this.d.clock.now();
  }

  private who(ctx: RequestContext): Who {
    const p = ctx.principal;
    return { userId: p?.userId ?? null, keyId: p?.keyId ?? null };
  }

  /** Whether the caller owns the store (its user; for a store made by an ownerless key, that key). */
  private owns(ctx: RequestContext, v: VectorStoreRow): boolean {
    const w = this.who(ctx);
    if (v.ownerUserId) return w.userId === v.ownerUserId;
    return !!v.keyId && w.keyId === v.keyId;
  }

  private readable(ctx: RequestContext, v: VectorStoreRow): boolean {
    return v.sharing === 'tenant' || this.owns(ctx, v);
  }

  private writable(ctx: RequestContext, v: VectorStoreRow): boolean {
    if (!this.d.access.authorize(ctx, 'knowledge:write').allow) return false;
    if (this.owns(ctx, v)) return true;
    // A tenant-shared store: its creator, and the tenant's admins.
    return v.sharing === 'tenant' && (ctx.principal?.role === 'owner' || ctx.principal?.role === 'admin' || ctx.principal?.platformAdmin === true);
  }

  /** A store the caller may read, or 404 (also for another user's private store). */
  async readableStore(ctx: RequestContext, id: string): Promise<VectorStoreRow> {
    await this.d.access.require(ctx, 'knowledge:read', {}, { type: 'vector_store', id });
    const v = await this.d.repo.vectorStore(ctx, id);
    if (!v || !this.readable(ctx, v)) throw new AppError(404, 'vector_store_not_found', `No vector store ${id}.`, { param: 'vector_store_id' });
    return v;
  }

  private async writableStore(ctx: RequestContext, id: string): Promise<VectorStoreRow> {
    await this.d.access.require(ctx, 'knowledge:write', {}, { type: 'vector_store', id });
    const v = await this.readableStore(ctx, id);
    if (!this.writable(ctx, v)) throw new AppError(403, 'vector_store_read_only', `You may read vector store ${id} but not change it (its owner or a tenant admin can).`);
    return v;
  }

  // ---- files (POST /v1/files with purpose assistants | user_data) ----

  async uploadFile(ctx: RequestContext, input: { purpose: 'assistants' | 'user_data'; filename: string | undefined; data: Buffer }) {
    await this.d.access.require(ctx, 'files:write', {}, { type: 'file' });
    return serializeFile(await this.storeUpload(ctx, input));
  }

  private async storeUpload(ctx: RequestContext, input: { purpose: 'assistants' | 'user_data'; filename: string | undefined; data: Buffer }): Promise<FileRow> {
    const tenant = requireTenant(ctx);
    if (input.data.length === 0) throw new AppError(400, 'invalid_file', 'The file is empty.', { param: 'file' });
    const kind = detectKind(input.filename);
    const now = this.now();
    const id = newId('file', now);
    const rel = path.join('files', tenant.id, `${id}.${kind}`);
    writeDurable(path.join(this.d.config.dataDir, rel), input.data);
    const filename = (input.filename ?? `upload.${kind}`).replace(/[\\/\r\n"]/g, '_').slice(0, 255) || `upload.${kind}`;
    return this.d.files.insertFile(ctx, { id, purpose: input.purpose, filename, bytes: input.data.length, lineCount: 0, path: rel, keyId: ctx.principal?.keyId ?? null, createdAt: now, expiresAt: null });
  }

  // ---- vector stores ----

  async create(
    ctx: RequestContext,
    input: { name?: string | null; description?: string | null; metadata?: Record<string, string> | null; classification?: Classification; sharing?: 'tenant' | 'user'; embeddingModel?: string; fileIds?: readonly string[]; conversationId?: string },
  ): Promise<VectorStoreRow> {
    await this.d.access.require(ctx, 'knowledge:write', {}, { type: 'vector_store' });
    const models = await this.d.embeddingModels(ctx);
    const model = input.embeddingModel ?? models[0];
    if (!model) throw new AppError(409, 'no_embedding_model', 'No embedding model is available to this tenant; an administrator adds one (a deployment of type embedding).');
    if (input.embeddingModel && !models.includes(input.embeddingModel)) throw new AppError(400, 'invalid_embedding_model', `The embedding model ${input.embeddingModel} is not available to this tenant.`, { param: 'embedding_model' });
    const w = this.who(ctx);
    const sharing = input.conversationId ? 'conversation' : (input.sharing ?? (ctx.principal?.kind === 'api_key' ? 'tenant' : 'user'));
    if (sharing !== 'tenant' && !w.userId && !w.keyId) throw new AppError(400, 'invalid_sharing', 'A private store needs a user or key to own it.', { param: 'sharing' });
    const now = this.now();
    const row = await this.d.repo.insertStore(ctx, {
      id: newId('vs', now),
      name: (input.name ?? '').slice(0, 256),
      description: input.description ?? null,
      sharing,
      ownerUserId: w.userId,
      keyId: w.keyId,
      conversationId: input.conversationId ?? null,
      classification: input.classification ?? ctx.classification ?? 'internal',
      embeddingModel: model,
      metadata: input.metadata ? JSON.stringify(input.metadata) : null,
      usageBytes: 0,
      createdAt: now,
      lastActiveAt: now,
    });
    for (const f of input.fileIds ?? []) await this.attach(ctx, row.id, { fileId: f });
    return row;
  }

  async list(ctx: RequestContext, o: { after?: string; limit: number; order?: 'asc' | 'desc' }): Promise<VectorStoreRow[]> {
    await this.d.access.require(ctx, 'knowledge:read');
    return this.d.repo.listStores(ctx, this.who(ctx), o);
  }

  async update(ctx: RequestContext, id: string, patch: { name?: string | null; description?: string | null; metadata?: Record<string, string> | null; classification?: Classification; sharing?: 'tenant' | 'user' }): Promise<VectorStoreRow> {
    const v = await this.writableStore(ctx, id);
    if (patch.classification && CLASS_ORDER[patch.classification] < CLASS_ORDER[v.classification]) {
      throw new AppError(400, 'classification_lowered', `The classification of a store only rises (it is ${v.classification}); make a new store for less sensitive files.`, { param: 'classification' });
    }
    if (patch.sharing && v.sharing === 'conversation') throw new AppError(400, 'invalid_sharing', 'A conversation attachment store cannot be shared.', { param: 'sharing' });
    await this.d.repo.updateStore(ctx, id, {
      ...(patch.name !== undefined ? { name: (patch.name ?? '').slice(0, 256) } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.metadata !== undefined ? { metadata: patch.metadata ? JSON.stringify(patch.metadata) : null } : {}),
      ...(patch.sharing ? { sharing: patch.sharing } : {}),
      ...(patch.classification ? { classification: patch.classification } : {}),
    });
    if (patch.classification) {
      // Files below the store's new classification rise with it (a file's is never below its store's).
      for (const f of await this.d.repo.listStoreFiles(ctx, id, { limit: 100_000 })) {
        if (CLASS_ORDER[f.classification] < CLASS_ORDER[patch.classification]) await this.d.repo.updateStoreFile(ctx, id, f.fileId, { classification: patch.classification, updatedAt: this.now() });
      }
    }
    return (await this.d.repo.vectorStore(ctx, id))!;
  }

  /** Deletes the store, its chunks and vectors. `withFiles`: also the files no other store uses (the console's collections own their uploads). */
  async remove(ctx: RequestContext, id: string, o: { withFiles?: boolean } = {}): Promise<void> {
    await this.writableStore(ctx, id);
    const files = o.withFiles ? await this.d.repo.listStoreFiles(ctx, id, { limit: 100_000 }) : [];
    await this.d.repo.deleteStore(ctx, id);
    for (const f of files) await this.removeFileIfUnused(ctx, f.fileId);
  }

  private async removeFileIfUnused(ctx: RequestContext, fileId: string): Promise<void> {
    if ((await this.d.repo.storesOfFile(ctx, fileId)).length) return;
    const row = await this.d.files.file(ctx, fileId);
    if (!row || (row.purpose !== 'assistants' && row.purpose !== 'user_data')) return;
    await this.d.files.deleteFile(ctx, fileId);
    rmSync(path.join(this.d.config.dataDir, row.path), { force: true });
  }

  counts(ctx: RequestContext, ids: readonly string[]) {
    return this.d.repo.fileCounts(ctx, ids);
  }

  // ---- files in stores ----

  /** Attaches an uploaded file to a store and queues its ingestion (attaching it again returns the existing one). */
  async attach(ctx: RequestContext, vectorStoreId: string, input: { fileId: string; attributes?: Record<string, string | number | boolean> | null; classification?: Classification }): Promise<StoreFileRow> {
    const v = await this.writableStore(ctx, vectorStoreId);
    const f = await this.d.files.file(ctx, input.fileId);
    if (!f) throw new AppError(404, 'file_not_found', `No file ${input.fileId}.`, { param: 'file_id' });
    if (f.purpose !== 'assistants' && f.purpose !== 'user_data') throw new AppError(400, 'invalid_file_purpose', `File ${f.id} has purpose ${f.purpose}; upload files for retrieval with purpose "assistants" or "user_data".`, { param: 'file_id' });
    const existing = await this.d.repo.storeFile(ctx, vectorStoreId, f.id);
    if (existing) return existing;
    const asked = input.classification ?? v.classification;
    if (CLASS_ORDER[asked] < CLASS_ORDER[v.classification]) {
      throw new AppError(400, 'classification_lowered', `A file's classification cannot be below its store's (${v.classification}).`, { param: 'classification' });
    }
    // A key may not put data above its own maximum into a store (it could not send it either).
    await this.d.access.require(ctx, 'knowledge:write', { classification: asked }, { type: 'vector_store', id: vectorStoreId });
    const now = this.now();
    const w = this.who(ctx);
    const row = await this.d.repo.insertStoreFile(ctx, {
      vectorStoreId,
      fileId: f.id,
      status: 'in_progress',
      lastError: null,
      classification: asked,
      attributes: input.attributes ? JSON.stringify(input.attributes) : null,
      contentType: CONTENT_TYPES[detectKind(f.filename)],
      pages: null,
      chunkCount: 0,
      usageBytes: 0,
      userId: w.userId,
      keyId: w.keyId,
      createdAt: now,
      updatedAt: now,
    });
    await this.d.repo.updateStore(ctx, vectorStoreId, { lastActiveAt: now });
    await this.enqueue(requireTenant(ctx).id, vectorStoreId, f.id, now).catch((e: Error) => {
      // The row stays in_progress; the ingest reconciler enqueues it when Redis is back.
      this.d.log.warn({ vectorStoreId, fileId: f.id, err: e.message }, 'knowledge: ingestion not enqueued yet');
    });
    return row;
  }

  enqueue(tenantId: string, vectorStoreId: string, fileId: string, attachedAt: number) {
    return this.d.queues.add('ingest', INGEST_JOB, { tenantId, vectorStoreId, fileId }, { jobId: ingestJobId(vectorStoreId, fileId, attachedAt) });
  }

  async storeFile(ctx: RequestContext, vectorStoreId: string, fileId: string): Promise<StoreFileRow> {
    await this.readableStore(ctx, vectorStoreId);
    const f = await this.d.repo.storeFile(ctx, vectorStoreId, fileId);
    if (!f) throw new AppError(404, 'file_not_found', `No file ${fileId} in vector store ${vectorStoreId}.`, { param: 'file_id' });
    return f;
  }

  async listFiles(ctx: RequestContext, vectorStoreId: string, o: { after?: string; limit: number; status?: FileStatus; order?: 'asc' | 'desc' }): Promise<StoreFileRow[]> {
    await this.readableStore(ctx, vectorStoreId);
    return this.d.repo.listStoreFiles(ctx, vectorStoreId, o);
  }

  async updateFile(ctx: RequestContext, vectorStoreId: string, fileId: string, attributes: Record<string, string | number | boolean> | null): Promise<StoreFileRow> {
    await this.writableStore(ctx, vectorStoreId);
    await this.storeFile(ctx, vectorStoreId, fileId);
    await this.d.repo.updateStoreFile(ctx, vectorStoreId, fileId, { attributes: attributes ? JSON.stringify(attributes) : null, updatedAt: this.now() });
    return this.storeFile(ctx, vectorStoreId, fileId);
  }

  /** Removes the file from the store: its chunks and vectors are deleted (the file itself stays, as in OpenAI's API). */
  async detach(ctx: RequestContext, vectorStoreId: string, fileId: string, o: { withFile?: boolean } = {}): Promise<void> {
    await this.writableStore(ctx, vectorStoreId);
    await this.storeFile(ctx, vectorStoreId, fileId);
    await this.d.repo.deleteStoreFile(ctx, vectorStoreId, fileId);
    if (o.withFile) await this.removeFileIfUnused(ctx, fileId);
  }

  // ---- search ----

  async search(
    ctx: RequestContext,
    vectorStoreIds: readonly string[],
    o: { query: string; limit: number; filter?: Filter; scoreThreshold?: number; classification?: Classification; signal?: AbortSignal },
  ): Promise<{ hits: ScoredHit[]; stores: VectorStoreRow[] }> {
    if (vectorStoreIds.length > MAX_STORES_PER_QUERY) throw new AppError(400, 'too_many_vector_stores', `At most ${MAX_STORES_PER_QUERY} vector stores per search.`, { param: 'vector_store_ids' });
    const stores: VectorStoreRow[] = [];
    for (const id of new Set(vectorStoreIds)) stores.push(await this.readableStore(ctx, id));
    const hits = await hybridSearch(
      { repo: this.d.repo, embedder: this.d.embedder, vectors: this.vectors },
      ctx,
      {
        stores,
        query: o.query,
        limit: o.limit,
        classification: o.classification ?? ctx.classification ?? 'internal',
        ...(o.filter ? { filter: o.filter } : {}),
        ...(o.scoreThreshold !== undefined ? { scoreThreshold: o.scoreThreshold } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      },
    );
    return { hits, stores };
  }

  async passage(ctx: RequestContext, vectorStoreId: string, fileId: string, chunkIndex: number): Promise<KnowledgeHit> {
    await this.readableStore(ctx, vectorStoreId);
    const h = await this.d.repo.passage(ctx, vectorStoreId, fileId, chunkIndex);
    if (!h) throw new AppError(404, 'passage_not_found', `No passage ${chunkIndex} of file ${fileId} in ${vectorStoreId}.`);
    return knowledgeHit(h, 0);
  }

  // ---- the console's shapes ----

  async collectionsView(ctx: RequestContext, rows: readonly VectorStoreRow[]) {
    const counts = await this.counts(
      ctx,
      rows.map((r) => r.id),
    );
    return rows.map((r) => collection(r, counts.get(r.id), { mine: this.owns(ctx, r), canWrite: this.writable(ctx, r) }));
  }

  async filesView(ctx: RequestContext, rows: readonly StoreFileRow[]) {
    const out = [];
    for (const r of rows) {
      const f = await this.d.files.file(ctx, r.fileId);
      out.push(knowledgeFile(r, f));
    }
    return out;
  }

  async openaiStore(ctx: RequestContext, v: VectorStoreRow) {
    return openaiVectorStore(v, (await this.counts(ctx, [v.id])).get(v.id));
  }

  openaiFile = openaiStoreFile;

  /** The console's upload: store the file and attach it to the collection in one call. */
  async uploadTo(ctx: RequestContext, vectorStoreId: string, input: { filename: string | undefined; data: Buffer; classification?: Classification }) {
    await this.writableStore(ctx, vectorStoreId);
    await this.d.access.require(ctx, 'files:write', {}, { type: 'file' });
    const f = await this.storeUpload(ctx, { purpose: 'assistants', filename: input.filename, data: input.data });
    const row = await this.attach(ctx, vectorStoreId, { fileId: f.id, ...(input.classification ? { classification: input.classification } : {}) });
    return knowledgeFile(row, f);
  }

  // ---- file batches (OpenAI's file_batches: a batch is the set of files it attached) ----

  /** The batch id names its files (base64url of their ids): no row of its own, nothing to clean up. */
  fileBatch(fileIds: readonly string[]): string {
    if (fileIds.length > MAX_BATCH_FILES) throw new AppError(400, 'too_many_files', `At most ${MAX_BATCH_FILES} files per file batch.`, { param: 'file_ids' });
    return `vsfb_${Buffer.from([...new Set(fileIds)].join(',')).toString('base64url')}`;
  }

  private batchFileIds(batchId: string): string[] {
    const m = /^vsfb_([A-Za-z0-9_-]+)$/.exec(batchId);
    const ids = m ? Buffer.from(m[1]!, 'base64url').toString('utf8').split(',') : [];
    if (!ids.length || ids.length > MAX_BATCH_FILES || !ids.every((i) => /^file_[A-Za-z0-9]+$/.test(i))) throw new AppError(404, 'file_batch_not_found', `No file batch ${batchId}.`, { param: 'batch_id' });
    return ids;
  }

  async fileBatchFiles(ctx: RequestContext, vectorStoreId: string, batchId: string): Promise<StoreFileRow[]> {
    await this.readableStore(ctx, vectorStoreId);
    const out: StoreFileRow[] = [];
    for (const f of this.batchFileIds(batchId)) {
      const row = await this.d.repo.storeFile(ctx, vectorStoreId, f);
      if (row) out.push(row);
    }
    if (!out.length) throw new AppError(404, 'file_batch_not_found', `No file batch ${batchId}.`, { param: 'batch_id' });
    return out;
  }

  async fileBatchView(ctx: RequestContext, vectorStoreId: string, batchId: string) {
    const rows = await this.fileBatchFiles(ctx, vectorStoreId, batchId);
    const c = { in_progress: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const r of rows) c[r.status]++;
    const status = c.in_progress > 0 ? 'in_progress' : c.cancelled > 0 ? 'cancelled' : c.failed > 0 && c.completed === 0 ? 'failed' : 'completed';
    return {
      id: batchId,
      object: 'vector_store.files_batch' as const,
      created_at: Math.floor(Math.min(...rows.map((r) => r.createdAt)) / 1000),
      vector_store_id: vectorStoreId,
      status,
      file_counts: { ...c, total: rows.length },
    };
  }

  /** Files of the batch still waiting or running end `cancelled` (a running ingestion stops at its next step). */
  async cancelFileBatch(ctx: RequestContext, vectorStoreId: string, batchId: string) {
    await this.writableStore(ctx, vectorStoreId);
    for (const f of await this.fileBatchFiles(ctx, vectorStoreId, batchId)) {
      if (f.status !== 'in_progress') continue;
      if (await this.d.repo.updateStoreFile(ctx, vectorStoreId, f.fileId, { status: 'cancelled', updatedAt: this.now() }, ['in_progress'])) {
        await this.d.repo.deleteChunks(ctx, vectorStoreId, f.fileId);
      }
    }
    return this.fileBatchView(ctx, vectorStoreId, batchId);
  }

  // ---- citations of chat answers ----

  async saveCitations(ctx: RequestContext, messageId: string, conversationId: string, citations: readonly Citation[]): Promise<void> {
    if (!citations.length) return;
    await this.d.repo.saveCitations(ctx, messageId, conversationId, JSON.stringify(citations), this.now());
  }

  async citationsOf(ctx: RequestContext, conversationId: string): Promise<Record<string, Citation[]>> {
    if (!(await this.d.conversationOwned(ctx, conversationId))) throw new AppError(404, 'conversation_not_found', `No conversation ${conversationId}.`);
    const out: Record<string, Citation[]> = {};
    for (const r of await this.d.repo.citations(ctx, conversationId)) out[r.messageId] = JSON.parse(r.citations) as Citation[];
    return out;
  }

  /** The conversation's own attachment store (made on first use). */
  async conversationStore(ctx: RequestContext, conversationId: string): Promise<VectorStoreRow> {
    const userId = ctx.principal?.userId;
    if (!userId) throw new AppError(403, 'session_required', 'Chat attachments need a signed-in user.');
    if (!(await this.d.conversationOwned(ctx, conversationId))) throw new AppError(404, 'conversation_not_found', `No conversation ${conversationId}.`);
    return (await this.d.repo.conversationStore(ctx, userId, conversationId)) ?? this.create(ctx, { name: `Attachments of ${conversationId}`, conversationId, sharing: 'user' });
  }
}
