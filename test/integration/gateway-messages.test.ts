import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The Anthropic Messages face with the official @anthropic-ai/sdk as the client (what Claude
 * Code speaks): messages.create, messages.stream + finalMessage(), a tool_use round trip,
 * images, countTokens, and each error class — against the wire-faithful fakes of both
 * upstream kinds.
 */
let env: GatewayEnv;
let client: Anthropic;
beforeAll(async () => {
  env = await gatewayEnv();
  await env.addProvider({ name: 'msg-openai', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0 } });
  // The error-class test opens this deployment's breaker on purpose; its own model keeps the
  // other tests (in any order: --sequence.shuffle) off the open breaker.
  await env.addProvider({ name: 'msg-errors', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-errors'], options: { maxRetries: 0, breakerFailures: 1 } });
  await env.addProvider({ name: 'msg-ollama', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: ['llama3.1:8b'] });
  client = new Anthropic({ baseURL: env.app.url, apiKey: env.key, maxRetries: 0 });
});
afterAll(async () => {
  await env?.close();
});

const lastSent = () => env.openai.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!.body;
const weather = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }];

describe('POST /v1/messages', () => {
  it('messages.create (x-api-key): system and messages reach the upstream; a Message with usage; usage record api messages', async () => {
    const seen = new Set((await env.usage()).map((x) => x.requestId));
    const m = await client.messages.create({ model: 'gpt-fake', max_tokens: 100, system: 'Be brief.', stop_sequences: ['END'], messages: [{ role: 'user', content: 'hello there' }] });
    expect(m).toMatchObject({ type: 'message', role: 'assistant', model: 'gpt-fake', stop_reason: 'end_turn', usage: { input_tokens: 4, output_tokens: 6 } });
    expect(m.content).toEqual([{ type: 'text', text: 'Hello from the fake model.' }]);
    expect(lastSent()).toMatchObject({ max_tokens: 100, stop: ['END'], messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }] });
    const u = await waitFor(async () => (await env.usage()).find((x) => x.api === 'messages' && !seen.has(x.requestId)), { what: "this call's messages usage record" });
    expect(u).toMatchObject({ status: 'ok', promptTokens: 4, completionTokens: 6 });
    // A bearer token works too (ANTHROPIC_AUTH_TOKEN).
    const bearer = new Anthropic({ baseURL: env.app.url, authToken: env.key, apiKey: null, maxRetries: 0 });
    expect((await bearer.messages.create({ model: 'gpt-fake', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })).content[0]).toMatchObject({ type: 'text' });
  });

  it('messages.stream: the event sequence and finalMessage()', async () => {
    const types: string[] = [];
    let text = '';
    const s = client.messages.stream({ model: 'gpt-fake', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    s.on('streamEvent', (e) => types.push(e.type));
    s.on('text', (t) => (text += t));
    const m = await s.finalMessage();
    expect(text).toBe('Hello from the fake model.');
    expect(m.content).toEqual([{ type: 'text', text: 'Hello from the fake model.' }]);
    expect(m.stop_reason).toBe('end_turn');
    expect(m.usage.output_tokens).toBe(6);
    expect(types[0]).toBe('message_start');
    expect(types).toEqual(expect.arrayContaining(['content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta']));
    expect(types.at(-1)).toBe('message_stop');
  });

  it('tool_use round trip (streamed input_json and whole), tool_result back as a tool message', async () => {
    const s = client.messages.stream({ model: 'gpt-fake', max_tokens: 100, tools: weather, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    let json = '';
    s.on('inputJson', (delta) => (json += delta));
    const m = await s.finalMessage();
    expect(json).toBe('{"city":"Paris"}');
    expect(m.stop_reason).toBe('tool_use');
    const use = m.content.find((c) => c.type === 'tool_use')!;
    expect(use).toMatchObject({ type: 'tool_use', id: 'call_fake1', name: 'get_weather', input: { city: 'Paris' } });
    expect(lastSent().tools[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', parameters: weather[0]!.input_schema } });

    const next = await client.messages.create({
      model: 'gpt-fake',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: m.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_fake1', content: '21 degrees' }] },
      ],
    });
    expect(next.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake model.' });
    const msgs = lastSent().messages;
    expect(msgs[1]).toMatchObject({ role: 'assistant', tool_calls: [{ id: 'call_fake1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] });
    expect(msgs[2]).toEqual({ role: 'tool', tool_call_id: 'call_fake1', content: '21 degrees' });

    const whole = await client.messages.create({ model: 'gpt-fake', max_tokens: 100, tools: weather, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Weather?' }] });
    expect(whole.content[0]).toMatchObject({ type: 'tool_use', input: { city: 'Paris' } });
    expect(lastSent().tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
  });

  it('images as base64 blocks, onto an Ollama deployment too', async () => {
    const png = Buffer.from('fake-png').toString('base64');
    await client.messages.create({ model: 'gpt-fake', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] }] });
    expect(lastSent().messages[0].content[1]).toEqual({ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } });
    const m = await client.messages.stream({ model: 'llama3.1:8b', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] }] }).finalMessage();
    expect(m.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake model.' });
    expect(env.ollama.requests.at(-1)!.body.messages[0].images).toEqual([png]);
  });

  it('countTokens', async () => {
    const r = await client.messages.countTokens({ model: 'gpt-fake', system: 'Be brief.', messages: [{ role: 'user', content: 'hello there, how are you today?' }] });
    expect(r.input_tokens).toBeGreaterThan(0);
    expect(await client.messages.countTokens({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e)).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('each error class, in Anthropic’s error shape', async () => {
    const hi = [{ role: 'user' as const, content: 'hi' }];
    const auth = await new Anthropic({ baseURL: env.app.url, apiKey: 'enk_nope', maxRetries: 0 }).messages.create({ model: 'gpt-errors', max_tokens: 5, messages: hi }).catch((e) => e);
    expect(auth).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(auth.error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });

    const missing = await client.messages.create({ model: 'gpt-errors', messages: hi } as never).catch((e) => e);
    expect(missing).toBeInstanceOf(Anthropic.BadRequestError);
    expect(missing.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });

    const unknown = await client.messages.create({ model: 'no-such-model', max_tokens: 5, messages: hi }).catch((e) => e);
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError);

    const policy = await client.messages.create({ model: 'gpt-errors', max_tokens: 5, messages: hi }, { headers: { 'x-enclave-classification': 'restricted' } }).catch((e) => e);
    expect(policy).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect(policy.error.error.type).toBe('permission_error');

    env.openai.fail('server_error');
    const upstream = await client.messages.create({ model: 'gpt-errors', max_tokens: 5, messages: hi }).catch((e) => e);
    expect(upstream).toBeInstanceOf(Anthropic.InternalServerError);
    expect(upstream.error.error.type).toBe('api_error');
    // The breaker (1 failure) is open now: an overloaded upstream is 529 overloaded_error.
    const overloaded = await client.messages.create({ model: 'gpt-errors', max_tokens: 5, messages: hi }).catch((e) => e);
    expect(overloaded.status).toBe(529);
    expect(overloaded.error.error.type).toBe('overloaded_error');
  });
});
