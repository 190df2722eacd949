import { randomBytes } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { OtlpReceiver, type ReceivedSpan } from '../fakes/otlp-receiver.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { FAST } from './gateway-env.js';

/**
 * OpenTelemetry traces (issue 25) into a local OTLP receiver (protobuf, the default encoding):
 * a chat call through the official openai SDK with the client's `traceparent` is one trace —
 * server span (child of the client's span) → call span with the GenAI attributes → plan,
 * admission and attempt stages → one client span per upstream try, whose context the upstream
 * received as its `traceparent`. No attribute anywhere carries the prompt, the answer, the API
 * key or the provider's key. Streams, refusals, retries and worker jobs are traced too.
 */
const PROMPT = `the quarterly numbers for zebra-${randomBytes(6).toString('hex')} are confidential`;
const PROVIDER_KEY = `sk-upstream-${randomBytes(12).toString('hex')}`;
const SERVER = 2;
const CLIENT = 3;
const CONSUMER = 5;

let app: TestApp;
let upstream: FakeOpenAI;
let rx: OtlpReceiver;
let client: OpenAI;
let secret: string;
let tenantId: string;
let worker: JobWorker | undefined;

beforeAll(async () => {
  rx = await new OtlpReceiver().start();
  upstream = await new FakeOpenAI().start();
  upstream.apiKey = PROVIDER_KEY;
  app = await startTestApp({ entitlements: unrestricted, env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_BSP_SCHEDULE_DELAY: '20', OTEL_SERVICE_NAME: 'enclave-test' } });
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'cloud-1', kind: 'openai', base_url: `${upstream.url}/v1`, api_key: PROVIDER_KEY, boundary: 'private', models: ['gpt-fake'], options: FAST });
  const tenant = await seedTenant(s, 'otel', ['owner', 'member']);
  tenantId = tenant.tenant.id;
  // Limits on (far from reached): the call span says how much was left when it was admitted.
  await s.metering.plans.upsert(sys(s), { name: 'otel', limits: { requests_per_minute: 100_000 } });
  await s.metering.plans.assign(sys(s), tenantId, 'otel');
  const k = await s.identity.keys.create(tenant.ctx, { name: 'otel', ownerUserId: tenant.users.member!.id, scopes: ['models:invoke', 'embeddings:create', 'batches:write'] });
  secret = k.secret;
  client = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: secret, maxRetries: 0 });
});

afterAll(async () => {
  await worker?.close();
  await app?.close();
  await upstream?.close();
  await rx?.close();
});

const hex = (n: number): string => randomBytes(n).toString('hex');

/** The spans of one trace, once the one named `last` (ended last) has arrived. */
async function traceOf(traceId: string, done: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
  return waitFor(() => rx.spans.filter((s) => s.traceId === traceId), { until: done, what: `the spans of trace ${traceId}` });
}

function only(spans: ReceivedSpan[], pred: (s: ReceivedSpan) => boolean, what: string): ReceivedSpan {
  const found = spans.filter(pred);
  expect(found, what).toHaveLength(1);
  return found[0]!;
}

/** Every string a span carries (name, attributes, resource, events, status message), flattened. */
function strings(spans: ReceivedSpan[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) (out.push(k), walk(x));
  };
  for (const s of spans) walk([s.name, s.attributes, s.resource, s.events, s.eventAttributes, s.statusMessage]);
  return out;
}

function expectNoSecrets(spans: ReceivedSpan[], answer: string): void {
  const all = strings(spans);
  expect(all.length).toBeGreaterThan(spans.length * 5);
  for (const needle of [PROMPT, 'zebra-', answer, secret, secret.slice(0, 12), PROVIDER_KEY, 'Bearer']) {
    const hits = all.filter((s) => s.includes(needle));
    expect(hits, `a span attribute carries ${needle.slice(0, 16)}…`).toEqual([]);
  }
}

