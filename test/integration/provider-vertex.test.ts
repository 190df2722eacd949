import OpenAI from 'openai';
import { decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../server/providers/types.js';
import { GeminiAdapter, VertexAdapter } from '../../server/providers/vertex/adapter.js';
import { FakeVertex } from '../fakes/fake-vertex.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Gemini end to end, in both its forms — `vertex` (Vertex AI, a service account's JWT
 * exchanged for an OAuth token that the fake's token endpoint verifies with the account's
 * public key) and `gemini` (the Generative Language API, an API key): the official openai SDK
 * → the gateway → the adapter → the fake. The conformance table of the other kinds (plain,
 * stream, tools, images, 429 with RetryInfo, 5xx, slow first token, stall, drop, malformed,
 * auth failure) plus Gemini's own: safety blocks as provider_content_filtered, the token
 * cached and fetched again when refused.
 */
let env: GatewayEnv;
const fakes: Record<'vertex' | 'gemini', FakeVertex> = {} as never;
let n = 0;

beforeAll(async () => {
  env = await gatewayEnv();
  fakes.vertex = await new FakeVertex('vertex').start();
  fakes.gemini = await new FakeVertex('gemini').start();
});
afterAll(async () => {
  await env?.close();
  await fakes.vertex?.close();
  await fakes.gemini?.close();
});
afterEach(() => {
  fakes.vertex.assertNoPendingFaults();
  fakes.gemini.assertNoPendingFaults();
});

type Kind = 'vertex' | 'gemini';
async function setup(kind: Kind, o: { options?: Record<string, unknown>; apiKey?: string; serviceAccount?: string } = {}): Promise<{ model: string; name: string; fake: FakeVertex }> {
  const i = ++n;
  const fake = fakes[kind];
  const model = `gemini-test-${i}`;
  const name = `${kind}-${i}`;
  fake.reset();
  fake.models.push(model);
  // Awaited: the deployment service may answer asynchronously (issue 22's async data layer).
  await env.addProvider({
    name,
    kind,
    base_url: fake.url,
    boundary: 'public',
    models: [model],
    ...(kind === 'vertex'
      ? { region: fake.location, settings: { project: fake.project }, credentials: { service_account_json: o.serviceAccount ?? fake.serviceAccountJson() } }
      : { api_key: o.apiKey ?? fake.apiKey }),
    options: { maxRetries: 0, ...o.options },
  });
  return { model, name, fake };
}
const calls = (f: FakeVertex) => f.requests.filter((r) => r.path.includes(':'));
const ask = (model: string, extra: Record<string, unknown> = {}) =>
  env.client.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }], ...extra } as OpenAI.ChatCompletionCreateParamsNonStreaming);
