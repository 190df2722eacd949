import OpenAI, { type APIError } from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../fakes/common.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The conformance table every provider kind passes against its wire-faithful fake, driven
 * end to end: the official `openai` SDK → the gateway's /v1 → the kind's adapter → the fake.
 * Plain, stream, tools (both directions, plain and streamed), images, embeddings (or a clear
 * refusal), 429 with its retry hint, 5xx, slow first token, stall mid-stream, drops before
 * and mid-stream, malformed frames, an error event mid-stream, auth failure (also through
 * `providers test`, which must not echo the credential).
 *
 * A kind's test file calls `providerConformance({...})` and adds its own cases with `ctx()`.
 */
export interface ConformanceKind<F extends FakeUpstream> {
  readonly kind: string;
  /** Starts the fake (a fresh one per test file). */
  startFake(): Promise<F>;
  /** The deployment's kind fields: kind, base_url, api_key, settings, credentials, region. */
  deployment(fake: F): Record<string, unknown>;
  /** Makes the fake refuse the deployment's credential (auth failure). */
  wrongCredentials(fake: F): Record<string, unknown>;
  /** Secret values the `providers test` error must never contain. */
  readonly secrets: readonly string[];
  /** An upstream model name the fake serves. */
  readonly chatModel: string;
  /** Embedding model the fake serves; undefined: the kind has no embeddings (a clear 400). */
  readonly embeddingModel?: string;
  /** Asserts how the image reached the fake (the last request's body, in the provider's shape). */
  imageSeen(body: any): void;
  /** Asserts how the tool result of the follow-up turn reached the fake. */
  toolResultSeen(body: any): void;
}

export interface ConformanceCtx<F extends FakeUpstream> {
  env: GatewayEnv;
  fake: F;
  /** A fresh deployment (and client-facing model name) on the fake. */
  setup(o?: { options?: Record<string, unknown>; extra?: Record<string, unknown>; models?: unknown[] }): Promise<{ model: string; name: string }>;
}

const REPLY = 'Hello from the fake model.';
const tools: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
];
// A 1×1 transparent PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

