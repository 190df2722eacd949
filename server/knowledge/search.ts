import { endianness } from 'node:os';
import type { Classification, RequestContext } from '../context.js';
import type { ChunkHit, KnowledgeRepo, VectorStoreRow } from '../db/repos/knowledge.js';
import { AppError } from '../errors.js';
import type { Embedder } from './embed.js';

/**
 * Hybrid retrieval (issue 20): keyword (BM25 on FTS5 / ts_rank_cd on PostgreSQL) and vector
 * (cosine) rankings fused by reciprocal rank (RRF, k = 60), so exact names and numbers are
 * found even when the embedding is weak, and paraphrases even when no word matches.
 *
 * The vector side is a brute-force scan of the stores' float32 vectors (no sqlite-vec): at the
 * sizes a tenant's collections have (thousands to a hundred thousand chunks) a scan in
 * process costs milliseconds to tens of milliseconds — bench/knowledge.ts measures p50/p99 at
 * 10k and 100k chunks. Scores are normalized to 0..1 (1 = first in both rankings).
 */
export const RRF_K = 60;
const MAX_SCORE = 2 / (RRF_K + 1);

export type Filter =
  | { type: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte'; key: string; value: string | number | boolean }
  | { type: 'and' | 'or'; filters: Filter[] };

export interface ScoredHit {
  readonly hit: ChunkHit;
  readonly score: number;
}

const LE = endianness() === 'LE';

/** The stored vector as floats: a view when aligned on a little-endian host, else a copy. */
export function floatsOf(blob: Buffer): Float32Array {
  if (LE && blob.byteOffset % 4 === 0) return new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength >>> 2);
  const out = new Float32Array(blob.byteLength >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = blob.readFloatLE(i * 4);
  return out;
}

/**
 * The searchable vectors of stores, kept in memory per store while the store's version (its
 * completed files, chunk counts, newest change) stays the same: reading 100k vectors from the
 * database costs more than scanning them. Least recently used stores leave first past
 * `maxBytes`; a store larger than that is read per query, never kept. One per process (the
 * knowledge service holds it).
 */
export class VectorCache {
  private readonly entries = new Map<string, { version: string; rows: { id: string; v: Float32Array }[]; bytes: number }>();
  private bytes = 0;
  constructor(readonly maxBytes = 256 * 1024 * 1024) {}

  async rows(repo: KnowledgeRepo, ctx: RequestContext, storeId: string): Promise<{ id: string; v: Float32Array }[]> {
    const key = `${ctx.tenant?.id}:${storeId}`;
    const version = await repo.storeVersion(ctx, storeId);
    const hit = this.entries.get(key);
    if (hit && hit.version === version) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.rows;
    }
    if (hit) this.drop(key);
    const rows = (await repo.vectors(ctx, [storeId])).map((r) => ({ id: r.id, v: floatsOf(r.embedding) }));
    const bytes = rows.reduce((n, r) => n + r.v.byteLength + r.id.length * 2 + 64, 0);
    if (bytes <= this.maxBytes) {
      while (this.bytes + bytes > this.maxBytes && this.entries.size) this.drop(this.entries.keys().next().value as string);
      this.entries.set(key, { version, rows, bytes });
      this.bytes += bytes;
    }
    return rows;
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.bytes -= e.bytes;
    this.entries.delete(key);
  }
}

/** Top `n` ids by dot product (vectors are unit length: the cosine). */
export function topByVector(q: Float32Array, rows: readonly { id: string; v: Float32Array }[], n: number): string[] {
  const scored: { id: string; s: number }[] = [];
  let floor = -Infinity;
  for (const r of rows) {
    const v = r.v;
    const len = Math.min(q.length, v.length);
    let s = 0;
    for (let i = 0; i < len; i++) s += q[i]! * v[i]!;
    if (scored.length < n) {
      scored.push({ id: r.id, s });
      if (scored.length === n) {
        scored.sort((a, b) => b.s - a.s);
        floor = scored[n - 1]!.s;
      }
    } else if (s > floor) {
      // Insert in order, drop the last (n is small: ≤ 200).
      let i = n - 1;
      while (i > 0 && scored[i - 1]!.s < s) i--;
      scored.splice(i, 0, { id: r.id, s });
      scored.pop();
      floor = scored[n - 1]!.s;
    }
  }
  if (scored.length < n) scored.sort((a, b) => b.s - a.s);
  return scored.map((x) => x.id);
}