async function streamText(model: string, content = 'hello there'): Promise<{ text: string; usage: OpenAI.CompletionUsage | null | undefined; err: unknown }> {
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  const err = await (async () => {
    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content }], stream: true, stream_options: { include_usage: true } });
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
  })().catch((x: unknown) => x);
  return { text, usage, err };
}
type ApiError = InstanceType<typeof OpenAI.APIError>;
const fail = async (p: Promise<unknown>): Promise<ApiError> => (await p.then(() => undefined, (x: unknown) => x)) as ApiError;
const TOOLS = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } } }];
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe.each<Kind>(['vertex', 'gemini'])('%s through the gateway (openai SDK client)', (kind) => {
  it('plain: generateContent with the system instruction, usage and finish reason', async () => {
    const { model, fake } = await setup(kind);
    const r = await ask(model, { max_tokens: 100, temperature: 0 });
    expect(r.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
    const seen = calls(fake)[0]!;
    expect(seen.path).toBe(kind === 'gemini' ? `/v1beta/models/${model}:generateContent` : `/v1/projects/${fake.project}/locations/${fake.location}/publishers/google/models/${model}:generateContent`);
    expect(seen.body).toMatchObject({ systemInstruction: { parts: [{ text: 'Be brief.' }] }, contents: [{ role: 'user', parts: [{ text: 'hello there' }] }], generationConfig: { maxOutputTokens: 100, temperature: 0 } });
    if (kind === 'gemini') expect(seen.headers['x-goog-api-key']).toBe(fake.apiKey);
    else expect(String(seen.headers.authorization)).toMatch(/^Bearer ya29\.fake-/);
  });

  it('stream: streamGenerateContent?alt=sse decoded as it arrives, usage last', async () => {
    const { model, fake } = await setup(kind);
    const { text, usage, err } = await streamText(model);
    expect(err).toBeUndefined();
    expect(text).toBe('Hello from the fake model.');
    expect(usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
    expect(calls(fake)[0]!.path).toMatch(/:streamGenerateContent$/);
  });

  it('tools: functionDeclarations ↔ tool_calls (schema keywords Gemini refuses dropped), and the result goes back as a functionResponse', async () => {
    const { model, fake } = await setup(kind);
    const r = await ask(model, { tools: TOOLS, tool_choice: 'required' });
    const call = r.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(r.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
    expect(calls(fake)[0]!.body.tools).toEqual([{ functionDeclarations: [{ name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }] }]);
    expect(calls(fake)[0]!.body.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY' } });

    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'weather?' }], tools: TOOLS, stream: true });
    let args = '';
    let finish: string | null | undefined;
    for await (const c of s) {
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) args += tc.function?.arguments ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(JSON.parse(args)).toEqual({ city: 'Paris' });
    expect(finish).toBe('tool_calls');

    const r2 = await env.client.chat.completions.create({ model, tools: TOOLS, messages: [{ role: 'user', content: 'weather?' }, r.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: '{"temp":21}' }] });
    expect(r2.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(calls(fake).at(-1)!.body.contents).toEqual([
      { role: 'user', parts: [{ text: 'weather?' }] },
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 21 } } }] },
    ]);
  });

  it('images: a data-URL image becomes inlineData', async () => {
    const { model, fake } = await setup(kind);
    await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    expect(calls(fake)[0]!.body.contents[0].parts).toEqual([{ text: 'what is this?' }, { inlineData: { mimeType: 'image/png', data: PNG } }]);
  });

  it('safety: a blocked prompt and a blocked answer are 400 provider_content_filtered, plain and streamed', async () => {
    const { model } = await setup(kind);
    const a = await fail(env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'BLOCKME please' }] }));
    expect(a.status).toBe(400);
    expect(a.code).toBe('provider_content_filtered');
    expect(a.message).toMatch(/the prompt/);
    const b = await fail(env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'UNSAFE_ANSWER please' }] }));
    expect(b.code).toBe('provider_content_filtered');
    expect(b.message).toMatch(/the answer/);
    const c = await streamText(model, 'BLOCKME');
    expect((c.err as ApiError).code).toBe('provider_content_filtered');
    const d = await streamText(model, 'UNSAFE_ANSWER');
    expect((d.err as ApiError).code).toBe('provider_content_filtered');
  });

  it('429 RESOURCE_EXHAUSTED is retried; when it persists the client gets 429 with the RetryInfo delay as Retry-After', async () => {
    const { model, fake } = await setup(kind, { options: { maxRetries: 1, retryBaseMs: 5 } });
    fake.fail({ mode: 'rate_limit', retryAfterS: 0 });
    expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(calls(fake).length).toBe(2);
    const only = await setup(kind);
    only.fake.fail({ mode: 'rate_limit', retryAfterS: 7 });
    const e = await fail(ask(only.model));
    expect(e.status).toBe(429);
    expect(e.code).toBe('provider_rate_limited');
    expect(e.headers?.get('retry-after')).toBe('7');
  });

  it('5xx is retried, then a 502', async () => {
    const { model, fake } = await setup(kind, { options: { maxRetries: 1 } });
    fake.fail('server_error');
    expect((await ask(model)).choices[0]!.message.content).toBe('Hello from the fake model.');
    fake.fail('server_error', 'server_error');
    const e = await fail(ask(model));
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_server_error');
  });

  it('a slow first token times out (504); a dropped connection is retried', async () => {
    const { model, fake } = await setup(kind, { options: { firstTokenMs: 150 } });
    fake.fail({ mode: 'slow_first_token', delayMs: 600 });
    const { err } = await streamText(model);
    expect((err as ApiError).status).toBe(504);
    const d = await setup(kind, { options: { maxRetries: 1 } });
    d.fake.fail('drop');
    expect((await ask(d.model)).choices[0]!.message.content).toBe('Hello from the fake model.');
  });

  it.each(['stall_mid_stream', 'drop_mid_stream', 'error_mid_stream', 'malformed'] as const)('%s: the stream ends in an error after what arrived', async (mode) => {
    const { model, fake } = await setup(kind, { options: { idleMs: 150 } });
    fake.fail(mode);
    const { text, err } = await streamText(model);
    expect(err, mode).toBeInstanceOf(OpenAI.APIError);
    expect((err as ApiError).code).toMatch(mode === 'stall_mid_stream' ? /^provider_(stream_error|timeout)$/ : /^provider_stream_error$/);
    expect(text).toBe('Hello from');
  });

  it('a stream in Google’s default JSON-array framing (a proxy dropped alt=sse) is decoded too, and a broken element fails it', async () => {
    const { model, fake } = await setup(kind, { options: { idleMs: 150 } });
    fake.ignoreAlt = true;
    const ok = await streamText(model);
    expect(ok.err).toBeUndefined();
    expect(ok.text).toBe('Hello from the fake model.');
    expect(ok.usage).toMatchObject({ total_tokens: 8 });
    fake.fail('malformed');
    const bad = await streamText(model);
    expect((bad.err as ApiError).code).toBe('provider_stream_error');
    expect(bad.text).toBe('Hello from');
  });

  it('embeddings: batchEmbedContents (gemini) / predict (vertex) through the SDK (base64 by default), dimensions passed on', async () => {
    const i = ++n;
    const fake = fakes[kind];
    fake.reset();
    await env.addProvider({
      name: `${kind}-emb-${i}`,
      kind,
      base_url: fake.url,
      boundary: 'public',
      models: [{ name: `emb-${kind}-${i}`, upstream: 'text-embedding-004', type: 'embedding' }],
      ...(kind === 'vertex' ? { region: fake.location, settings: { project: fake.project }, credentials: { service_account_json: fake.serviceAccountJson() } } : { api_key: fake.apiKey }),
      options: { maxRetries: 0 },
    });
    const r = await env.client.embeddings.create({ model: `emb-${kind}-${i}`, input: ['one two', 'three'], dimensions: 4 });
    expect(r.data.map((d) => d.embedding.length)).toEqual([4, 4]);
    expect(r.data[0]!.embedding[0]).toBeCloseTo(0.227, 3); // 'o' + 't' (111 + 116, /1000): the fake's deterministic vector
    if (kind === 'vertex') expect(r.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 }); // the API's token counts
    else expect(r.usage.prompt_tokens).toBeGreaterThan(0); // estimated: the Gemini API reports none
    const seen = fake.requests.find((q) => q.path.endsWith(kind === 'gemini' ? ':batchEmbedContents' : ':predict'))!;
    expect(seen.body).toEqual(
      kind === 'gemini'
        ? { requests: [{ model: 'models/text-embedding-004', content: { parts: [{ text: 'one two' }] }, outputDimensionality: 4 }, { model: 'models/text-embedding-004', content: { parts: [{ text: 'three' }] }, outputDimensionality: 4 }] }
        : { instances: [{ content: 'one two' }, { content: 'three' }], parameters: { outputDimensionality: 4 } },
    );
  });

  it('malformed JSON in a plain answer is a 502 provider_bad_response', async () => {
    const { model, fake } = await setup(kind);
    fake.fail('malformed');
    const e = await fail(ask(model));
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_bad_response');
  });

  it('a model the project cannot use: 502 provider_model_not_found; providers test lists the models', async () => {
    const { model, name, fake } = await setup(kind);
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.ok).toBe(true);
    expect(t.models).toContain(model);
    fake.models.splice(fake.models.indexOf(model), 1);
    const e = await fail(ask(model));
    expect(e.code).toBe('provider_model_not_found');
  });
});

