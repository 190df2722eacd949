import type { Classification } from '../api.js';

/**
 * The knowledge API's shapes for the web (server/knowledge, /api/knowledge; described in the
 * knowledge API note). Declared here until the server exports them from its contract.
 */
export type FileStatus = 'in_progress' | 'completed' | 'failed' | 'cancelled';

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
  file_counts: { in_progress: number; completed: number; failed: number; cancelled: number; total: number };
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

export const KNOWLEDGE = '/api/knowledge/collections';
export const collectionPath = (id: string, rest = '') => `${KNOWLEDGE}/${encodeURIComponent(id)}${rest}`;
export const DOC_TYPES = '.pdf,.docx,.html,.htm,.md,.markdown,.txt,.csv,application/pdf,application/vnd.openxmlformats-officedocument.wordprocessingml.document,text/html,text/markdown,text/plain,text/csv';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
