/**
 * The UI's one way to talk to the server: same-origin fetch with the session cookie, the
 * CSRF header on state-changing calls, and errors from the API's envelope
 * ({"error":{"message","type","code","param"}}) surfaced as ApiError.
 */
import type { ErrorCode } from '../../server/contract.js';
export type { AdoptionView, AssistantView, ChatMessageView, ChatModelsView, ConversationView, ErrorCode, FeedbackSummaryView, FeedbackView, LimitRefusalDetails, PromptVersionView, PromptView } from '../../server/contract.js';

/**
 * `code` is the server's closed union (server/contract.ts): checking for a code the server
 * never sends is a type error. Codes the UI makes up for transport failures are `http_<status>`.
 */
export type ClientErrorCode = ErrorCode | `http_${number}` | 'stream_error';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ClientErrorCode,
    message: string,
    readonly param?: string | null,
    /** The envelope's extra fields (e.g. a quota refusal's level, limit and reset). */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
export function setCsrf(token: string | null): void {
  csrfToken = token;
}

/** Listeners told when the server says the session is gone (expired, ended elsewhere). */
const sessionLost = new Set<(code: string) => void>();
export function onSessionLost(fn: (code: string) => void): () => void {
  sessionLost.add(fn);
  return () => sessionLost.delete(fn);
}

const SESSION_CODES = new Set<ClientErrorCode>(['auth_session_expired', 'auth_session_invalid', 'auth_required']);

async function toError(res: Response): Promise<ApiError> {
  let code: ClientErrorCode = `http_${res.status}`;
  let message = res.statusText || `Request failed (${res.status})`;
  let param: string | null = null;
  let details: Record<string, unknown> = {};
  try {
    const body = (await res.json()) as { error?: { code?: ErrorCode; message?: string; param?: string | null } & Record<string, unknown> };
    if (body.error) {
      const { code: c, message: m, param: p, type: _type, ...rest } = body.error;
      code = c ?? code;
      message = m ?? message;
      param = p ?? null;
      details = rest;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message, param, details);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Do not announce a lost session (the sign-in page probes the session itself). */
  quiet?: boolean;
}

export async function raw(path: string, opts: RequestOptions = {}): Promise<Response> {
  const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST');
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  // A File/Blob goes as it is (chat image uploads); anything else as JSON.
  const binary = opts.body instanceof Blob;
  if (opts.body !== undefined && !binary) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(opts.body !== undefined ? { body: binary ? (opts.body as Blob) : JSON.stringify(opts.body) } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (!res.ok) {
    const err = await toError(res);
    if (!opts.quiet && res.status === 401 && SESSION_CODES.has(err.code)) for (const fn of sessionLost) fn(err.code);
    throw err;
  }
  return res;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await raw(path, opts);
  // 204 No Content (deletes, dismissals) has no body to parse.
  if (res.status === 204 || res.headers.get('content-length') === '0') return undefined as T;
  return (await res.json()) as T;
}

/**
 * Reads a text/event-stream body: calls onEvent(name, data) per event ("message" when the
 * event has no name). Returns when the stream ends; an abort rejects with AbortError.
 */
export async function readSse(res: Response, onEvent: (event: string, data: string) => void): Promise<void> {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i: number;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) onEvent(event, data.join('\n'));
    }
  }
}

// --- shapes the UI reads ---
export type { Boundary, Classification, Role, Scope } from '../../server/contract.js';
export { CLASSIFICATIONS, ROLES, SCOPES } from '../../server/contract.js';
import type { Role } from '../../server/contract.js';
export interface SessionTenant {
  id: string;
  slug: string;
  name: string;
  role: Role;
  status: string;
}
export interface Session {
  object: 'session';
  user: { id: string; email: string; name: string | null; platform_admin: boolean };
  tenant: { id: string; slug: string; status: string } | null;
  role: Role | null;
  tenants: SessionTenant[];
  csrf_token: string;
  expires_at: number;
}
export interface ListPage<T> {
  object: 'list';
  data: T[];
  next_cursor: string | null;
}

/**
 * A multipart upload with progress (fetch has no upload progress): XMLHttpRequest with the
 * session cookie and the CSRF header; errors from the API's envelope like api().
 */
export function uploadForm<T>(path: string, form: FormData, onProgress: (fraction: number) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('accept', 'application/json');
    if (csrfToken) xhr.setRequestHeader('x-csrf-token', csrfToken);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => reject(new Error('The upload failed: the connection was lost.'));
    xhr.onload = () => {
      const res = new Response(xhr.responseText, { status: xhr.status, headers: { 'content-type': xhr.getResponseHeader('content-type') ?? 'application/json' } });
      if (xhr.status >= 200 && xhr.status < 300) resolve(res.json() as Promise<T>);
      else void toError(res).then(reject);
    };
    xhr.send(form);
  });
}
