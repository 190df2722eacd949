import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/**
 * A small `fetch` over node:http(s) with keep-alive agents, handed to the provider SDKs.
 * The global fetch (undici) costs about a millisecond per call on this machine; this path
 * keeps the gateway's added latency within budget. Supports what the SDKs use: method,
 * headers, string/bytes bodies, AbortSignal; the response body is a web stream.
 */
const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 1024, keepAliveMsecs: 10_000 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 1024, keepAliveMsecs: 10_000 }),
};

export const nodeFetch: typeof fetch = (input, init) =>
  new Promise<Response>((resolve, reject) => {
    const url = typeof input === 'string' ? new URL(input) : input instanceof URL ? input : new URL(input.url);
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const body = init?.body;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      // Streams / FormData: leave them to the platform fetch.
      fetch(input, init).then(resolve, reject);
      return;
    }
    const signal = init?.signal ?? undefined;
    if (signal?.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
      return;
    }
    const req = (secure ? https : http).request(
      url,
      { method: init?.method ?? 'GET', headers, agent: agents[secure ? 'https:' : 'http:'] },
      (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          if (Array.isArray(v)) for (const x of v) h.append(k, x);
          else h.set(k, v);
        }
        const status = res.statusCode ?? 500;
        const meta = { status, statusText: res.statusMessage ?? '', headers: h };
        const empty = status === 204 || status === 304 || init?.method === 'HEAD';
        if (empty) {
          res.resume();
          resolve(new Response(null, meta));
          return;
        }
        // Whole JSON answers are collected with node streams and handed over as one buffer:
        // a web-stream body costs the SDK several times more per call. Event streams and
        // NDJSON stay streams so tokens are relayed as they arrive.
        const type = res.headers['content-type'] ?? '';
        if (type.startsWith('application/json')) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(new Response(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), meta)));
          res.on('error', reject);
          return;
        }
        resolve(new Response(Readable.toWeb(res) as ReadableStream, meta));
      },
    );
    const onAbort = (): void => {
      req.destroy(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
