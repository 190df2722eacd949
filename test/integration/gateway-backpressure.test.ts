import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Backpressure (issue 18): a client that stops reading must not make Enclave buffer an
 * unbounded stream. The upstream streams a large answer as fast as its connection takes it;
 * the client reads nothing; Enclave must stop pulling from the upstream once the client's
 * socket is full (write() false → 'drain'), so the upstream's own writes block with a bounded
 * amount sent and Enclave's buffered bytes stay small. When the client reads again it gets
 * everything, and the call is one ok usage record. On every face, each with its own encoder.
 */
const FLOOD = 20 * 1024 * 1024;
/** What may be in flight while the client pauses: the kernel's socket buffers on both hops plus a few pieces. */
const SENT_BOUND = 16 * 1024 * 1024;
/** Enclave's own (user-space) buffer for the response: the stream's high-water mark plus a piece or two. */
const BUFFERED_BOUND = 1024 * 1024;
/**
 * The deployment's idle timeout. A pause longer than it must not end the call (checked on one
 * face: the timer logic is the pipeline's, shared by all). Not smaller: on a loaded machine a
 * process descheduled for longer than idleMs wakes with its timer due before it reads the
 * socket, which is indistinguishable from an idle upstream.
 */
const IDLE_MS = 1000;

let env: GatewayEnv;
let last: ServerResponse | undefined;
beforeAll(async () => {
  env = await gatewayEnv();
  // A short idle timeout: a client that pauses longer than it is slow, not an idle upstream.
  await env.addProvider({ name: 'bp', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0, idleMs: IDLE_MS, totalMs: 120_000 } });
  env.app.server.server.on('request', (_req, res: ServerResponse) => {
    last = res;
  });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => env.openai.reset());

const FACES = [
  { api: 'chat', path: '/v1/chat/completions', body: { model: 'gpt-fake', stream: true, messages: [{ role: 'user', content: 'hi' }] }, end: /data: \[DONE\]\n\n$/, pauseBeyondIdle: true },
  { api: 'responses', path: '/v1/responses', body: { model: 'gpt-fake', stream: true, input: 'hi', store: false }, lastEvent: 'response.completed' },
  { api: 'messages', path: '/v1/messages', body: { model: 'gpt-fake', stream: true, max_tokens: 10_000_000, messages: [{ role: 'user', content: 'hi' }] }, lastEvent: 'message_stop' },
  { api: 'ollama', path: '/ollama/api/chat', body: { model: 'gpt-fake', stream: true, messages: [{ role: 'user', content: 'hi' }] }, end: /"done":true,[^\n]*\n$/ },
];

/** A streamed call whose response the client does not read (node:http leaves it paused until read). */
function openPaused(path: string, body: unknown): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${env.app.url}${path}`, { method: 'POST', agent: false, headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' } }, resolve);
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * Reads the rest of a response as bytes (no decoding: the Responses face repeats the whole
 * text in its closing events, ≈ 5 × the flood): how many bytes, the last ones, and the name of
 * the last SSE event.
 */
function readRest(res: http.IncomingMessage): Promise<{ bytes: number; tail: string; lastEvent: string | undefined }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let tail = Buffer.alloc(0);
    let lastEvent: string | undefined;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      // The previous chunk's last bytes in front: an `event:` line may straddle chunks.
      const b = Buffer.concat([tail.subarray(-64), c]);
      const i = b.lastIndexOf('event: ');
      if (i >= 0) {
        const nl = b.indexOf(10, i);
        if (nl > 0) lastEvent = b.toString('latin1', i + 7, nl);
      }
      tail = b.subarray(-4096);
    });
    res.on('end', () => resolve({ bytes, tail: tail.toString('utf8'), lastEvent }));
    res.on('error', reject);
  });
}

describe('a client that stops reading', () => {
  for (const f of FACES) {
    it(`holds the upstream back instead of growing Enclave's buffers (${f.api})`, async () => {
      env.openai.flood = { bytes: FLOOD, piece: 64 * 1024 };
      const before = (await env.usage()).length;
      const res = await openPaused(f.path, f.body);
      expect(res.statusCode).toBe(200);
      // Blocked: the upstream waits for its connection to drain, and nothing moves for several polls.
      let prev = -1;
      let still = 0;
      await waitFor(
        () => {
          const sent = env.openai.floodSent;
          still = env.openai.floodWaiting && last?.writableNeedDrain && sent === prev ? still + 1 : 0;
          prev = sent;
          return { still, sent, upstreamWaits: env.openai.floodWaiting, enclaveWaits: last?.writableNeedDrain, buffered: last?.writableLength, aborted: env.openai.requests[0]?.aborted };
        },
        { what: `${f.api}: the upstream's writes blocked by the paused client`, until: (x) => x.still >= 3, interval: 50, timeout: 60_000 },
      );
      const sent = env.openai.floodSent;
      const buffered = last!.writableLength;
      expect(sent, `${f.api}: bytes the upstream got out while the client paused`).toBeLessThan(SENT_BOUND);
      expect(buffered, `${f.api}: bytes Enclave buffered for the client`).toBeLessThan(BUFFERED_BOUND);
      if (f.pauseBeyondIdle) {
        // A pause longer than the idle timeout is a slow client, not an idle upstream: the call goes on.
        const pausedAt = Date.now();
        await waitFor(() => Date.now() - pausedAt > 2 * IDLE_MS, { what: 'a pause longer than the idle timeout' });
      }
      expect(env.openai.requests[0]?.aborted, `${f.api}: upstream aborted during the pause`).toBe(false);
      const rest = await readRest(res);
      if (f.end) expect(rest.tail, f.api).toMatch(f.end);
      if (f.lastEvent) expect(rest.lastEvent, f.api).toBe(f.lastEvent);
      expect(rest.bytes, f.api).toBeGreaterThan(FLOOD);
      const rows = await waitFor(async () => (await env.usage()).slice(before), { what: 'the usage record', until: (x) => x.length >= 1 });
      expect(rows).toHaveLength(1);
      // The whole answer went through Enclave: the upstream's usage (a quarter of the flood) is the record's.
      expect(rows[0]).toMatchObject({ api: f.api, status: 'ok', completionTokens: FLOOD / 4 });
    }, 180_000);
  }
});