/** Reciprocal-rank fusion of rankings (best first); normalized score per id. */
export function fuse(rankings: readonly (readonly string[])[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rankings) r.forEach((id, i) => out.set(id, (out.get(id) ?? 0) + 1 / (RRF_K + i + 1)));
  for (const [id, s] of out) out.set(id, Math.min(1, s / MAX_SCORE));
  return out;
}

export function matches(f: Filter | undefined, attrs: Record<string, unknown>): boolean {
  if (!f) return true;
  if ('filters' in f) return f.type === 'and' ? f.filters.every((x) => matches(x, attrs)) : f.filters.some((x) => matches(x, attrs));
  const v = attrs[f.key];
  switch (f.type) {
    case 'eq':
      return v === f.value;
    case 'ne':
      return v !== f.value;
    case 'gt':
      return typeof v === typeof f.value && (v as number) > (f.value as number);
    case 'gte':
      return typeof v === typeof f.value && (v as number) >= (f.value as number);
    case 'lt':
      return typeof v === typeof f.value && (v as number) < (f.value as number);
    case 'lte':
      return typeof v === typeof f.value && (v as number) <= (f.value as number);
  }
}

export async function hybridSearch(
  d: { repo: KnowledgeRepo; embedder: Embedder; vectors?: VectorCache },
  ctx: RequestContext,
  o: { stores: readonly VectorStoreRow[]; query: string; limit: number; classification: Classification; filter?: Filter; scoreThreshold?: number; signal?: AbortSignal },
): Promise<ScoredHit[]> {
  const ids = o.stores.map((s) => s.id);
  if (!ids.length || !o.query.trim()) return [];
  const depth = Math.min(200, Math.max(50, o.limit * 5));
  const rankings: string[][] = [await d.repo.keywordSearch(ctx, ids, o.query, depth)];
  // One query embedding per embedding model among the stores (normally one).
  const byModel = new Map<string, string[]>();
  for (const s of o.stores) byModel.set(s.embeddingModel, [...(byModel.get(s.embeddingModel) ?? []), s.id]);
  for (const [model, storeIds] of byModel) {
    let q: Float32Array;
    try {
      [q] = (await d.embedder.embed(ctx, { model, texts: [o.query], classification: o.classification, ...(o.signal ? { signal: o.signal } : {}) })) as [Float32Array];
    } catch (e) {
      // The embedding upstream failing degrades to keyword search; a refusal (policy, quota, key) does not.
      if (e instanceof AppError && e.status < 500) throw e;
      ctx.log.warn({ err: (e as Error).message, model }, 'knowledge: query embedding failed; keyword results only');
      continue;
    }
    const rows: { id: string; v: Float32Array }[] = [];
    for (const id of storeIds) {
      if (d.vectors) rows.push(...(await d.vectors.rows(d.repo, ctx, id)));
      else rows.push(...(await d.repo.vectors(ctx, [id])).map((r) => ({ id: r.id, v: floatsOf(r.embedding) })));
    }
    rankings.push(topByVector(q, rows, depth));
  }
  const fused = [...fuse(rankings)].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const threshold = o.scoreThreshold ?? 0;
  const candidates = fused.filter(([, s]) => s >= threshold).slice(0, o.filter ? depth : o.limit);
  const hits = new Map((await d.repo.hits(ctx, ids, candidates.map(([id]) => id))).map((h) => [h.id, h]));
  const out: ScoredHit[] = [];
  for (const [id, score] of candidates) {
    const hit = hits.get(id);
    if (!hit) continue;
    if (o.filter && !matches(o.filter, hit.attributes ? (JSON.parse(hit.attributes) as Record<string, unknown>) : {})) continue;
    out.push({ hit, score });
    if (out.length >= o.limit) break;
  }
  return out;
}
