import type { Classification, RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import type { GatewayService } from '../gateway/service.js';

/**
 * Embeddings for knowledge, THROUGH the gateway pipeline (issue 20): the same call as
 * POST /v1/embeddings from the ingesting principal — authorize, the data-boundary policy at
 * the file's classification (a confidential file is only embedded by a deployment that
 * classification allows), content rules, plan limits and quotas, retries and fallback,
 * one usage record per call (api `knowledge`, workflow `knowledge`). Inputs go in batches
 * of EMBED_BATCH texts. Vectors come back normalized to unit length (cosine = dot product).
 */
export const EMBED_BATCH = 64;

export interface Embedder {
  embed(ctx: RequestContext, o: { model: string; texts: readonly string[]; classification: Classification; signal?: AbortSignal }): Promise<Float32Array[]>;
}

export function gatewayEmbedder(svc: Pick<GatewayService, 'run'>): Embedder {
  return {
    async embed(ctx, o) {
      const out: Float32Array[] = [];
      for (let i = 0; i < o.texts.length; i += EMBED_BATCH) {
        const input = o.texts.slice(i, i + EMBED_BATCH);
        const r = await svc.run(ctx, {
          api: 'knowledge',
          endpoint: 'embeddings',
          body: { model: o.model, input },
          classification: o.classification,
          workflow: 'knowledge',
          signal: o.signal,
        });
        if (r.kind === 'error') throw r.error;
        if (r.kind !== 'whole') throw new AppError(502, 'embedding_failed', 'The embedding call did not return a whole answer.');
        const data = (r.body as { data?: { index?: number; embedding?: unknown }[] }).data;
        if (!Array.isArray(data) || data.length !== input.length) {
          throw new AppError(502, 'embedding_failed', `The embedding model ${o.model} returned ${Array.isArray(data) ? data.length : 'no'} vectors for ${input.length} inputs.`);
        }
        const sorted = [...data].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
        for (const d of sorted) out.push(normalize(toFloats(d.embedding, o.model)));
      }
      return out;
    },
  };
}

function toFloats(e: unknown, model: string): Float32Array {
  if (Array.isArray(e) && e.length > 0 && e.every((x) => typeof x === 'number')) return Float32Array.from(e as number[]);
  if (typeof e === 'string') {
    // base64 of little-endian float32 (encoding_format base64)
    const b = Buffer.from(e, 'base64');
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  throw new AppError(502, 'embedding_failed', `The embedding model ${model} returned a vector that is not a list of numbers.`);
}

export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
}

/** A vector as stored (little-endian float32 bytes; a BLOB on SQLite, bytea on PostgreSQL). */
export function toBlob(v: Float32Array): Buffer {
  const b = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b;
}

/** Dot product of a query vector with a stored vector, read in place (no copy of the blob). */
export function dotBlob(q: Float32Array, blob: Buffer): number {
  const n = Math.min(q.length, blob.length >>> 2);
  let s = 0;
  for (let i = 0; i < n; i++) s += q[i]! * blob.readFloatLE(i * 4);
  return s;
}
