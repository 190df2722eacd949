import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

let env: GatewayEnv;

beforeAll(async () => {
  env = await gatewayEnv();
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b,nomic-embed-text' });
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, api_key: 'sk-upstream-secret', boundary: 'public', models: ['gpt-fake', 'text-embedding-fake'] });
  // The error-class test makes this deployment fail on purpose (its breaker may open); its own
  // model keeps the other tests (in any order: --sequence.shuffle) off it.
  await env.addProvider({ name: 'cloud-errors', kind: 'openai', base_url: `${env.openai.url}/v1`, api_key: 'sk-upstream-secret', boundary: 'public', models: ['gpt-errors'] });
  env.openai.apiKey = 'sk-upstream-secret';
});
afterAll(async () => env?.close());
beforeEach(() => {
  env.ollama.reset();
  env.openai.reset();
});

describe('the openai SDK as a client of /v1', () => {
  it('chat, non-streaming, through the Ollama adapter (NDJSON translated)', async () => {
    const r = await env.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'say hello please' }], temperature: 0.2, max_tokens: 50, seed: 7, stop: ['\n'] });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('llama3.1:8b');
    expect(r.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 });
    const sent = env.ollama.requests.find((q) => q.path === '/api/chat')!;
    expect(sent.body.options).toMatchObject({ temperature: 0.2, num_predict: 50, seed: 7, stop: ['\n'] });
  });

  it('chat, non-streaming, through the OpenAI-compatible adapter; upstream key sent, never ours', async () => {
    const raw = await env.client.chat.completions
      .create({ model: 'gpt-fake', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hi there' }] }], response_format: { type: 'json_object' }, top_p: 0.9 })
      .withResponse();
    expect(raw.data.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(raw.response.headers.get('x-request-id')).toMatch(/^req_/);
    expect(Number(raw.response.headers.get('x-enclave-overhead-ms'))).toBeGreaterThanOrEqual(0);
    const sent = env.openai.requests.find((q) => q.path === '/v1/chat/completions')!;
    expect(sent.headers.authorization).toBe('Bearer sk-upstream-secret');
    expect(sent.body).toMatchObject({ model: 'gpt-fake', response_format: { type: 'json_object' }, top_p: 0.9 });
  });

  it('streaming with include_usage, both adapters', async () => {
    for (const model of ['llama3.1:8b', 'gpt-fake']) {
      const stream = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'stream it' }], stream: true, stream_options: { include_usage: true } });
      let text = '';
      let usage: OpenAI.CompletionUsage | null | undefined;
      let finish: string | null | undefined;
      for await (const ch of stream) {
        text += ch.choices[0]?.delta?.content ?? '';
        if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
        if (ch.usage) usage = ch.usage;
        expect(ch.model).toBe(model);
      }
      expect(text).toBe('Hello from the fake model.');
      expect(finish).toBe('stop');
      expect(usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 6 });
    }
  });

  it('streaming without include_usage sends no usage chunk', async () => {
    const stream = await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'x' }], stream: true });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks.every((c) => c.choices.length === 1 && !c.usage)).toBe(true);
  });

  it('tools: tool calls come back in the OpenAI shape (both adapters, plain and streaming)', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    for (const model of ['llama3.1:8b', 'gpt-fake']) {
      const r = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'weather?' }], tools });
      expect(r.choices[0]!.finish_reason).toBe('tool_calls');
      const tc = r.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
      expect(tc.function.name).toBe('get_weather');
      expect(JSON.parse(tc.function.arguments)).toEqual({ city: 'Paris' });
      // The SDK's stream helper assembles the streamed tool call.
      const runner = env.client.chat.completions.stream({ model, messages: [{ role: 'user', content: 'weather?' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] }, { role: 'tool', tool_call_id: 'c1', content: 'sunny' }], tools });
      const final = await runner.finalChatCompletion();
      const stc = final.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
      expect(JSON.parse(stc.function.arguments)).toEqual({ city: 'Paris' });
    }
    const toOllama = env.ollama.requests.filter((q) => q.path === '/api/chat').at(-1)!;
    expect(toOllama.body.messages[1].tool_calls[0].function.arguments).toEqual({ city: 'Oslo' });
  });

  it('embeddings, both adapters', async () => {
    const a = await env.client.embeddings.create({ model: 'nomic-embed-text', input: ['one two', 'three'] });
    expect(a.data).toHaveLength(2);
    expect(a.data[0]!.embedding).toHaveLength(8);
    expect(a.usage.prompt_tokens).toBe(3);
    const b = await env.client.embeddings.create({ model: 'text-embedding-fake', input: 'hello world' });
    expect(b.data[0]!.embedding).toHaveLength(8);
  });

  it('models list and retrieve show only usable models, each with its boundaries', async () => {
    const list = await env.client.models.list();
    const ids = list.data.map((m) => m.id).sort();
    expect(ids).toEqual(['gpt-errors', 'gpt-fake', 'llama3.1:8b', 'nomic-embed-text', 'text-embedding-fake']);
    expect((list.data.find((m) => m.id === 'gpt-fake') as any).boundaries).toEqual(['public']);
    const one = await env.client.models.retrieve('llama3.1:8b');
    expect((one as any).boundaries).toEqual(['local']);
    await expect(env.client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('writes one usage record per call, with tokens, deployment and status', async () => {
    const before = (await env.usage()).length;
    await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'count me' }] }, { headers: { 'X-Enclave-Workflow': 'nightly-report' } });
    await env.client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }).catch(() => undefined);
    const rows = await env.usage();
    expect(rows.length).toBe(before + 2);
    const ok = rows.find((r) => r.workflow === 'nightly-report')!;
    expect(ok).toMatchObject({ status: 'ok', httpStatus: 200, provider: 'openai', model: 'gpt-fake', boundary: 'public', classification: 'internal', promptTokens: 2, completionTokens: 6, tokensEstimated: false, keyId: env.keyId });
    expect(JSON.stringify(rows)).not.toContain('count me');
    const refused = rows.at(-1)!;
    expect(refused).toMatchObject({ status: 'refused', httpStatus: 404, errorCode: 'model_not_found' });
  });

  it('errors surface as the SDK error classes with status and code', async () => {
    const bad = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: 'enk_not_a_real_key_at_all_000000', maxRetries: 0 });
    const e1 = await bad.chat.completions.create({ model: 'gpt-errors', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(e1).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(e1.code).toMatch(/^auth_/);

    const e2 = await env.client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(e2).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e2.code).toBe('model_not_found');

    const e3 = await env.client.chat.completions
      .create({ model: 'gpt-errors', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'X-Enclave-Classification': 'restricted' } })
      .catch((e) => e);
    expect(e3).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(e3.code).toBe('policy_boundary_denied');
    expect(e3.type).toBe('policy_error');

    env.openai.failAlways({ mode: 'rate_limit', retryAfterS: 0 });
    const e4 = await env.client.chat.completions.create({ model: 'gpt-errors', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(e4).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e4.code).toBe('provider_rate_limited');
    expect(e4.type).toBe('provider_error');

    env.openai.failAlways('server_error');
    const e5 = await env.client.chat.completions.create({ model: 'gpt-errors', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(e5).toBeInstanceOf(OpenAI.InternalServerError);
    expect(e5.status).toBe(502);
    expect(e5.code).toBe('provider_server_error');

    env.openai.failAlways('malformed');
    const e6 = await env.client.chat.completions.create({ model: 'gpt-errors', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e);
    expect(e6).toBeInstanceOf(OpenAI.APIError);
    expect(e6.code).toMatch(/^provider_/);
    env.openai.failAlways(undefined);

    const e7 = await env.client.chat.completions.create({ model: 'gpt-errors', messages: [] }).catch((e) => e);
    expect(e7).toBeInstanceOf(OpenAI.BadRequestError);
  });

});
