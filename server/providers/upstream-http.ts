import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { withTraceHeaders } from '../telemetry/active.js';
import { EgressRefused, guardedLookup, refusedIpHost, type EgressPolicy } from './egress.js';
import { httpError, isAbort, UpstreamError } from './types.js';

/**
 * The gateway's HTTP client for upstream providers: undici's dispatcher (one keep-alive pool
 * per origin, shared by every deployment and reused across calls), a per-call AbortSignal,
 * and nothing else on the way. It is the hot path of every AI call, so it deliberately has
 * no middleware, no retries and no timers of its own: the gateway decides those (undici's
 * own header and body timeouts are off for that reason).
 *
 * undici (Node's own HTTP client, the engine under its fetch) rather than node:http's
 * ClientRequest: its request API cost ≈ 30 µs less CPU per call here (66–79 µs against
 * 95–111 µs for the same exchange at 16 concurrent calls, bench/README.md); fetch on top of
 * it is what the SDKs used, and cost far more.
 */
const POOL = { keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 } as const;
const CONNECT_TIMEOUT_MS = 30_000;
const dispatcher = new Agent({ ...POOL, connect: { timeout: CONNECT_TIMEOUT_MS } });

/**
 * Deployments under an egress policy (tenant-private ones) get pools of their own whose
 * connector checks every address before connecting: an IP literal directly, a name after it
 * resolves (net.connect does not call `lookup` for IP literals, hence both).
 */
const guarded = new WeakMap<EgressPolicy, Dispatcher>();
function dispatcherFor(policy: EgressPolicy | undefined): Dispatcher {
  if (!policy) return dispatcher;
  let d = guarded.get(policy);
  if (!d) {
    const base = buildConnector({ timeout: CONNECT_TIMEOUT_MS, lookup: guardedLookup(policy) });
    const connect: buildConnector.connector = (opts, cb) => {
      const why = refusedIpHost(policy, opts.hostname);
      if (why) cb(new EgressRefused(opts.hostname.replace(/^\[(.*)\]$/, '$1'), why), null);
      else base(opts, cb);
    };
    d = new Agent({ ...POOL, connect });
    guarded.set(policy, d);
  }
  return d;
}

function ignore(): void {}

function abortError(): Error {
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}

/** A parsed base URL, split once at configuration time. */
export interface Origin {
  /** `http(s)://host:port` — the pool's key. */
  readonly origin: string;
  /** Path prefix without a trailing slash, e.g. `/v1`. */
  readonly base: string;
  /** The shared pool, or the guarded one of an egress policy. */
  readonly dispatcher: Dispatcher;
}

export function parseOrigin(baseUrl: string, egress?: EgressPolicy): Origin {
  const u = new URL(baseUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`Unsupported protocol ${u.protocol}`);
  return { origin: u.origin, base: u.pathname.replace(/\/+$/, '') + u.search, dispatcher: dispatcherFor(egress) };
}

/** An upstream answer whose headers arrived; `body` is a node Readable (async-iterable). */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
}

/**
 * Sends one request and resolves once the answer's headers arrived. Rejects with the
 * connection error (ECONNREFUSED …) or an AbortError when `signal` fires before that; after
 * that point an abort destroys the body stream (its reader sees the error).
 */
export async function send(
  o: Origin,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal | undefined,
): Promise<UpstreamResponse> {
  if (signal?.aborted) throw abortError();
  // W3C traceparent of the upstream try's span when traced (server/telemetry); else the headers as given.
  const r = await o.dispatcher.request({ origin: o.origin, path: o.base + path, method: method as Dispatcher.HttpMethod, headers: withTraceHeaders(headers), body, signal });
  const stream = r.body as unknown as Readable;
  // An abort after the reader stopped (client gone mid-stream) errors a body nobody listens
  // to any more; that must not become an unhandled 'error'. Readers still see errors.
  stream.on('error', ignore);
  return { status: r.statusCode, headers: r.headers, body: stream };
}

