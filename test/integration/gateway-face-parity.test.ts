import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FaultMode } from '../fakes/common.js';
import { sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Face parity (issue 18): the same scenarios through every face (OpenAI Chat Completions,
 * Responses, Anthropic Messages, Ollama) give equivalent outcomes — the same status class and
 * error code where the face has codes, the face's own shape for a failure mid-stream, the same
 * upstream traffic (none for a refusal; redacted text where a content rule redacts) — and
 * exactly one usage record per call, carrying the face.
 */
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv();
  await env.addProvider({ name: 'parity', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0, breakerFailures: 100 } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => env.openai.reset());

interface Face {
  readonly api: string;
  readonly path: string;
  body(model: string, stream: boolean, text: string): unknown;
  /** The error code (or type) of a refusal's body, where the face has one. */
  // Response JSON of four different shapes.
  code(j: any): string | undefined;
  /** The face's own error shape at the end of a stream that failed after it started. */
  readonly streamError: RegExp;
}
const FACES: readonly Face[] = [
  {
    api: 'chat',
    path: '/v1/chat/completions',
    body: (model, stream, text) => ({ model, stream, messages: [{ role: 'user', content: text }] }),
    code: (j) => j?.error?.code,
    streamError: /data: \{"error":\{[^\n]*"code":"provider_stream_error"/,
  },
  {
    api: 'responses',
    path: '/v1/responses',
    body: (model, stream, text) => ({ model, stream, input: text, store: false }),
    code: (j) => j?.error?.code,
    streamError: /event: error\ndata: [^\n]*"code":"provider_stream_error"[\s\S]*event: response\.failed\n/,
  },
  {
    api: 'messages',
    path: '/v1/messages',
    body: (model, stream, text) => ({ model, stream, max_tokens: 50, messages: [{ role: 'user', content: text }] }),
    code: (j) => j?.error?.type,
    streamError: /event: error\ndata: \{"type":"error","error":\{"type":"api_error"/,
  },
  {
    api: 'ollama',
    path: '/ollama/api/chat',
    body: (model, stream, text) => ({ model, stream, messages: [{ role: 'user', content: text }] }),
    code: () => undefined,
    streamError: /\n\{"error":"[^"]+"\}\n$/,
  },
];

const EMAIL = 'jane.doe@example.com';

interface Scenario {
  readonly name: string;
  readonly model?: string;
  readonly headers?: Record<string, string>;
  readonly text?: string;
  /** Only meaningful for a streamed call. */
  readonly streamOnly?: boolean;
  /** Sets the scenario up before the faces run; returns the undo. */
  readonly arrange?: () => Promise<() => Promise<unknown>>;
  /** Queued on the upstream before each face's call. */
  readonly fault?: FaultMode;
  /** The client goes away: mid-stream (streamed), or while the upstream holds its answer. */
  readonly disconnect?: boolean;
  readonly status: number;
  /** The usage record's status. */
  readonly usage: string;
  /** Requests each face's call sends upstream. */
  readonly upstream: 0 | 1;
  /** Refusal codes per face (faces with codes). */
  readonly codes?: Record<string, string>;
  /** Further checks of one face's call: its answer and what the upstream received. */
  // The upstream's parsed request body.
  readonly check?: (f: Face, text: string, headers: Headers, upstreamBody: any) => void;
  /** Further checks of one usage record. */
  readonly record?: (row: Record<string, any>) => void;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'ok', status: 200, usage: 'ok', upstream: 1 },
  {
    name: 'refused by boundary',
    headers: { 'x-enclave-classification': 'restricted' },
    status: 403,
    usage: 'refused',
    upstream: 0,
    codes: { chat: 'policy_boundary_denied', responses: 'policy_boundary_denied', messages: 'permission_error' },
  },
  { name: 'unknown model', model: 'nope', status: 404, usage: 'refused', upstream: 0, codes: { chat: 'model_not_found', responses: 'model_not_found', messages: 'not_found_error' } },
  {
    name: 'quota exceeded',
    arrange: async () => {
      const s = env.app.services;
      await s.metering.plans.upsert(sys(s), { name: 'parity-tiny', limits: { monthly_tokens: 1 } });
      await s.metering.plans.assign(sys(s), env.tenant.tenant.id, 'parity-tiny');
      return () => s.metering.plans.assign(sys(s), env.tenant.tenant.id, null);
    },
    status: 429,
    usage: 'refused',
    upstream: 0,
    codes: { chat: 'quota_exceeded', responses: 'quota_exceeded', messages: 'rate_limit_error' },
    record: (row) => expect(row.errorCode).toBe('quota_exceeded'),
  },
  {
    name: 'redaction',
    text: `write to ${EMAIL} please`,
    arrange: async () => {
      await env.app.services.gateway.policies.write(env.tenant.ctx, { content: { default: { email: 'redact' } } }, Date.now());
      return () => env.app.services.gateway.policies.write(env.tenant.ctx, {}, Date.now());
    },
    status: 200,
    usage: 'ok',
    upstream: 1,
    check: (f, _text, headers, upstream) => {
      const sent = JSON.stringify(upstream.messages);
      expect(sent, f.api).not.toContain(EMAIL);
      expect(sent, f.api).toContain('[REDACTED_EMAIL]');
      expect(headers.get('x-enclave-redacted'), f.api).toBe('email');
    },
    record: (row) => {
      expect(JSON.parse(row.policy)).toMatchObject({ action: 'redact', redacted: true, hits: { email: 1 } });
      expect(JSON.stringify(row)).not.toContain(EMAIL);
    },
  },
  { name: 'upstream 500', fault: 'server_error', status: 502, usage: 'error', upstream: 1 },
  {
    name: 'mid-stream drop',
    streamOnly: true,
    fault: 'drop_mid_stream',
    status: 200,
    usage: 'stream_error',
    upstream: 1,
    check: (f, text) => {
      expect(text, f.api).toContain('Hello'); // what arrived before the drop
      expect(text, f.api).toMatch(f.streamError);
    },
    record: (row) => expect(row).toMatchObject({ errorCode: 'provider_stream_error', tokensEstimated: true }),
  },
  { name: 'client disconnect', disconnect: true, status: 200, usage: 'client_disconnect', upstream: 1, record: (row) => expect(row.httpStatus).toBe(499) },
];

function post(f: Face, s: Scenario, stream: boolean, signal?: AbortSignal): Promise<Response> {
  return fetch(`${env.app.url}${f.path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json', ...s.headers },
    body: JSON.stringify(f.body(s.model ?? 'gpt-fake', stream, s.text ?? 'hello there')),
    ...(signal ? { signal } : {}),
  });
}

/**
 * The client goes away. Streamed: after the answer's first bytes (the upstream sends its next
 * chunks slowly). Whole: while the upstream holds its answer. Either way the upstream request
 * must be aborted.
 */
async function disconnect(f: Face, s: Scenario, stream: boolean): Promise<void> {
  const n = env.openai.requests.length;
  const ac = new AbortController();
  const release = stream ? undefined : env.openai.hold();
  if (stream) env.openai.chunkDelayMs = 200;
  try {
    const pending = post(f, s, stream, ac.signal);
    if (stream) {
      const r = await pending;
      expect(r.status, f.api).toBe(200);
      const first = await r.body!.getReader().read();
      expect(first.done, f.api).toBe(false);
    } else {
      pending.catch(() => {});
      await waitFor(() => env.openai.requests.length > n, { what: `${f.api}: the call reached the upstream` });
    }
    ac.abort();
    await waitFor(() => env.openai.requests[n]?.aborted, { what: `${f.api}: the upstream request aborted` });
  } finally {
    release?.();
    env.openai.chunkDelayMs = 0;
  }
}

describe('the same scenario through every face', () => {
  for (const stream of [false, true]) {
    for (const s of SCENARIOS) {
      if (s.streamOnly && !stream) continue;
      it(`${s.name}${stream ? ' (streamed)' : ''}`, async () => {
        const undo = await s.arrange?.();
        try {
          const before = (await env.usage()).length;
          const codes: Record<string, string | undefined> = {};
          for (const f of FACES) {
            const n = env.openai.requests.length;
            if (s.disconnect) await disconnect(f, s, stream);
            else {
              if (s.fault) env.openai.fail(s.fault);
              const r = await post(f, s, stream);
              const text = await r.text();
              expect(r.status, `${f.api}: ${text}`).toBe(s.status);
              if (s.status !== 200) codes[f.api] = f.code(JSON.parse(text));
              else if (!s.fault) expect(text).toContain('Hello');
              s.check?.(f, text, r.headers, env.openai.requests[n]?.body);
            }
            expect(env.openai.requests.length - n, `${f.api}: upstream requests`).toBe(s.upstream);
            env.openai.assertNoPendingFaults();
          }
          const rows = await waitFor(async () => (await env.usage()).slice(before), { what: 'one usage record per face', until: (x) => x.length >= FACES.length });
          expect(rows).toHaveLength(FACES.length);
          expect(rows.map((u) => u.api).sort()).toEqual(FACES.map((f) => f.api).sort());
          for (const u of rows) {
            expect(u.status, u.api).toBe(s.usage);
            expect(u.stream, u.api).toBe(stream);
            s.record?.(u);
          }
          if (s.codes) expect(codes).toMatchObject(s.codes);
        } finally {
          await undo?.();
        }
      });
    }
  }
});