describe('OpenTelemetry traces over OTLP/HTTP', () => {
  it("a chat call with the client's traceparent: one trace, the right parents, GenAI attributes, the attempt's traceparent upstream, no prompt, answer or key", async () => {
    const traceId = hex(16);
    const clientSpan = hex(8);
    upstream.reset();
    const r = await client.chat.completions.create(
      { model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }], max_tokens: 50, temperature: 0.2 },
      { headers: { traceparent: `00-${traceId}-${clientSpan}-01`, tracestate: 'acme=zebra-in-tracestate', 'x-enclave-classification': 'internal' } },
    );
    const answer = r.choices[0]!.message.content!;
    expect(answer.length).toBeGreaterThan(3);
    const spans = await traceOf(traceId, (ss) => ss.some((s) => s.kind === SERVER));

    const http = only(spans, (s) => s.kind === SERVER, 'server span');
    expect(http.name).toBe('POST /v1/chat/completions');
    expect(http.parentSpanId).toBe(clientSpan);
    expect(http.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/v1/chat/completions', 'http.response.status_code': 200, 'enclave.tenant.id': tenantId });
    expect(http.resource['service.name']).toBe('enclave-test');
    expect(http.encoding).toBe('protobuf');

    const call = only(spans, (s) => s.name === 'chat gpt-fake' && s.kind === 1, 'call span');
    expect(call.parentSpanId).toBe(http.spanId);
    const usage = r.usage!;
    expect(call.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-fake',
      'gen_ai.response.model': 'gpt-fake',
      'gen_ai.request.max_tokens': 50,
      'gen_ai.request.temperature': 0.2,
      'gen_ai.usage.input_tokens': usage.prompt_tokens,
      'gen_ai.usage.output_tokens': usage.completion_tokens,
      'gen_ai.response.finish_reasons': ['stop'],
      'enclave.tenant.id': tenantId,
      'enclave.classification': 'internal',
      'enclave.boundary': 'private',
      'enclave.deployment': 'cloud-1',
      'enclave.status': 'ok',
      'enclave.api': 'chat',
    });
    expect(call.status).toBe(0);
    const left = call.attributes['enclave.ratelimit.remaining_requests'];
    expect(typeof left === 'number' && left < 100_000 && left >= 0, `remaining requests ${left}`).toBe(true);

    const stages = spans.filter((s) => s.name.startsWith('enclave.'));
    expect(stages.map((s) => s.name).sort()).toEqual(['enclave.admission', 'enclave.attempt', 'enclave.plan']);
    for (const s of stages) expect(s.parentSpanId, s.name).toBe(call.spanId);
    const attempt = stages.find((s) => s.name === 'enclave.attempt')!;

    const up = only(spans, (s) => s.kind === CLIENT, 'upstream span');
    expect(up.parentSpanId).toBe(attempt.spanId);
    expect(up.attributes).toMatchObject({ 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-fake', 'gen_ai.response.model': 'gpt-fake', 'enclave.deployment': 'cloud-1', 'server.address': '127.0.0.1', 'enclave.try': 1 });
    // The upstream saw our attempt span as its parent: the provider's own trace joins this one.
    expect(upstream.requests).toHaveLength(1);
    expect(upstream.requests[0]!.headers.traceparent).toBe(`00-${traceId}-${up.spanId}-01`);
    // The client's tracestate is its own free text: it does not go past the content rules to a provider.
    expect(upstream.requests[0]!.headers.tracestate).toBeUndefined();

    expectNoSecrets(spans, answer);
  });

  it('a streamed call: the server span lasts until the stream ends, the call span has the usage and finish reason', async () => {
    const traceId = hex(16);
    const stream = await client.chat.completions.create(
      { model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }], stream: true, stream_options: { include_usage: true } },
      { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } },
    );
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    const spans = await traceOf(traceId, (ss) => ss.some((s) => s.kind === SERVER));
    const http = only(spans, (s) => s.kind === SERVER, 'server span');
    const call = only(spans, (s) => s.name === 'chat gpt-fake' && s.kind === 1, 'call span');
    expect(call.attributes).toMatchObject({ 'enclave.stream': true, 'gen_ai.response.finish_reasons': ['stop'], 'gen_ai.usage.input_tokens': usage!.prompt_tokens, 'gen_ai.usage.output_tokens': usage!.completion_tokens, 'enclave.status': 'ok' });
    expect(typeof call.attributes['enclave.ttft_ms']).toBe('number');
    expect(call.parentSpanId).toBe(http.spanId);
    const up = only(spans, (s) => s.kind === CLIENT, 'upstream span');
    expect(up.attributes['gen_ai.response.finish_reasons']).toEqual(['stop']);
    expectNoSecrets(spans, text);
  });

  it('a client that goes away mid-stream: every span of the call still ends (client_disconnect), none left open', async () => {
    const traceId = hex(16);
    upstream.reset();
    upstream.chunkDelayMs = 150;
    try {
      const ac = new AbortController();
      const stream = await client.chat.completions.create(
        { model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }], stream: true },
        { headers: { traceparent: `00-${traceId}-${hex(8)}-01` }, signal: ac.signal },
      );
      try {
        for await (const _c of stream) ac.abort();
      } catch {
        /* aborted */
      }
      // Server span, call span, three stages and the upstream try: all six arrive (only ended spans are exported).
      const spans = await traceOf(traceId, (ss) => ss.length >= 6 && ss.some((s) => s.kind === SERVER));
      expect(spans).toHaveLength(6);
      const call = only(spans, (s) => s.kind === 1 && s.name === 'chat gpt-fake', 'call span');
      expect(call.attributes).toMatchObject({ 'enclave.status': 'client_disconnect', 'error.type': 'client_disconnect' });
      expect(call.status).toBe(0); // the client's doing, not a failure of Enclave
      expect(only(spans, (s) => s.kind === CLIENT, 'upstream try').status).toBe(0);
    } finally {
      upstream.chunkDelayMs = 0;
    }
  });

  it('a client that goes away before the first byte: the upstream try ends as client_disconnect, not as a provider failure', async () => {
    const traceId = hex(16);
    upstream.reset();
    upstream.fail({ mode: 'slow_first_token', delayMs: 3000 });
    const ac = new AbortController();
    const pending = client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` }, signal: ac.signal });
    await waitFor(() => upstream.requests.length === 1, { what: 'the upstream request in flight' });
    ac.abort();
    await pending.catch(() => undefined);
    const spans = await traceOf(traceId, (ss) => ss.length >= 6 && ss.some((s) => s.kind === SERVER));
    const up = only(spans, (s) => s.kind === CLIENT, 'upstream try');
    expect(up.attributes['error.type']).toBe('client_disconnect');
    expect(up.status).toBe(0);
    expect(only(spans, (s) => s.kind === 1 && s.name === 'chat gpt-fake', 'call').attributes['enclave.status']).toBe('client_disconnect');
    upstream.assertNoPendingFaults();
  });

  it('a retried upstream try and a refusal: each try is a span (the failed one with its code only), a refusal has no upstream span', async () => {
    upstream.fail('server_error');
    const traceId = hex(16);
    await client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    upstream.assertNoPendingFaults();
    const spans = await traceOf(traceId, (ss) => ss.some((s) => s.kind === SERVER));
    const tries = spans.filter((s) => s.kind === CLIENT).sort((a, b) => Number(a.attributes['enclave.try']) - Number(b.attributes['enclave.try']));
    expect(tries).toHaveLength(2);
    expect(tries[0]!.attributes).toMatchObject({ 'error.type': 'provider_server_error', 'http.response.status_code': 500 });
    expect(tries[0]!.status).toBe(2);
    expect(tries[1]!.status).toBe(0);
    expect(only(spans, (s) => s.kind === 1 && s.name.startsWith('chat'), 'call').attributes['enclave.attempts']).toBe(2);

    // Restricted data may only go to local deployments: refused before anything goes upstream.
    const refused = hex(16);
    const before = upstream.requests.length;
    const e = await client.chat.completions
      .create({ model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: `00-${refused}-${hex(8)}-01`, 'x-enclave-classification': 'restricted' } })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect(upstream.requests.length).toBe(before);
    const rs = await traceOf(refused, (ss) => ss.some((s) => s.kind === SERVER));
    expect(rs.filter((s) => s.kind === CLIENT)).toEqual([]);
    const rcall = only(rs, (s) => s.kind === 1 && s.name.startsWith('chat'), 'refused call');
    expect(rcall.attributes['enclave.status']).toBe('refused');
    expect(String(rcall.attributes['error.type'])).toMatch(/^policy_/);
    expect(only(rs, (s) => s.kind === SERVER, 'server').attributes['http.response.status_code']).toBe(403);
    expectNoSecrets([...spans, ...rs], 'Hello from the fake model');
  });

  it("a client's unsampled traceparent: nothing is exported (parent-based sampling), the trace id still goes upstream, unsampled", async () => {
    const traceId = hex(16);
    upstream.reset();
    await client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: `00-${traceId}-${hex(8)}-00` } });
    expect(upstream.requests[0]!.headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-00$`));
    // A sampled call after it is exported; by then the unsampled one would have been too.
    const marker = hex(16);
    await client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'marker' }] }, { headers: { traceparent: `00-${marker}-${hex(8)}-01` } });
    await traceOf(marker, (ss) => ss.some((s) => s.kind === SERVER));
    expect(rx.spans.filter((s) => s.traceId === traceId)).toEqual([]);
  });

  it('every face is traced the same way: Responses, Anthropic Messages, the Ollama API', async () => {
    const faces: [string, string, unknown, string][] = [
      ['/v1/responses', 'POST /v1/responses', { model: 'gpt-fake', input: PROMPT }, 'responses'],
      ['/v1/messages', 'POST /v1/messages', { model: 'gpt-fake', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] }, 'messages'],
      ['/ollama/api/chat', 'POST /ollama/api/chat', { model: 'gpt-fake', stream: false, messages: [{ role: 'user', content: PROMPT }] }, 'ollama'],
    ];
    for (const [path, name, body, api] of faces) {
      const traceId = hex(16);
      const r = await fetch(`${app.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01', traceparent: `00-${traceId}-${hex(8)}-01` },
        body: JSON.stringify(body),
      });
      expect(r.status, path).toBe(200);
      await r.arrayBuffer();
      const spans = await traceOf(traceId, (ss) => ss.some((s) => s.kind === SERVER));
      const http = only(spans, (s) => s.kind === SERVER, `${path} server span`);
      expect(http.name).toBe(name);
      const call = only(spans, (s) => s.kind === 1 && s.name === 'chat gpt-fake', `${path} call span`);
      expect(call.parentSpanId).toBe(http.spanId);
      expect(call.attributes).toMatchObject({ 'enclave.api': api, 'enclave.status': 'ok', 'gen_ai.provider.name': 'openai' });
      expect(spans.filter((s) => s.kind === CLIENT)).toHaveLength(1);
      expectNoSecrets(spans, 'Hello from the fake model');
    }
  });

  it('a request refused at authentication is traced too (server span, 401, no tenant, no call span)', async () => {
    const traceId = hex(16);
    const bad = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: 'enk_not_a_real_key_0000000000000000', maxRetries: 0 });
    const e = await bad.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } }).catch((x: unknown) => x);
    expect((e as { status?: number }).status).toBe(401);
    const spans = await traceOf(traceId, (ss) => ss.some((s) => s.kind === SERVER));
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes).toMatchObject({ 'http.route': '/v1/chat/completions', 'http.response.status_code': 401 });
    expect(spans[0]!.attributes['enclave.tenant.id']).toBeUndefined();
    expectNoSecrets(spans, 'Hello from the fake model');
    expect(strings(spans).filter((x) => x.includes('enk_not_a_real'))).toEqual([]);
  });

  it('a request without traceparent starts its own trace', async () => {
    const before = new Set(rx.spans.map((s) => s.traceId));
    await client.embeddings.create({ model: 'gpt-fake', input: PROMPT }).catch(() => undefined);
    const http = (await waitFor(() => rx.spans.find((s) => s.kind === SERVER && !before.has(s.traceId) && s.name === 'POST /v1/embeddings'), { what: 'the embeddings server span' }))!;
    expect(http.parentSpanId).toBe('');
  });

  it('a batch job: one consumer span for the job, the gateway calls of its lines inside it', async () => {
    worker = await startWorker(app.services);
    const lines = [0, 1].map((i) => JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `${PROMPT} ${i}` }] } })).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'in.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor(() => client.batches.retrieve(batch.id), { until: (b) => b.status === 'completed', timeout: 15_000, what: 'the batch completed' });
    const job = (await waitFor(() => rx.spans.find((s) => s.kind === CONSUMER && s.attributes['enclave.job.name'] === 'batch' && s.attributes['enclave.tenant.id'] === tenantId), { what: 'the batch job span' }))!;
    expect(job.name).toBe('process ai');
    expect(job.attributes).toMatchObject({ 'messaging.destination.name': 'ai', 'messaging.operation.type': 'process' });
    const spans = await traceOf(job.traceId, (ss) => ss.filter((s) => s.kind === CLIENT).length >= 2);
    const calls = spans.filter((s) => s.kind === 1 && s.name === 'chat gpt-fake');
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c.parentSpanId).toBe(job.spanId);
      expect(c.attributes).toMatchObject({ 'enclave.api': 'batch', 'enclave.status': 'ok', 'enclave.tenant.id': tenantId });
    }
    expectNoSecrets(spans, 'Hello from the fake model');
  });
});
