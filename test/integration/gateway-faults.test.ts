import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { ManualClock, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

const clock = new ManualClock(Date.now());
let env: GatewayEnv;
let second: FakeOpenAI;
let calls = 0;
let n = 0;

beforeAll(async () => {
  env = await gatewayEnv({ clock });
  second = await new FakeOpenAI().start();
});
afterAll(async () => {
  await env?.close();
  await second?.close();
});

/** A fresh model served by a fresh deployment on the first fake (and optionally a fallback on the second). */
async function setup(opts: { options?: Record<string, unknown>; fallback?: boolean } = {}): Promise<string> {
  const i = ++n;
  const model = `m${i}`;
  env.openai.reset();
  second.reset();
  await env.addProvider({ name: `a${i}`, kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: [model], priority: 1, options: { maxRetries: 1, ...opts.options } });
  if (opts.fallback) await env.addProvider({ name: `b${i}`, kind: 'openai', base_url: `${second.url}/v1`, boundary: 'private', models: [model], priority: 2 });
  return model;
}
const chat = (model: string, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}, o: OpenAI.RequestOptions = {}) => {
  calls++;
  return env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra }, o);
};
const streamChat = async (model: string, o: OpenAI.RequestOptions = {}) => {
  calls++;
  return env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }], stream: true, stream_options: { include_usage: true } }, o);
};
const lastUsage = async () => (await env.usage()).sort((a, b) => (a.id < b.id ? -1 : 1)).at(-1)!;

// A fault a test queued that never reached a request means the test did not test it.
afterEach(() => {
  env.openai.assertNoPendingFaults();
  second.assertNoPendingFaults();
});

describe('reliability', () => {
  it('retries a retryable error on the same deployment, then falls back to the next candidate', async () => {
    const model = await setup({ fallback: true });
    env.openai.fail('server_error', 'drop');
    const r = await chat(model).withResponse();
    expect(r.data.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(env.openai.requests.length).toBe(2); // first attempt + one retry
    expect(second.requests.length).toBe(1); // then the fallback
    const u = (await lastUsage());
    expect(u).toMatchObject({ status: 'ok', attempts: 3, model });
    expect(JSON.parse(u.policy).fallbacks).toBe(1);
  });

  it('429 with Retry-After is retried on the same deployment', async () => {
    const model = await setup({ fallback: true });
    env.openai.fail({ mode: 'rate_limit', retryAfterS: 0 });
    await chat(model);
    expect(env.openai.requests.length).toBe(2);
    expect(second.requests.length).toBe(0);
  });

  it('a non-retryable upstream error (400) is passed on without retry or fallback', async () => {
    const model = await setup({ fallback: true });
    const e = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 1, ...({ messages: 'bad' } as any) }).catch((x) => x);
    calls++;
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('slow first token times out, then falls back', async () => {
    const model = await setup({ fallback: true, options: { maxRetries: 0, firstTokenMs: 150 } });
    env.openai.fail({ mode: 'slow_first_token', delayMs: 600 });
    const stream = await streamChat(model);
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe('Hello from the fake model.');
    expect(second.requests.length).toBe(1);
    // Counted as one timed-out attempt on the first deployment and one answer from the fallback.
    const attempts = (await env.app.services.metrics.registry.getSingleMetric('enclave_gateway_upstream_attempts_total')!.get()).values;
    const of = (d: string) => attempts.filter((v) => v.labels.deployment === d && v.value > 0).map((v) => [v.labels.result, v.value]);
    expect(of(`a${n}`)).toEqual([['provider_timeout', 1]]);
    expect(of(`b${n}`)).toEqual([['ok', 1]]);
  });

  it('the breaker opens after consecutive failures and recovers through a half-open probe', async () => {
    const model = await setup({ options: { maxRetries: 0, breakerFailures: 3, breakerCooldownMs: 10_000 } });
    env.openai.failAlways('server_error');
    for (let i = 0; i < 3; i++) await chat(model).catch(() => undefined);
    expect(env.openai.requests.length).toBe(3);
    const e = await chat(model).catch((x) => x);
    expect(e.status).toBe(503);
    expect(e.code).toBe('provider_unavailable');
    expect(env.openai.requests.length).toBe(3); // nothing sent while open
    const dep = env.app.services.gateway.catalogue.deployment(`a${n}`)!;
    expect(dep.breaker.state).toBe('open');
    const ready = (await (await fetch(`${env.app.url}/readyz`)).json()) as any;
    expect(ready.checks.providers.open_breakers).toContain(`a${n}`);

    clock.advance(10_000);
    expect(dep.breaker.state).toBe('half_open');
    env.openai.failAlways(undefined);
    await chat(model);
    expect(dep.breaker.state).toBe('closed');
    expect(env.openai.requests.length).toBe(4);
  });

  it('a client disconnect aborts the upstream call and still records usage', async () => {
    const model = await setup();
    env.openai.chunkDelayMs = 150;
    const ac = new AbortController();
    const stream = await streamChat(model, { signal: ac.signal });
    const before = (await env.usage()).length;
    try {
      for await (const _c of stream) {
        ac.abort();
      }
    } catch {
      /* aborted */
    }
    await waitFor(() => env.openai.requests[0]?.aborted, { what: 'the upstream request aborted' });
    await waitFor(async () => (await env.usage()).length, { until: (n) => n === before + 1, what: `${before + 1} usage records` });
    const u = (await lastUsage());
    expect(u, JSON.stringify(u)).toMatchObject({ status: 'client_disconnect', model, stream: true });
  });

  it('an upstream failing mid-stream ends the stream with an OpenAI-shaped error event and a usage record', async () => {
    for (const mode of ['drop_mid_stream', 'error_mid_stream', 'stall_mid_stream'] as const) {
      const model = await setup({ fallback: true, options: { idleMs: 150 } });
      env.openai.fail(mode);
      const stream = await streamChat(model);
      let text = '';
      const err = await (async () => {
        for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
      })().catch((x) => x);
      expect(err, mode).toBeInstanceOf(OpenAI.APIError);
      expect(err.code, mode).toMatch(/^provider_(stream_error|timeout)$/);
      expect(text).toBe('Hello'); // what arrived before the failure
      expect(second.requests.length, mode).toBe(0); // no fallback after the first byte
      const u = (await lastUsage());
      expect(u, mode).toMatchObject({ status: 'stream_error', model, tokensEstimated: true });
    }
  });

  it('a per-deployment concurrency limit waits a bounded time, then moves on', async () => {
    const model = await setup({ fallback: true, options: { maxRetries: 0, queueMs: 50 } });
    await env.app.services.gateway.deployments.update(sys(env.app.services), `a${n}`, { max_concurrency: 1 });
    env.openai.latencyMs = 300;
    const [a, b] = await Promise.all([chat(model).withResponse(), chat(model).withResponse()]);
    expect(a.data.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(b.data.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(env.openai.requests.length).toBe(1);
    expect(second.requests.length).toBe(1);
  });

  it('exactly one usage record per call across every case above', async () => {
    await waitFor(async () => (await env.usage()).length, { until: (n) => n === calls, what: `${calls} usage records` });
    expect((await env.usage()).length).toBe(calls);
  });
});
