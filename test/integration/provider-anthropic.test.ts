import Anthropic from '@anthropic-ai/sdk';
import OpenAI, { type APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { FakeAnthropic } from '../fakes/fake-anthropic.js';
import { providerConformance } from './provider-conformance.js';

/**
 * The anthropic kind against its fake: the shared conformance table (openai SDK through
 * /v1/chat/completions), then what is Anthropic's own: 529 overloaded is retried, prompt-cache
 * usage, system prompts, and the Messages face with the official @anthropic-ai/sdk end to end.
 */
const KEY = 'sk-ant-test-0123456789';
const ctx = providerConformance({
  kind: 'anthropic',
  startFake: async () => {
    const f = await new FakeAnthropic().start();
    f.apiKey = KEY;
    return f;
  },
  deployment: (f) => ({ kind: 'anthropic', base_url: f.url, api_key: KEY }),
  wrongCredentials: () => ({ api_key: 'sk-ant-wrong-9876543210' }),
  secrets: [KEY],
  chatModel: 'claude-fake-1',
  imageSeen: (body) => {
    expect(body.messages[0].content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: expect.stringMatching(/^iVBOR/) } },
    ]);
  },
  toolResultSeen: (body) => {
    expect(body.system).toBe('Be brief.');
    expect(body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(body.messages[1].content).toEqual([{ type: 'tool_use', id: 'toolu_fake1', name: 'get_weather', input: { city: 'Paris' } }]);
    expect(body.messages[2].content).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_fake1', content: '21 °C, sunny' }]);
  },
});

describe('anthropic: its own cases', () => {
  it('529 overloaded_error is retried (retryable), and is a 502 once retries are spent', async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup();
    fake.fail('overloaded');
    expect((await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] })).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(fake.requests).toHaveLength(2);
    const m0 = (await setup({ options: { maxRetries: 0 } })).model;
    fake.fail('overloaded');
    const e = (await env.client.chat.completions.create({ model: m0, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as APIError;
    expect([e.status, e.code]).toEqual([502, 'provider_server_error']);
  });

  it('prompt-cache usage: reads and writes count as prompt tokens, reads also as cached_tokens', async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup();
    fake.cache = { read: 40, write: 10 };
    const r = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'one two three' }] });
    expect(r.usage).toMatchObject({ prompt_tokens: 53, completion_tokens: 6, total_tokens: 59, prompt_tokens_details: { cached_tokens: 40 } });
    fake.cache = { read: 40, write: 10 };
    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'one two three' }], stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of s) usage = c.usage ?? usage;
    expect(usage).toMatchObject({ prompt_tokens: 53, prompt_tokens_details: { cached_tokens: 40 } });
  });

  it('what Anthropic cannot do is refused before sending: n > 1, a JSON response format', async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup();
    const e = (await env.client.chat.completions.create({ model, n: 2, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as APIError;
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/n > 1/);
    const f = (await env.client.chat.completions.create({ model, response_format: { type: 'json_object' }, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as APIError;
    expect(f.status).toBe(400);
    expect(f.message).toMatch(/response_format/);
    expect(fake.requests).toHaveLength(0);
  });

  it('the Messages face with @anthropic-ai/sdk: plain, streamed and tool use reach Claude and come back', async () => {
    const { env, setup } = ctx();
    const { model } = await setup();
    const client = new Anthropic({ baseURL: env.app.url, apiKey: env.key, maxRetries: 0 });
    const m = await client.messages.create({ model, max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'hello' }] });
    expect(m.content).toEqual([{ type: 'text', text: 'Hello from the fake model.', citations: null }].map(({ citations: _, ...b }) => expect.objectContaining(b)));
    expect(m.stop_reason).toBe('end_turn');
    const s = client.messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] });
    let text = '';
    s.on('text', (t) => {
      text += t;
    });
    const final = await s.finalMessage();
    expect(text).toBe('Hello from the fake model.');
    expect(final.usage.output_tokens).toBe(6);
    const t = await client.messages.create({
      model,
      max_tokens: 100,
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    expect(t.stop_reason).toBe('tool_use');
    expect(t.content[0]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } });
  });
});

describe("anthropic: the deployment's region feeds the data-boundary policy", () => {
  it('a classification limited to eu regions is refused by a us deployment and served by an eu one', async () => {
    const { env, fake, setup } = ctx();
    await env.app.services.gateway.policies.write(env.tenant.ctx, { boundaries: { confidential: ['local', 'private', 'public'] }, regions: { confidential: ['eu'] } }, Date.now());
    try {
      await setup({ extra: { region: 'us' }, models: [{ name: 'claude-regional', upstream: 'claude-fake-1' }] });
      const ask = (classification: string) =>
        env.client.chat.completions.create({ model: 'claude-regional', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'X-Enclave-Classification': classification } });
      expect((await ask('internal')).choices[0]!.message.content).toBe('Hello from the fake model.');
      const e = (await ask('confidential').catch((x: unknown) => x)) as APIError;
      expect(e.status).toBe(403);
      expect(fake.requests).toHaveLength(1); // only the internal call reached Anthropic
      await setup({ extra: { region: 'eu' }, models: [{ name: 'claude-regional', upstream: 'claude-fake-1' }] });
      expect((await ask('confidential')).choices[0]!.message.content).toBe('Hello from the fake model.');
    } finally {
      await env.app.services.gateway.policies.write(env.tenant.ctx, {}, Date.now());
    }
  });
});