/** The whole body of a response (size-capped: a provider answer is never unbounded). */
export function readAll(res: UpstreamResponse, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const body = res.body;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        body.destroy(new Error(`The provider's answer exceeds ${limit} bytes.`));
        return;
      }
      chunks.push(c);
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    body.once('error', reject);
    // A body cut off (socket closed before the end) ends in 'close' without 'end'.
    body.once('close', () => {
      if (!body.readableEnded) reject(Object.assign(new Error('The provider closed the connection mid-answer.'), { code: 'ECONNRESET' }));
    });
  });
}

/** One server-sent event (the `event:` name is `message` unless the stream names it). */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * Server-sent events (the WHATWG event-stream format) from a byte stream: lines end in LF,
 * CR LF or CR; `data:` lines of one event join with LF; an empty line dispatches; comments
 * (`:`) and `id:`/`retry:` are ignored. Chunk boundaries can fall anywhere, including inside
 * a UTF-8 sequence or between CR and LF.
 */
export async function* readSse(src: AsyncIterable<Buffer | string>): AsyncGenerator<SseEvent> {
  const dec = new StringDecoder('utf8');
  let buf = '';
  let data: string[] = [];
  let event = '';
  let lastCr = false;
  let first = true;
  for await (const chunk of src) {
    let text = typeof chunk === 'string' ? chunk : dec.write(chunk);
    if (first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
    }
    if (lastCr && text.charCodeAt(0) === 10) text = text.slice(1);
    lastCr = false;
    buf += text;
    let start = 0;
    for (;;) {
      let i = start;
      const n = buf.length;
      while (i < n) {
        const c = buf.charCodeAt(i);
        if (c === 10 || c === 13) break;
        i++;
      }
      if (i >= n) break;
      const line = buf.slice(start, i);
      if (buf.charCodeAt(i) === 13) {
        if (i + 1 < n) start = buf.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
        else {
          start = i + 1;
          lastCr = true;
        }
      } else start = i + 1;
      if (line.length === 0) {
        if (data.length) yield { event: event || 'message', data: data.length === 1 ? data[0]! : data.join('\n') };
        data = [];
        event = '';
        continue;
      }
      if (line.charCodeAt(0) === 58) continue; // ':' comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') event = value;
    }
    buf = start ? buf.slice(start) : buf;
  }
  // What is left is a final event without its blank line: dropped, as the standard says.
}

/**
 * Newline-delimited JSON values from a byte stream (Ollama's streaming answers). Blank lines
 * are skipped; a line that is not JSON throws a SyntaxError (a provider speaking garbage is
 * an error, not something to skip over).
 */
export async function* readNdjson(src: AsyncIterable<Buffer | string>): AsyncGenerator<unknown> {
  const dec = new StringDecoder('utf8');
  let buf = '';
  for await (const chunk of src) {
    buf += typeof chunk === 'string' ? chunk : dec.write(chunk);
    let start = 0;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n', start)) {
      const line = buf.slice(start, nl).trim();
      start = nl + 1;
      if (line) yield JSON.parse(line);
    }
    buf = start ? buf.slice(start) : buf;
  }
  const last = (buf + dec.end()).trim();
  if (last) yield JSON.parse(last);
}

/**
 * One provider call: sends `body` as JSON and resolves with a 2xx response (headers read,
 * body not yet), or throws the UpstreamError for the status (the provider's own message
 * from an OpenAI `{error:{message}}` or Ollama `{error}` body, cut short) or the connection
 * failure. An abort rejects with the AbortError (the gateway knows why it aborted).
 */
