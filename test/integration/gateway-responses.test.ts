import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedTenant } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The OpenAI Responses face with the official openai SDK as the client (`responses.create`,
 * `.stream`, function calling with function_call_output, previous_response_id chains,
 * structured output, retrieve/delete), against the wire-faithful fake upstreams of both kinds.
 */
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv();
  await env.addProvider({ name: 'resp-openai', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'] });
  await env.addProvider({ name: 'resp-ollama', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: ['llama3.1:8b'] });
});
afterAll(async () => {
  await env?.close();
});

const lastSent = () => env.openai.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!.body;
const weather = [{ type: 'function' as const, name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false }];

describe('POST /v1/responses', () => {
  it('responses.create: instructions and input become the upstream chat; output_text, usage and a usage record with api responses', async () => {
    const seen = new Set((await env.usage()).map((x) => x.requestId));
    const r = await env.client.responses.create({ model: 'gpt-fake', instructions: 'Be brief.', input: 'hello there' });
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.status).toBe('completed');
    expect(r.output_text).toBe('Hello from the fake model.');
    expect(r.usage).toMatchObject({ input_tokens: 4, output_tokens: 6, total_tokens: 10 });
    expect(lastSent().messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello there' },
    ]);
    const u = await waitFor(async () => (await env.usage()).find((x) => x.api === 'responses' && !seen.has(x.requestId)), { what: "this call's responses usage record" });
    expect(u).toMatchObject({ endpoint: 'chat', status: 'ok', alias: 'gpt-fake', promptTokens: 4, completionTokens: 6 });
  });

  it('.stream: the typed event sequence and finalResponse()', async () => {
    const types: string[] = [];
    let text = '';
    const stream = env.client.responses.stream({ model: 'gpt-fake', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }] });
    stream.on('event', (e) => types.push(e.type));
    stream.on('response.output_text.delta', (e) => (text += e.delta));
    const final = await stream.finalResponse();
    expect(text).toBe('Hello from the fake model.');
    expect(final.output_text).toBe('Hello from the fake model.');
    expect(final.usage?.output_tokens).toBe(6);
    expect(types[0]).toBe('response.created');
    expect(types).toContain('response.output_item.added');
    expect(types).toContain('response.content_part.added');
    expect(types).toContain('response.output_text.done');
    expect(types.at(-1)).toBe('response.completed');
  });

  it('function calling round trip: function_call out, function_call_output back (stored conversation)', async () => {
    const first = await env.client.responses.create({ model: 'gpt-fake', input: 'Weather in Paris?', tools: weather });
    const call = first.output.find((o) => o.type === 'function_call')!;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', call_id: 'call_fake1', arguments: '{"city":"Paris"}' });
    expect(lastSent().tools[0]).toMatchObject({ type: 'function', function: { name: 'get_weather' } });

    const second = await env.client.responses.create({ model: 'gpt-fake', previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: 'call_fake1', output: '{"temp":21}' }] });
    expect(second.output_text).toBe('Hello from the fake model.');
    const msgs = lastSent().messages;
    expect(msgs.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'tool']);
    expect(msgs[1].tool_calls[0]).toMatchObject({ id: 'call_fake1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } });
    expect(msgs[2]).toEqual({ role: 'tool', tool_call_id: 'call_fake1', content: '{"temp":21}' });

    // Streamed function call: arguments arrive as deltas.
    const s = env.client.responses.stream({ model: 'gpt-fake', input: 'Weather?', tools: weather });
    let args = '';
    s.on('response.function_call_arguments.delta', (e) => (args += e.delta));
    const f = await s.finalResponse();
    expect(args).toBe('{"city":"Paris"}');
    expect(f.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Paris"}' });
  });

  it('previous_response_id chain, retrieve and delete; another key cannot read it; store:false is not kept', async () => {
    const a = await env.client.responses.create({ model: 'gpt-fake', input: 'first question' });
    const b = await env.client.responses.create({ model: 'gpt-fake', previous_response_id: a.id, input: 'second question' });
    expect(lastSent().messages).toEqual([
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: 'Hello from the fake model.' },
      { role: 'user', content: 'second question' },
    ]);
    expect(b.previous_response_id).toBe(a.id);
    const got = await env.client.responses.retrieve(b.id);
    expect(got.output_text).toBe('Hello from the fake model.');

    const other = await seedTenant(env.app.services, 'resp-other', ['member']);
    const { secret } = await env.app.services.identity.keys.create(other.ctx, { name: 'o', ownerUserId: other.users.member!.id });
    const stranger = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
    expect(await stranger.responses.retrieve(b.id).catch((e) => e)).toBeInstanceOf(OpenAI.NotFoundError);

    await env.client.responses.delete(b.id);
    expect(await env.client.responses.retrieve(b.id).catch((e) => e)).toBeInstanceOf(OpenAI.NotFoundError);
    const unstored = await env.client.responses.create({ model: 'gpt-fake', input: 'x', store: false });
    expect(await env.client.responses.retrieve(unstored.id).catch((e) => e)).toBeInstanceOf(OpenAI.NotFoundError);
    // Sealed at rest: the prompt is not in the table in clear.
    const raw = (await rawRows(env.app.services.store, sql`SELECT content FROM stored_responses`)) as { content: string }[];
    expect(JSON.stringify(raw)).not.toContain('first question');
  });

  it('structured output (text.format json_schema), sampling and max_output_tokens reach the upstream', async () => {
    await env.client.responses.create({
      model: 'gpt-fake',
      input: 'A city as JSON',
      temperature: 0.2,
      max_output_tokens: 50,
      text: { format: { type: 'json_schema', name: 'city', schema: { type: 'object', properties: { name: { type: 'string' } } }, strict: true } },
    });
    expect(lastSent()).toMatchObject({ temperature: 0.2, max_tokens: 50, response_format: { type: 'json_schema', json_schema: { name: 'city', strict: true } } });
  });

  it('onto an Ollama deployment (streamed and whole), and errors in the OpenAI shape', async () => {
    const s = env.client.responses.stream({ model: 'llama3.1:8b', input: 'hi' });
    expect((await s.finalResponse()).output_text).toBe('Hello from the fake model.');
    expect((await env.client.responses.create({ model: 'llama3.1:8b', input: 'hi' })).output_text).toBe('Hello from the fake model.');
    const e = await env.client.responses.create({ model: 'no-such-model', input: 'hi' }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e.code).toBe('model_not_found');
    const bad = await env.client.responses.create({ model: 'gpt-fake', input: 'x', tools: [{ type: 'web_search_preview' } as never] }).catch((x) => x);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    const missing = await env.client.responses.create({ model: 'gpt-fake', input: 'x', previous_response_id: 'resp_nope' }).catch((x) => x);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('a mid-stream upstream failure ends the stream with an error event', async () => {
    env.openai.fail('drop_mid_stream');
    const s = env.client.responses.stream({ model: 'gpt-fake', input: 'hi' });
    const err = await s.finalResponse().catch((x) => x);
    expect(err).toMatchObject({ type: 'error', code: 'provider_stream_error' });
    expect(String(err.message)).not.toMatch(/127\.0\.0\.1|ECONN/);
    await waitFor(async () => (await env.usage()).find((x) => x.api === 'responses' && x.status === 'stream_error'), { what: 'a stream_error usage record' });
  });
});
