import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';

/**
 * The gateway's HTTP client for upstream providers: node:http(s) with keep-alive agents shared
 * by every deployment (one pool per origin, reused across calls), a per-call AbortSignal,
 * and nothing else on the way. It is the hot path of every AI call, so it deliberately has
 * no middleware, no retries and no timers of its own: the gateway decides those.
 */
export const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 1024, keepAliveMsecs: 10_000 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 1024, keepAliveMsecs: 10_000 }),
};

export function abortError(): Error {
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}

/** A parsed base URL, split once at configuration time. */
export interface Origin {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** Path prefix without a trailing slash, e.g. `/v1`. */
  readonly base: string;
}

export function parseOrigin(baseUrl: string): Origin {
  const u = new URL(baseUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`Unsupported protocol ${u.protocol}`);
  const secure = u.protocol === 'https:';
  return {
    secure,
    host: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    base: u.pathname.replace(/\/+$/, '') + u.search,
  };
}

/**
 * Sends one request and resolves with the response once its headers arrived. Rejects with
 * the socket error (ECONNREFUSED …) or an AbortError when `signal` fires before that; after
 * that point an abort destroys the response stream (its reader sees the error).
 */
export function send(
  o: Origin,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  body: string | Buffer | undefined,
  signal: AbortSignal | undefined,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const req = (o.secure ? https : http).request(
      { host: o.host, port: o.port, path: o.base + path, method, headers, agent: agents[o.secure ? 'https:' : 'http:'] },
      resolve,
    );
    if (signal) {
      const onAbort = (): void => {
        req.destroy(abortError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    req.on('error', reject);
    req.end(body);
  });
}

/** The whole body of a response (size-capped: a provider answer is never unbounded). */
export function readAll(res: http.IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        res.destroy(new Error(`The provider's answer exceeds ${limit} bytes.`));
        return;
      }
      chunks.push(c);
    });
    res.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    res.once('error', reject);
    // A response cut off (socket closed before the end) emits 'aborted'/'close' without 'end'.
    res.once('close', () => {
      if (!res.complete) reject(Object.assign(new Error('The provider closed the connection mid-answer.'), { code: 'ECONNRESET' }));
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
  buf += dec.end();
  // A final event without its blank line is dropped, as the standard says.
}