export async function upstreamCall(
  o: Origin,
  method: string,
  path: string,
  extra: Readonly<Record<string, string>>,
  body: unknown,
  signal: AbortSignal,
  accept = 'application/json',
  /** A provider's own reading of an error body (e.g. Azure's content filter); undefined = the generic mapping. */
  classify?: (status: number, body: string) => UpstreamError | undefined,
): Promise<UpstreamResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { accept, ...extra };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  let res: UpstreamResponse;
  try {
    res = await send(o, method, path, headers, payload, signal);
  } catch (e) {
    throw toUpstreamError(e);
  }
  const status = res.status;
  if (status >= 200 && status < 300) return res;
  let raw = '';
  try {
    raw = (await readAll(res, 1024 * 1024)).toString('utf8');
  } catch {
    // The status is what matters; an unreadable error body keeps the status line.
  }
  const own = classify?.(status, raw);
  if (own) throw own;
  const text = raw ? errorMessage(raw) : undefined;
  throw httpError(status, `The provider answered ${status}: ${text ?? `HTTP ${status}`}`, retryAfterHeader(res.headers), text);
}

/**
 * The retry hint of an answer as Retry-After text: `retry-after-ms` (Azure OpenAI, OpenAI)
 * is more precise than `retry-after` (whole seconds) and wins when both are sent.
 */
function retryAfterHeader(h: UpstreamResponse['headers']): string | undefined {
  const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  const ms = Number(first(h['retry-after-ms']));
  if (first(h['retry-after-ms']) !== undefined && Number.isFinite(ms) && ms >= 0) return String(ms / 1000);
  return first(h['retry-after']);
}

/** {@link upstreamCall} for an answer that is one JSON document. */
export async function upstreamJson(
  o: Origin,
  method: string,
  path: string,
  extra: Readonly<Record<string, string>>,
  body: unknown,
  signal: AbortSignal,
  classify?: (status: number, body: string) => UpstreamError | undefined,
): Promise<unknown> {
  return readJson(await upstreamCall(o, method, path, extra, body, signal, 'application/json', classify));
}

/** A whole answer's body as one JSON document: a dropped body or malformed JSON is the provider's failure. */
export async function readJson(res: UpstreamResponse): Promise<unknown> {
  let raw: Buffer;
  try {
    raw = await readAll(res);
  } catch (e) {
    throw toUpstreamError(e);
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new UpstreamError('provider_bad_response', 'The provider sent malformed JSON.');
  }
}

/** The provider's error text from an OpenAI (`{error:{message}}`) or Ollama (`{error}`) body, cut short. */
export function errorMessage(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j?.error === 'string' ? j.error : typeof j?.error?.message === 'string' ? j.error.message : typeof j?.message === 'string' ? j.message : undefined;
    return m?.slice(0, 300);
  } catch {
    return text ? text.slice(0, 300) : undefined;
  }
}

/** A transport failure as the UpstreamError the gateway retries or reports; our own aborts pass through. */
export function toUpstreamError(e: unknown, midStream = false): unknown {
  if (e instanceof UpstreamError || isAbort(e)) return e;
  // undici refusing what we asked it to send is our error, not the provider's: it must not
  // count against the deployment (the gateway reports it as internal).
  if ((e as { code?: unknown } | null)?.code === 'UND_ERR_INVALID_ARG') return e;
  if (e instanceof SyntaxError) return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_bad_response', 'The provider sent malformed JSON.');
  if (midStream) return new UpstreamError('provider_stream_error', 'The provider connection dropped mid-stream.');
  if (e instanceof EgressRefused) return new UpstreamError('provider_connection_error', `Could not reach the provider: ${e.message}.`);
  const m = (e as Error)?.message ?? String(e);
  return new UpstreamError('provider_connection_error', `Could not reach the provider (${m.slice(0, 200)}).`);
}

/**
 * After a stream's last event (`[DONE]`, Ollama's `done`), reads what is left of the body so
 * the socket goes back to the pool before the call returns (a next call would otherwise open
 * a second connection). A server that keeps the body open longer than `graceMs` loses the
 * connection instead of holding up the answer.
 */
export function finishBody(res: UpstreamResponse, graceMs = 1000): Promise<void> {
  const body = res.body;
  // The connection is free once the body's buffered rest has been read to its end.
  if (body.readableEnded || body.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      body.off('end', done);
      body.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      body.destroy();
      done();
    }, graceMs);
    body.once('end', done);
    body.once('close', done);
    body.resume();
  });
}
