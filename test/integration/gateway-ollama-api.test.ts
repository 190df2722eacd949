import { Ollama } from 'ollama';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The Ollama API face of the gateway (`/ollama/api/*`), with the official `ollama` SDK as the
 * client: the same pipeline as /v1 (auth, policy, routing to an Ollama or an
 * OpenAI-compatible upstream, usage records), answers and errors in Ollama's shapes.
 */
let env: GatewayEnv;
let ollama: Ollama;
beforeAll(async () => {
  env = await gatewayEnv();
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b,nomic-embed-text' });
  await env.addProvider({ name: 'openai-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: 'gpt-fake' });
  ollama = new Ollama({ host: `${env.app.url}/ollama`, headers: { authorization: `Bearer ${env.key}` } });
});
afterAll(async () => env?.close());
beforeEach(() => {
  env.ollama.reset();
  env.openai.reset();
});

const hi = [{ role: 'user', content: 'hi' }];

describe('the ollama SDK as a client of Enclave', () => {
  it('lists the models the key may use, and the version', async () => {
    const names = (await ollama.list()).models.map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['llama3.1:8b', 'nomic-embed-text', 'gpt-fake']));
    expect((await ollama.version()).version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('chat, whole and streamed, to an Ollama upstream and to an OpenAI-compatible one; one usage record per call', async () => {
    const before = (await env.usage()).length;
    for (const model of ['llama3.1:8b', 'gpt-fake']) {
      const r = await ollama.chat({ model, messages: hi, options: { temperature: 0.2, num_predict: 50 } });
      expect(r).toMatchObject({ model, done: true, done_reason: 'stop', message: { role: 'assistant', content: 'Hello from the fake model.' } });
      expect(r.prompt_eval_count).toBeGreaterThan(0);
      expect(r.eval_count).toBeGreaterThan(0);

      const parts = [];
      for await (const p of await ollama.chat({ model, messages: hi, stream: true })) parts.push(p);
      expect(parts.map((p) => p.message.content).join('')).toBe('Hello from the fake model.');
      expect(parts.slice(0, -1).every((p) => p.done === false)).toBe(true);
      expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'stop' });
      expect(parts.at(-1)!.eval_count).toBeGreaterThan(0);
    }
    // The options reached the upstream in its own protocol.
    expect(env.ollama.requests.find((r) => r.path === '/api/chat' && r.body.stream === true)).toBeDefined();
    const sent = env.openai.requests.filter((r) => r.path === '/v1/chat/completions');
    expect(sent[0]!.body).toMatchObject({ model: 'gpt-fake', temperature: 0.2, max_tokens: 50 });
    await waitFor(async () => (await env.usage()).length, { until: (n) => n >= before + 4, what: `${before + 4} usage records` });
    const rows = (await env.usage()).slice(0, 4);
    expect(rows.every((u) => u.endpoint === 'chat' && u.status === 'ok')).toBe(true);
  });

  it('tool calls come back as Ollama tool calls (arguments as an object), whole and streamed', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const r = await ollama.chat({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'weather in Paris?' }], tools });
    expect(r.message.tool_calls).toEqual([{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
    const parts = [];
    for await (const p of await ollama.chat({ model: 'gpt-fake', messages: [{ role: 'user', content: 'weather in Paris?' }], tools, stream: true })) parts.push(p);
    expect(parts.at(-1)!.done).toBe(true);
    expect(parts.flatMap((p) => p.message.tool_calls ?? []).map((t) => t.function.name)).toEqual(['get_weather']);

    // The tool's answer goes back without an id (Ollama has none): upstream, it is paired with its call.
    env.openai.reset();
    await ollama.chat({
      model: 'gpt-fake',
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
        { role: 'tool', content: '{"temp": 21}', tool_name: 'get_weather' },
      ],
      tools,
    });
    const [user, assistant, tool] = env.openai.requests[0]!.body.messages;
    expect(user).toMatchObject({ role: 'user' });
    expect(assistant.tool_calls[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } });
    expect(tool).toEqual({ role: 'tool', content: '{"temp": 21}', tool_call_id: assistant.tool_calls[0].id });
  });

  it('generate (prompt and system → one chat turn), whole and streamed', async () => {
    const r = await ollama.generate({ model: 'gpt-fake', prompt: 'hi', system: 'be brief', options: { num_predict: 20 } });
    expect(r).toMatchObject({ model: 'gpt-fake', response: 'Hello from the fake model.', done: true });
    expect(env.openai.requests.at(-1)!.body).toMatchObject({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }], max_tokens: 20 });
    const parts = [];
    for await (const p of await ollama.generate({ model: 'llama3.1:8b', prompt: 'hi', stream: true })) parts.push(p);
    expect(parts.map((p) => p.response).join('')).toBe('Hello from the fake model.');
    expect(parts.at(-1)!.done).toBe(true);
  });

  it('embed', async () => {
    const r = await ollama.embed({ model: 'nomic-embed-text', input: ['one', 'two'] });
    expect(r.embeddings).toHaveLength(2);
    expect(r.embeddings[0]!.length).toBeGreaterThan(0);
  });

  it('errors arrive as the SDK’s ResponseError with Ollama’s message and the status: bad key, unknown model, bad body, upstream failure, mid-stream failure', async () => {
    const status = async (p: Promise<unknown>) => p.then(() => undefined, (e: { status_code?: number; error?: unknown; message: string }) => e);
    const badKey = await status(new Ollama({ host: `${env.app.url}/ollama`, headers: { authorization: 'Bearer enk_nope' } }).list());
    expect(badKey).toMatchObject({ name: 'ResponseError', status_code: 401 });
    expect(typeof badKey!.error).toBe('string');
    const noAuth = await status(new Ollama({ host: `${env.app.url}/ollama` }).chat({ model: 'llama3.1:8b', messages: hi }));
    expect(noAuth).toMatchObject({ status_code: 401 });

    const unknown = await status(ollama.chat({ model: 'no-such-model', messages: hi }));
    expect(unknown).toMatchObject({ status_code: 404 });
    expect(unknown!.message).toMatch(/no-such-model/);

    const bad = await fetch(`${env.app.url}/ollama/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama3.1:8b' }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'messages must be an array' });

    env.ollama.failAlways('server_error');
    try {
      const down = await status(ollama.chat({ model: 'llama3.1:8b', messages: hi }));
      expect(down).toMatchObject({ status_code: 502 });
    } finally {
      env.ollama.failAlways(undefined);
    }

    env.openai.fail('drop_mid_stream');
    const it = await ollama.chat({ model: 'gpt-fake', messages: hi, stream: true });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const p of it) seen.push(p.message.content);
      })(),
    ).rejects.toThrow(/provider/i);
    expect(seen.length).toBeGreaterThan(0);
  });

  it('an unknown /ollama path is a JSON 404, not the web UI', async () => {
    const r = await fetch(`${env.app.url}/ollama/api/ps`, { headers: { authorization: `Bearer ${env.key}`, accept: 'text/html' } });
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toMatch(/json/);
  });
});