describe('auth', () => {
  it('gemini: a wrong API key (Google’s 400 API_KEY_INVALID) is provider_auth_failed; providers test says so without the key', async () => {
    const { model, name } = await setup('gemini', { apiKey: 'AIza-wrong-key-77' });
    const e = await fail(ask(model));
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_auth_failed');
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.ok).toBe(false);
    expect(JSON.stringify(t)).not.toContain('AIza-wrong-key-77');
  });

  it('vertex: the JWT is RS256 with the key id, verified by the token endpoint with the account’s public key; the token is cached', async () => {
    const { model, fake } = await setup('vertex');
    await ask(model);
    await ask(model);
    await streamText(model);
    expect(fake.tokensIssued).toBe(1);
    const tokenReq = fake.requests.find((r) => r.path === '/token')!;
    const assertion = new URLSearchParams(tokenReq.raw).get('assertion')!;
    expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'RS256', typ: 'JWT', kid: 'fakekeyid1' });
  });

  it('vertex: a key signed by another private key is refused by the token endpoint (invalid_grant) → provider_auth_failed, and providers test says why', async () => {
    const { generateKeyPair, exportPKCS8 } = await import('jose');
    const other = await exportPKCS8((await generateKeyPair('RS256', { extractable: true })).privateKey);
    const { model, name, fake } = await setup('vertex', { serviceAccount: fakes.vertex.serviceAccountJson({ privatePem: other }) });
    const e = await fail(ask(model));
    expect(e.code).toBe('provider_auth_failed');
    expect(fake.assertionsRefused).toBe(1);
    expect(calls(fake).length).toBe(0); // nothing reached the model
    const t = await env.app.services.gateway.deployments.test(name);
    expect(t.error).toMatch(/invalid_grant|credentials/);
    expect(JSON.stringify(t)).not.toContain('PRIVATE KEY');
  });

  it('vertex: a token within five minutes of expiry is replaced before use (a 200-second token is fetched again per call)', async () => {
    const { model, fake } = await setup('vertex');
    fake.tokenTtlS = 200;
    await ask(model);
    await ask(model);
    expect(fake.tokensIssued).toBe(2);
    fake.tokenTtlS = 3599;
    await ask(model); // the 200-second token is due: a fresh one, which then lasts
    await ask(model);
    expect(fake.tokensIssued).toBe(3);
  });

  it('vertex: a revoked token (401) is dropped; the next call fetches a new one', async () => {
    const { model, fake } = await setup('vertex');
    await ask(model);
    fake.revokeTokens();
    expect((await fail(ask(model))).code).toBe('provider_auth_failed');
    await ask(model);
    expect(fake.tokensIssued).toBe(2);
  });

  it('vertex: a key that is not JSON is refused at every call with a clear, secret-free error', async () => {
    const a = new VertexAdapter({ baseUrl: fakes.vertex.url, region: 'europe-west4', settings: { project: 'p-roject' }, credentials: { service_account_json: 'not json SECRET' } });
    const e = await a.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { signal: new AbortController().signal }).catch((x: unknown) => x as UpstreamError);
    expect((e as UpstreamError).code).toBe('provider_auth_failed');
    expect((e as UpstreamError).message).not.toContain('SECRET');
  });
});

