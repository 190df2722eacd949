import type { Classification } from '../context.js';
import type { ChunkHit, FileStatus, StoreFileRow, VectorStoreRow } from '../db/repos/knowledge.js';

/**
 * The one place knowledge rows become API output: OpenAI shapes for /v1 (seconds), the
 * console's shapes for /api/knowledge (milliseconds, plus what the UI needs). The web imports
 * the console types from here (/work/briefs/s7/knowledge-api.md).
 */
export type FileCounts = Record<FileStatus, number>;
const EMPTY: FileCounts = { in_progress: 0, completed: 0, failed: 0, cancelled: 0 };
const sec = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));
const json = <T>(s: string | null): T | null => (s ? (JSON.parse(s) as T) : null);

export function openaiVectorStore(v: VectorStoreRow, counts: FileCounts | undefined) {
  const c = counts ?? EMPTY;
  return {
    id: v.id,
    object: 'vector_store' as const,
    created_at: sec(v.createdAt)!,
    name: v.name,
    description: v.description,
    usage_bytes: v.usageBytes,
    file_counts: { ...c, total: c.in_progress + c.completed + c.failed + c.cancelled },
    status: (c.in_progress > 0 ? 'in_progress' : 'completed') as 'in_progress' | 'completed',
    expires_after: null,
    expires_at: null,
    last_active_at: sec(v.lastActiveAt),
    metadata: json<Record<string, string>>(v.metadata) ?? {},
    // Enclave's own fields (the OpenAI SDK ignores unknown fields).
    classification: v.classification,
    sharing: v.sharing,
    embedding_model: v.embeddingModel,
  };
}

export function openaiStoreFile(f: StoreFileRow) {
  return {
    id: f.fileId,
    object: 'vector_store.file' as const,
    created_at: sec(f.createdAt)!,
    vector_store_id: f.vectorStoreId,
    status: f.status,
    last_error: json<{ code: string; message: string }>(f.lastError),
    usage_bytes: f.usageBytes,
    attributes: json<Record<string, string | number | boolean>>(f.attributes) ?? {},
    chunking_strategy: { type: 'static' as const, static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 } },
    classification: f.classification,
  };
}

export interface KnowledgeCollection {
  id: string;
  name: string;
  description: string | null;
  sharing: 'tenant' | 'user';
  owner_user_id: string | null;
  mine: boolean;
  can_write: boolean;
  classification: Classification;
  embedding_model: string;
  file_counts: FileCounts & { total: number };
  usage_bytes: number;
  created_at: number;
  last_active_at: number | null;
}

export interface KnowledgeFile {
  id: string;
  collection_id: string;
  filename: string;
  bytes: number;
  content_type: string;
  status: FileStatus;
  last_error: { code: string; message: string } | null;
  classification: Classification;
  pages: number | null;
  chunks: number;
  created_at: number;
}

export interface KnowledgeHit {
  collection_id: string;
  file_id: string;
  filename: string;
  chunk_index: number;
  page: number | null;
  text: string;
  score: number;
}

export interface Citation extends KnowledgeHit {
  n: number;
}

export function collection(v: VectorStoreRow, counts: FileCounts | undefined, o: { mine: boolean; canWrite: boolean }): KnowledgeCollection {
  const c = counts ?? EMPTY;
  return {
    id: v.id,
    name: v.name,
    description: v.description,
    sharing: v.sharing === 'tenant' ? 'tenant' : 'user',
    owner_user_id: v.ownerUserId,
    mine: o.mine,
    can_write: o.canWrite,
    classification: v.classification,
    embedding_model: v.embeddingModel,
    file_counts: { ...c, total: c.in_progress + c.completed + c.failed + c.cancelled },
    usage_bytes: v.usageBytes,
    created_at: v.createdAt,
    last_active_at: v.lastActiveAt,
  };
}

export function knowledgeFile(f: StoreFileRow, file: { filename: string; bytes: number } | undefined): KnowledgeFile {
  return {
    id: f.fileId,
    collection_id: f.vectorStoreId,
    filename: file?.filename ?? '',
    bytes: file?.bytes ?? 0,
    content_type: f.contentType,
    status: f.status,
    last_error: json<{ code: string; message: string }>(f.lastError),
    classification: f.classification,
    pages: f.pages,
    chunks: f.chunkCount,
    created_at: f.createdAt,
  };
}

export function knowledgeHit(h: ChunkHit, score: number): KnowledgeHit {
  return { collection_id: h.vectorStoreId, file_id: h.fileId, filename: h.filename, chunk_index: h.chunkIndex, page: h.page, text: h.text, score };
}