export function providerConformance<F extends FakeUpstream>(k: ConformanceKind<F>): () => ConformanceCtx<F> {
  let env: GatewayEnv;
  let fake: F;
  let n = 0;
  const setup: ConformanceCtx<F>['setup'] = async (o = {}) => {
    const i = ++n;
    const model = `${k.kind}-m${i}`;
    const name = `${k.kind}-d${i}`;
    fake.reset();
    const models = o.models ?? [{ name: model, upstream: k.chatModel }, ...(k.embeddingModel ? [{ name: `${model}-embed`, upstream: k.embeddingModel, type: 'embedding' }] : [])];
    // awaited: the deployment service is becoming async (issue 22); a value awaits as itself.
    await env.addProvider({ name, boundary: 'public', models, priority: 1, ...k.deployment(fake), ...o.extra, options: { maxRetries: 1, retryBaseMs: 5, ...o.options } });
    return { model, name };
  };
  const ctx = (): ConformanceCtx<F> => ({ env, fake, setup });

  beforeAll(async () => {
    env = await gatewayEnv();
    fake = await k.startFake();
  });
  afterAll(async () => {
    await env?.close();
    await fake?.close();
  });
  // A fault a test queued that never reached a request means the test did not test it.
  afterEach(() => fake.assertNoPendingFaults());

  const user = (content: string) => [{ role: 'user' as const, content }];
  const chat = (model: string, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
    env.client.chat.completions.create({ model, messages: user('hello there'), ...extra });
  const stream = async (model: string, extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming> = {}) => {
    const s = await env.client.chat.completions.create({ model, messages: user('hello there'), stream: true, stream_options: { include_usage: true }, ...extra });
    const out: OpenAI.ChatCompletionChunk[] = [];
    let text = '';
    const err = await (async () => {
      for await (const c of s) {
        out.push(c);
        text += c.choices[0]?.delta?.content ?? '';
      }
    })().then(
      () => undefined,
      (e: unknown) => e as APIError,
    );
    return { chunks: out, text, err };
  };
  const lastUsage = async () => (await env.usage()).sort((a, b) => (a.id < b.id ? -1 : 1)).at(-1)!;

  describe(`${k.kind}: conformance through the gateway (openai SDK)`, () => {
    it('plain chat: the answer, its finish reason and usage, one usage record', async () => {
      const { model } = await setup();
      const r = await chat(model, { max_tokens: 100, temperature: 0.2, stop: ['never-seen'] });
      expect(r.choices[0]!.message.content).toBe(REPLY);
      expect(r.choices[0]!.finish_reason).toBe('stop');
      expect(r.usage!.prompt_tokens).toBeGreaterThan(0);
      expect(r.usage!.completion_tokens).toBe(6);
      expect((await lastUsage())).toMatchObject({ status: 'ok', model: k.chatModel, promptTokens: r.usage!.prompt_tokens, completionTokens: 6 });
    });

    it('max_tokens cuts the answer short: finish_reason length', async () => {
      const { model } = await setup();
      const r = await chat(model, { max_tokens: 2 });
      expect(r.choices[0]!.message.content).toBe('Hello from');
      expect(r.choices[0]!.finish_reason).toBe('length');
    });

    it('streamed chat: text deltas, a finish chunk, then the usage chunk', async () => {
      const { model } = await setup();
      const { chunks, text, err } = await stream(model);
      expect(err).toBeUndefined();
      expect(text).toBe(REPLY);
      expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
      expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 6 });
      expect((await lastUsage())).toMatchObject({ status: 'ok', model: k.chatModel, stream: true, completionTokens: 6 });
    });

    it('tools: a tool call (plain and streamed), and the tool result sent back', async () => {
      const { model } = await setup();
      const r = await chat(model, { tools, tool_choice: 'auto' });
      const call = r.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
      expect(r.choices[0]!.finish_reason).toBe('tool_calls');
      expect(call.function.name).toBe('get_weather');
      expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
      const s = await stream(model, { tools });
      expect(s.err).toBeUndefined();
      let args = '';
      let name = '';
      let id = '';
      for (const c of s.chunks) {
        for (const t of c.choices[0]?.delta?.tool_calls ?? []) {
          args += t.function?.arguments ?? '';
          name += t.function?.name ?? '';
          id ||= t.id ?? '';
        }
      }
      expect({ name, args: JSON.parse(args) }).toEqual({ name: 'get_weather', args: { city: 'Paris' } });
      expect(id).toBe(call.id);
      expect(s.chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true);
      // The follow-up turn: the assistant's call and the tool's result, in the provider's shape.
      const follow = await env.client.chat.completions.create({
        model,
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: '21 °C, sunny' },
        ],
      });
      expect(follow.choices[0]!.message.content).toBe(REPLY);
      k.toolResultSeen(fake.requests.at(-1)!.body);
    });

    it('images: a data-URL image part reaches the provider in its own image shape', async () => {
      const { model } = await setup();
      const r = await env.client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
      });
      expect(r.choices[0]!.message.content).toBe(REPLY);
      k.imageSeen(fake.requests.at(-1)!.body);
    });

    it(k.embeddingModel ? 'embeddings' : 'embeddings: refused with a clear error (the kind has none)', async () => {
      const emb = `${k.kind}-emb${n + 1}`;
      const { model } = await setup(k.embeddingModel ? {} : { models: [{ name: emb, upstream: k.chatModel, type: 'embedding' }] });
      if (k.embeddingModel) {
        const r = await env.client.embeddings.create({ model: `${model}-embed`, input: ['one', 'two'] });
        expect(r.data).toHaveLength(2);
        expect(r.data[0]!.embedding.length).toBeGreaterThan(0);
        return;
      }
      const e = (await env.client.embeddings.create({ model: emb, input: 'one' }).catch((x: unknown) => x)) as APIError;
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.message).toMatch(/no embeddings/i);
      expect(fake.requests).toHaveLength(0); // refused before anything was sent
    });

    it('429: retried after its Retry-After; a hint too long to wait for reaches the client', async () => {
      const { model } = await setup();
      fake.fail({ mode: 'rate_limit', retryAfterS: 0 });
      expect((await chat(model)).choices[0]!.message.content).toBe(REPLY);
      expect(fake.requests).toHaveLength(2);
      fake.reset();
      fake.fail({ mode: 'rate_limit', retryAfterS: 30 });
      const e = (await chat(model).catch((x: unknown) => x)) as APIError;
      expect(e.status).toBe(429);
      expect(e.code).toBe('provider_rate_limited');
      expect(Number(e.headers?.get('retry-after'))).toBeGreaterThanOrEqual(30); // whole seconds, rounded up
    });

    it('5xx and a dropped connection are retried; malformed JSON is a bad response', async () => {
      const { model } = await setup();
      fake.fail('server_error');
      expect((await chat(model)).choices[0]!.message.content).toBe(REPLY);
      fake.fail('drop');
      expect((await chat(model)).choices[0]!.message.content).toBe(REPLY);
      const { model: m0 } = await setup({ options: { maxRetries: 0 } });
      fake.fail('server_error');
      const e5 = (await chat(m0).catch((x: unknown) => x)) as APIError;
      expect([e5.status, e5.code]).toEqual([502, 'provider_server_error']);
      fake.fail('malformed');
      const em = (await chat(m0).catch((x: unknown) => x)) as APIError;
      expect([em.status, em.code]).toEqual([502, 'provider_bad_response']);
      fake.fail('malformed');
      const sm = await stream(m0).catch((x: unknown) => ({ err: x as APIError, text: '' }));
      expect(sm.err?.code).toBe('provider_stream_error');
    });

    it('slow first token: the time-out fires (504), the call is recorded', async () => {
      const { model } = await setup({ options: { maxRetries: 0, firstTokenMs: 150 } });
      fake.fail({ mode: 'slow_first_token', delayMs: 1500 });
      const e = (await stream(model).catch((x: unknown) => ({ err: x as APIError, text: '' }))).err!;
      expect([e.status, e.code]).toEqual([504, 'provider_timeout']);
      expect((await lastUsage())).toMatchObject({ status: 'error', errorCode: 'provider_timeout', model: k.chatModel });
    });

    it('mid-stream failures (stall, drop, error event) end the stream with an error after what arrived', async () => {
      for (const mode of ['stall_mid_stream', 'drop_mid_stream', 'error_mid_stream'] as const) {
        const { model } = await setup({ options: { idleMs: 150 } });
        fake.fail(mode);
        const { text, err } = await stream(model);
        expect(err, mode).toBeInstanceOf(OpenAI.APIError);
        expect(err!.code, mode).toMatch(/^provider_(stream_error|timeout)$/);
        // What arrived before the failure, and not all of it.
        expect(text.length > 0 && text.length < REPLY.length && REPLY.startsWith(text), `${mode}: ${text}`).toBe(true);
        expect((await lastUsage()), mode).toMatchObject({ status: 'stream_error', model: k.chatModel });
      }
    });

    it('auth failure: 502 provider_auth_failed; `providers test` says so without the credential', async () => {
      const { model, name } = await setup({ extra: k.wrongCredentials(fake), options: { maxRetries: 0 } });
      const e = (await chat(model).catch((x: unknown) => x)) as APIError;
      expect([e.status, e.code]).toEqual([502, 'provider_auth_failed']);
      const t = await env.app.services.gateway.deployments.test(name);
      expect(t).toMatchObject({ ok: false, error_code: 'provider_auth_failed' });
      expect(t.error).toMatch(/refused the credentials/);
      for (const s of [...k.secrets, ...Object.values(k.wrongCredentials(fake)).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v as object)))]) {
        if (typeof s === 'string' && s.length >= 4) expect(t.error).not.toContain(s);
      }
      const ok = await setup();
      expect(await env.app.services.gateway.deployments.test(ok.name)).toMatchObject({ ok: true });
    });

    it('settings are returned, credentials never', async () => {
      const { name } = await setup();
      const d = await env.app.services.gateway.deployments.get(name);
      const text = JSON.stringify(d);
      for (const s of k.secrets) expect(text).not.toContain(s);
      expect(d.kind).toBe(k.kind);
    });
  });
  return ctx;
}