describe('configuration', () => {
  it('a region that is not a Google Cloud location is refused: it would become the host the prompts go to', async () => {
    for (const region of ['evil.example#', 'evil.example/x', 'us-central1.evil.example']) {
      // Promise.resolve().then(…): a refusal thrown or rejected (the deployment service may answer asynchronously).
      await expect(
        Promise.resolve().then(() =>
          env.addProvider({ name: `vertex-r${++n}`, kind: 'vertex', region, boundary: 'public', models: ['x'], settings: { project: fakes.vertex.project }, credentials: { service_account_json: fakes.vertex.serviceAccountJson() } }),
        ),
        region,
      ).rejects.toThrow(/Google Cloud location/);
    }
  });
});

describe('adapter details', () => {
  it('RetryInfo reaches the error as retryAfterMs', async () => {
    const f = fakes.gemini;
    f.reset();
    f.fail({ mode: 'rate_limit', retryAfterS: 3 });
    const a = new GeminiAdapter({ baseUrl: f.url, apiKey: f.apiKey });
    const e = (await a.chat({ model: f.models[0]!, messages: [{ role: 'user', content: 'x' }] }, { signal: new AbortController().signal }).catch((x: unknown) => x)) as UpstreamError;
    expect(e.code).toBe('provider_rate_limited');
    expect(e.retryAfterMs).toBe(3000);
  });
});
