import { and, asc, count, desc, eq, inArray, lt, ne, or, type SQL, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { knowledgeChunks, vectorStoreFiles, vectorStores } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL for knowledge (issue 20): vector stores, their files' ingestion state, chunks with
 * their vectors, the keyword index, citations — on either dialect, tenant-scoped (TenantStore,
 * or an explicit tenant filter where a query needs joins or bulk inserts). Cross-tenant
 * lookups, each with its reason:
 *  - storeFileTenant: the ingest worker learns the tenant of the job's store file (ids only in Redis);
 *  - unfinishedFiles: the reconciler re-enqueues ingestion jobs that were lost.
 * Keyword search is dialect-specific: FTS5 with bm25() on SQLite (migration 0019), a GIN
 * to_tsvector index with ts_rank_cd on PostgreSQL (migrations-pg 0010). Only chunks of files
 * whose ingestion completed are ever returned: a half-ingested file is not searchable.
 */
export type VectorStoreRow = typeof vectorStores.$inferSelect;
export type NewVectorStore = Omit<typeof vectorStores.$inferInsert, 'tenantId'>;
export type StoreFileRow = typeof vectorStoreFiles.$inferSelect;
export type NewStoreFile = Omit<typeof vectorStoreFiles.$inferInsert, 'tenantId'>;
export type ChunkRow = typeof knowledgeChunks.$inferSelect;
export type NewChunk = Omit<typeof knowledgeChunks.$inferInsert, 'tenantId'>;
export type FileStatus = StoreFileRow['status'];

/** Characters of a chunk indexed on PostgreSQL: the GIN index's expression (see chat SEARCH_PREFIX). */
const SEARCH_PREFIX = 100_000;

/** A chunk found by a search, with what a result needs to show and classify it. */
export interface ChunkHit {
  readonly id: string;
  readonly vectorStoreId: string;
  readonly fileId: string;
  readonly chunkIndex: number;
  readonly page: number | null;
  readonly text: string;
  readonly filename: string;
  readonly classification: StoreFileRow['classification'];
  readonly attributes: string | null;
}

export class KnowledgeRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.tx(fn);
  }

  // ---- vector stores ----
  insertStore(ctx: RequestContext, row: NewVectorStore): Promise<VectorStoreRow> {
    return this.data.vectorStores.insert(ctx, row);
  }
  vectorStore(ctx: RequestContext, id: string): Promise<VectorStoreRow | undefined> {
    return this.data.vectorStores.get(ctx, (v) => eq(v.id, id));
  }
  vectorStoresByIds(ctx: RequestContext, ids: readonly string[]): Promise<VectorStoreRow[]> {
    if (!ids.length) return Promise.resolve([]);
    return this.data.vectorStores.list(ctx, (v) => inArray(v.id, [...ids]));
  }
  /**
   * Stores the caller may read, newest first: shared with the tenant, or its own (a user's, or
   * for an ownerless key those the key made). Conversation stores only when asked.
   */
  listStores(ctx: RequestContext, who: { userId: string | null; keyId: string | null }, o: { after?: string; limit: number; conversations?: boolean; order?: 'asc' | 'desc' }): Promise<VectorStoreRow[]> {
    const v = this.store.t.vectorStores;
    const own = who.userId ? eq(v.ownerUserId, who.userId) : who.keyId ? eq(v.keyId, who.keyId) : undefined;
    const order = o.order ?? 'desc';
    return this.store.all(
      this.store.q
        .select()
        .from(v)
        .where(
          and(
            eq(v.tenantId, requireTenant(ctx).id),
            own ? or(eq(v.sharing, 'tenant'), own) : eq(v.sharing, 'tenant'),
            o.conversations ? undefined : ne(v.sharing, 'conversation'),
            o.after ? (order === 'desc' ? lt(v.id, o.after) : sql`${v.id} > ${o.after}`) : undefined,
          ),
        )
        .orderBy(order === 'desc' ? desc(v.id) : asc(v.id))
        .limit(o.limit),
    );
  }
  conversationStore(ctx: RequestContext, userId: string, conversationId: string): Promise<VectorStoreRow | undefined> {
    return this.data.vectorStores.get(ctx, (v) => and(eq(v.sharing, 'conversation'), eq(v.ownerUserId, userId), eq(v.conversationId, conversationId)));
  }
  updateStore(ctx: RequestContext, id: string, patch: Partial<NewVectorStore>): Promise<number> {
    return this.data.vectorStores.update(ctx, (v) => eq(v.id, id), patch);
  }
  /** Deletes the store; its file links, chunks and vectors go with it (foreign keys cascade, FTS triggers follow). */
  async deleteStore(ctx: RequestContext, id: string): Promise<number> {
    return this.store.tx(async () => {
      await this.data.knowledgeChunks.delete(ctx, (c) => eq(c.vectorStoreId, id));
      await this.data.vectorStoreFiles.delete(ctx, (f) => eq(f.vectorStoreId, id));
      return this.data.vectorStores.delete(ctx, (v) => eq(v.id, id));
    });
  }

  // ---- files in stores ----
  insertStoreFile(ctx: RequestContext, row: NewStoreFile): Promise<StoreFileRow> {
    return this.data.vectorStoreFiles.insert(ctx, row);
  }
  storeFile(ctx: RequestContext, vectorStoreId: string, fileId: string): Promise<StoreFileRow | undefined> {
    return this.data.vectorStoreFiles.get(ctx, (f) => and(eq(f.vectorStoreId, vectorStoreId), eq(f.fileId, fileId)));
  }
  listStoreFiles(ctx: RequestContext, vectorStoreId: string, o: { after?: string; limit: number; status?: FileStatus; order?: 'asc' | 'desc' }): Promise<StoreFileRow[]> {
    const f = this.store.t.vectorStoreFiles;
    const order = o.order ?? 'desc';
    return this.store.all(
      this.store.q
        .select()
        .from(f)
        .where(
          and(
            eq(f.tenantId, requireTenant(ctx).id),
            eq(f.vectorStoreId, vectorStoreId),
            o.status ? eq(f.status, o.status) : undefined,
            o.after ? (order === 'desc' ? lt(f.fileId, o.after) : sql`${f.fileId} > ${o.after}`) : undefined,
          ),
        )
        .orderBy(order === 'desc' ? desc(f.fileId) : asc(f.fileId))
        .limit(o.limit),
    );
  }
  /** The stores a file is attached to (deleting a file removes it from each). */
  storesOfFile(ctx: RequestContext, fileId: string): Promise<StoreFileRow[]> {
    return this.data.vectorStoreFiles.list(ctx, (f) => eq(f.fileId, fileId));
  }
  /** One statement: the state check (`onlyIn`) and the change cannot be separated by another writer. */
  updateStoreFile(ctx: RequestContext, vectorStoreId: string, fileId: string, patch: Partial<NewStoreFile>, onlyIn?: readonly FileStatus[]): Promise<number> {
    return this.data.vectorStoreFiles.update(ctx, (f) => and(eq(f.vectorStoreId, vectorStoreId), eq(f.fileId, fileId), onlyIn ? inArray(f.status, [...onlyIn]) : undefined), patch);
  }
  /** Removes the file from the store with all its chunks and vectors, in one transaction. */
  deleteStoreFile(ctx: RequestContext, vectorStoreId: string, fileId: string): Promise<number> {
    return this.store.tx(async () => {
      await this.data.knowledgeChunks.delete(ctx, (c) => and(eq(c.vectorStoreId, vectorStoreId), eq(c.fileId, fileId)));
      return this.data.vectorStoreFiles.delete(ctx, (f) => and(eq(f.vectorStoreId, vectorStoreId), eq(f.fileId, fileId)));
    });
  }
  /** Files per status of each store. */
  async fileCounts(ctx: RequestContext, ids: readonly string[]): Promise<Map<string, Record<FileStatus, number>>> {
    const out = new Map<string, Record<FileStatus, number>>();
    if (!ids.length) return out;
    const f = this.store.t.vectorStoreFiles;
    const rows = await this.store.all(
      this.store.q
        .select({ id: f.vectorStoreId, status: f.status, n: count() })
        .from(f)
        .where(and(eq(f.tenantId, requireTenant(ctx).id), inArray(f.vectorStoreId, [...ids])))
        .groupBy(f.vectorStoreId, f.status),
    );
    for (const r of rows) {
      const c = out.get(r.id) ?? { in_progress: 0, completed: 0, failed: 0, cancelled: 0 };
      c[r.status] = Number(r.n);
      out.set(r.id, c);
    }
    return out;
  }
  /** Cross-tenant (worker): the tenant of a store named by a job. */
  storeTenant(vectorStoreId: string): Promise<{ id: string; slug: string } | undefined> {
    const { vectorStores: v, tenants: t } = this.store.t;
    return this.store.one(this.store.q.select({ id: t.id, slug: t.slug }).from(v).innerJoin(t, eq(t.id, v.tenantId)).where(eq(v.id, vectorStoreId)));
  }
  /** Cross-tenant (reconciler): ingestions not finished, oldest first. */
  unfinishedFiles(limit: number): Promise<{ tenantId: string; vectorStoreId: string; fileId: string; createdAt: number; updatedAt: number }[]> {
    const f = this.store.t.vectorStoreFiles;
    return this.store.all(
      this.store.q
        .select({ tenantId: f.tenantId, vectorStoreId: f.vectorStoreId, fileId: f.fileId, createdAt: f.createdAt, updatedAt: f.updatedAt })
        .from(f)
        .where(eq(f.status, 'in_progress'))
        .orderBy(asc(f.updatedAt))
        .limit(limit),
    );
  }

  // ---- chunks ----
  /**
   * Inserts chunks, ignoring ids already stored (deterministic ids: store, file, index), so an
   * ingestion that runs again after a crash adds only what is missing.
   */
  async insertChunks(ctx: RequestContext, rows: readonly NewChunk[]): Promise<void> {
    if (!rows.length) return;
    const tenantId = requireTenant(ctx).id;
    const c = this.store.t.knowledgeChunks;
    await this.store.run(
      this.store.q
        .insert(c)
        .values(rows.map((r) => ({ ...r, tenantId })))
        .onConflictDoNothing(),
    );
  }
  /** Indexes of chunks of a file already stored (resume). */
  async chunkIndexes(ctx: RequestContext, vectorStoreId: string, fileId: string): Promise<Set<number>> {
    const c = this.store.t.knowledgeChunks;
    const rows = await this.store.all(
      this.store.q
        .select({ i: c.chunkIndex })
        .from(c)
        .where(and(eq(c.tenantId, requireTenant(ctx).id), eq(c.vectorStoreId, vectorStoreId), eq(c.fileId, fileId))),
    );
    return new Set(rows.map((r) => r.i));
  }
  countChunks(ctx: RequestContext, where: { vectorStoreId?: string; fileId?: string }): Promise<number> {
    return this.data.knowledgeChunks.count(ctx, (c) => and(where.vectorStoreId ? eq(c.vectorStoreId, where.vectorStoreId) : undefined, where.fileId ? eq(c.fileId, where.fileId) : undefined));
  }
  deleteChunks(ctx: RequestContext, vectorStoreId: string, fileId: string): Promise<number> {
    return this.data.knowledgeChunks.delete(ctx, (c) => and(eq(c.vectorStoreId, vectorStoreId), eq(c.fileId, fileId)));
  }

  /** Only chunks of completed files, in the given stores, of the caller's tenant. */
  private searchable(vectorStoreIds: readonly string[], tenantId: string): SQL {
    const { knowledgeChunks: c, vectorStoreFiles: f } = this.store.t;
    return and(
      eq(c.tenantId, tenantId),
      inArray(c.vectorStoreId, [...vectorStoreIds]),
      sql`EXISTS (SELECT 1 FROM ${f} WHERE ${f.vectorStoreId} = ${c.vectorStoreId} AND ${f.fileId} = ${c.fileId} AND ${f.status} = 'completed')`,
    ) as SQL;
  }

  /**
   * Keyword (BM25-like) search: ids of the best `limit` chunks matching any word of `query`,
   * best first. Only letters, digits and `_` make words, so search operators in the input
   * (FTS5's or tsquery's) are plain text.
   */
  async keywordSearch(ctx: RequestContext, vectorStoreIds: readonly string[], query: string, limit: number): Promise<string[]> {
    const words = [...new Set(query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [])].slice(0, 32);
    if (!words.length || !vectorStoreIds.length) return [];
    const c = this.store.t.knowledgeChunks;
    const tenantId = requireTenant(ctx).id;
    if (this.store.dialect === 'postgres') {
      const tsq = sql`to_tsquery('simple', ${words.join(' | ')})`;
      const vec = sql`to_tsvector('simple', left(${c.text}, ${sql.raw(String(SEARCH_PREFIX))}))`;
      const rows = await this.store.all(
        this.store.q
          .select({ id: c.id })
          .from(c)
          .where(and(this.searchable(vectorStoreIds, tenantId), sql`${vec} @@ ${tsq}`))
          .orderBy(sql`ts_rank_cd(${vec}, ${tsq}) DESC`, asc(c.id))
          .limit(limit),
      );
      return rows.map((r) => r.id);
    }
    const match = words.map((w) => `"${w}"`).join(' OR ');
    // bm25() is lower for better matches; the FTS query is narrowed to the tenant's stores by the join.
    const rows = await this.store.all(
      this.store.q
        .select({ id: c.id })
        .from(c)
        .innerJoin(sql`(SELECT s.chunk_id AS chunk_id, bm25(knowledge_fts) AS rank FROM knowledge_fts JOIN knowledge_fts_ids s ON s.id = knowledge_fts.rowid WHERE knowledge_fts MATCH ${match}) m`, sql`m.chunk_id = ${c.id}`)
        .where(this.searchable(vectorStoreIds, tenantId))
        .orderBy(sql`m.rank ASC`, asc(c.id))
        .limit(limit),
    );
    return rows.map((r) => r.id);
  }

  /** Every searchable vector of the stores (the brute-force scan reads them; bench/knowledge.ts measures it). */
  vectors(ctx: RequestContext, vectorStoreIds: readonly string[]): Promise<{ id: string; embedding: Buffer }[]> {
    if (!vectorStoreIds.length) return Promise.resolve([]);
    const c = this.store.t.knowledgeChunks;
    return this.store.all(this.store.q.select({ id: c.id, embedding: c.embedding }).from(c).where(this.searchable(vectorStoreIds, requireTenant(ctx).id)));
  }

  /**
   * What the searchable vectors of a store are now (completed files, their chunk counts, the
   * newest change): a search's vector cache is valid while this stays the same.
   */
  async storeVersion(ctx: RequestContext, vectorStoreId: string): Promise<string> {
    const f = this.store.t.vectorStoreFiles;
    const r = await this.store.one(
      this.store.q
        .select({ n: count(), c: sql<number>`coalesce(sum(${f.chunkCount}), 0)`, u: sql<unknown>`max(${f.updatedAt})` })
        .from(f)
        .where(and(eq(f.tenantId, requireTenant(ctx).id), eq(f.vectorStoreId, vectorStoreId), eq(f.status, 'completed'))),
    );
    return `${Number(r?.n ?? 0)}:${Number(r?.c ?? 0)}:${String(r?.u ?? '')}`;
  }

  /** The chunks with their file's name, classification and attributes (searchable ones only). */
  async hits(ctx: RequestContext, vectorStoreIds: readonly string[], ids: readonly string[]): Promise<ChunkHit[]> {
    if (!ids.length) return [];
    const { knowledgeChunks: c, vectorStoreFiles: f, files } = this.store.t;
    return this.store.all(
      this.store.q
        .select({
          id: c.id,
          vectorStoreId: c.vectorStoreId,
          fileId: c.fileId,
          chunkIndex: c.chunkIndex,
          page: c.page,
          text: c.text,
          filename: files.filename,
          classification: f.classification,
          attributes: f.attributes,
        })
        .from(c)
        .innerJoin(f, and(eq(f.vectorStoreId, c.vectorStoreId), eq(f.fileId, c.fileId)))
        .innerJoin(files, eq(files.id, c.fileId))
        .where(and(this.searchable(vectorStoreIds, requireTenant(ctx).id), inArray(c.id, [...ids]))),
    );
  }

  /** One passage by position (a citation being opened), of a completed file. */
  async passage(ctx: RequestContext, vectorStoreId: string, fileId: string, chunkIndex: number): Promise<ChunkHit | undefined> {
    const id = chunkId(vectorStoreId, fileId, chunkIndex);
    return (await this.hits(ctx, [vectorStoreId], [id]))[0];
  }

  // ---- citations of chat answers ----
  async saveCitations(ctx: RequestContext, messageId: string, conversationId: string, citations: string, now: number): Promise<void> {
    await this.data.knowledgeCitations.insert(ctx, { messageId, conversationId, citations, createdAt: now });
  }
  citations(ctx: RequestContext, conversationId: string): Promise<{ messageId: string; citations: string }[]> {
    return this.data.knowledgeCitations.list(ctx, (k) => eq(k.conversationId, conversationId));
  }
}

/** The deterministic id of a chunk: the same file in the same store at the same position is the same chunk. */
export function chunkId(vectorStoreId: string, fileId: string, index: number): string {
  return `${vectorStoreId}:${fileId}:${index}`;
}
