import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { abortError, agents } from './upstream-http.js';

const EMPTY = Buffer.alloc(0);

/**
 * A small `fetch` over node:http(s) with the shared keep-alive agents, handed to the Ollama SDK.
 * The global fetch (undici) costs about a millisecond per call on this machine; this path
 * keeps the gateway's added latency within budget. Supports what the SDKs use: method,
 * headers, string/bytes bodies, AbortSignal.
 *
 * Answers come back in three shapes, all read through the `Response` interface the SDKs use:
 * - whole JSON answers (results and errors): collected with node streams
 *   and handed over as one buffer in a {@link BufferedResponse} — constructing an undici
 *   `Response` (a web `ReadableStream` per body, web `Headers`) cost the SDK more than the
 *   HTTP exchange itself;
 * - `text/event-stream` (the openai SDK): a {@link BufferedResponse} whose `body` is the
 *   node response itself (async-iterable, which is all the SDK's SSE reader needs), so tokens
 *   are relayed as they arrive without a web stream in between;
 * - anything else (Ollama's NDJSON, read with `getReader()`): a real `Response` over
 *   `Readable.toWeb`.
 */

/** Request headers as a plain object, without copying through a new `Headers`. */
function plainHeaders(h: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  if (h instanceof Headers) {
    h.forEach((v, k) => {
      out[k] = v;
    });
  } else if (Array.isArray(h)) {
    for (const [k, v] of h) out[k!.toLowerCase()] = out[k!.toLowerCase()] === undefined ? v! : `${out[k!.toLowerCase()]}, ${v}`;
  } else {
    for (const k of Object.keys(h)) {
      const v = (h as Record<string, string | undefined>)[k];
      if (v !== undefined) out[k.toLowerCase()] = String(v);
    }
  }
  return out;
}

export const nodeFetch: typeof fetch = (input, init) =>
  new Promise<Response>((resolve, reject) => {
    const url = typeof input === 'string' ? new URL(input) : input instanceof URL ? input : new URL(input.url);
    const secure = url.protocol === 'https:';
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      // Streams / FormData: leave them to the platform fetch.
      fetch(input, init).then(resolve, reject);
      return;
    }
    const signal = init?.signal ?? undefined;
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : abortError());
      return;
    }
    const method = init?.method ?? 'GET';
    const req = (secure ? https : http).request(url, { method, headers: plainHeaders(init?.headers), agent: agents[secure ? 'https:' : 'http:'] }, (res) => {
      const status = res.statusCode ?? 500;
      const headers = new NodeHeaders(res.headers);
      const statusText = res.statusMessage ?? '';
      if (status === 204 || status === 304 || method === 'HEAD') {
        res.resume();
        resolve(new BufferedResponse(url.href, status, statusText, headers, null) as unknown as Response);
        return;
      }
      const type = res.headers['content-type'] ?? '';
      if (type.startsWith('text/event-stream')) {
        resolve(new BufferedResponse(url.href, status, statusText, headers, res) as unknown as Response);
        return;
      }
      if (!type.startsWith('application/json')) {
        resolve(new Response(Readable.toWeb(res) as ReadableStream, { status, statusText, headers: headers.toHeaders() }));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new BufferedResponse(url.href, status, statusText, headers, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)) as unknown as Response));
      res.on('error', reject);
    });
    if (signal) {
      const onAbort = (): void => {
        req.destroy(abortError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    req.on('error', reject);
    req.end(body ?? undefined);
  });

/** Read-only `Headers` over node's already-parsed (lower-case, joined) response headers. */
class NodeHeaders {
  constructor(private readonly h: http.IncomingHttpHeaders) {}
  get(name: string): string | null {
    const v = this.h[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
  }
  has(name: string): boolean {
    return this.h[name.toLowerCase()] !== undefined;
  }
  getSetCookie(): string[] {
    const v = this.h['set-cookie'];
    return v ? [...v] : [];
  }
  *entries(): IterableIterator<[string, string]> {
    for (const k of Object.keys(this.h).sort()) {
      const v = this.get(k);
      if (v !== null) yield [k, v];
    }
  }
  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
  forEach(cb: (value: string, key: string, parent: NodeHeaders) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this);
  }
  // A response's headers are immutable (the Fetch standard's "immutable" guard).
  set(): never {
    throw new TypeError('immutable');
  }
  append(): never {
    throw new TypeError('immutable');
  }
  delete(): never {
    throw new TypeError('immutable');
  }
  toHeaders(): Headers {
    const out = new Headers();
    for (const [k, v] of Object.entries(this.h)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) out.append(k, x);
      else out.set(k, v);
    }
    return out;
  }
}

/**
 * The `Response` surface the SDKs read (status, ok, headers, url, json/text/arrayBuffer/
 * bytes/blob, body, clone) over a buffer or a node stream. A body is read once, as with fetch.
 */
export class BufferedResponse {
  readonly type = 'basic';
  readonly redirected = false;
  bodyUsed = false;
  private web: ReadableStream<Uint8Array> | undefined;

  constructor(
    readonly url: string,
    readonly status: number,
    readonly statusText: string,
    readonly headers: NodeHeaders,
    private readonly src: Buffer | http.IncomingMessage | null,
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** A buffered body as a web stream (made on first use), or the node stream itself (async-iterable). */
  get body(): ReadableStream<Uint8Array> | http.IncomingMessage | null {
    const s = this.src;
    if (s === null) return null;
    if (!Buffer.isBuffer(s)) return s;
    return (this.web ??= new Response(s).body!);
  }

  private async take(): Promise<Buffer> {
    if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
    this.bodyUsed = true;
    const s = this.src;
    if (s === null) return EMPTY;
    if (Buffer.isBuffer(s)) return s;
    const chunks: Buffer[] = [];
    for await (const c of s) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async text(): Promise<string> {
    const s = (await this.take()).toString('utf8');
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s; // UTF-8 decode drops a BOM, as fetch does
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.take();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  async bytes(): Promise<Uint8Array> {
    return new Uint8Array(await this.take());
  }
  async blob(): Promise<Blob> {
    return new Blob([await this.take()], { type: this.headers.get('content-type') ?? '' });
  }
  clone(): BufferedResponse {
    if (this.bodyUsed || (this.src !== null && !Buffer.isBuffer(this.src))) throw new TypeError('Response.clone: body is unusable or a stream');
    return new BufferedResponse(this.url, this.status, this.statusText, this.headers, this.src);
  }
}
