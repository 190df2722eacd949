import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OllamaAdapter } from '../../server/providers/ollama/adapter.js';
import { OpenAIAdapter } from '../../server/providers/openai/adapter.js';
import { UpstreamError, type ProviderAdapter } from '../../server/providers/types.js';
import { readNdjson, readSse } from '../../server/providers/upstream-http.js';
import { FakeOllama } from '../fakes/fake-ollama.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import type { FakeUpstream, FaultMode } from '../fakes/common.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The provider adapters on the gateway's own HTTP client (server/providers/upstream-http.ts)
 * against the wire-faithful fakes: answers, every fault mode mapped to its provider_* code,
 * keep-alive reuse across plain and streamed calls, and an abort that lets the connection go.
 */
let openai: FakeOpenAI;
let ollama: FakeOllama;
const cases: { name: string; fake: () => FakeUpstream; adapter: () => ProviderAdapter; model: string }[] = [];

beforeAll(async () => {
  openai = await new FakeOpenAI().start();
  ollama = await new FakeOllama().start();
  const oa = new OpenAIAdapter({ baseUrl: `${openai.url}/v1`, apiKey: 'sk-test' });
  const ol = new OllamaAdapter({ baseUrl: ollama.url });
  cases.push({ name: 'openai', fake: () => openai, adapter: () => oa, model: 'gpt-fake' }, { name: 'ollama', fake: () => ollama, adapter: () => ol, model: 'llama3.1:8b' });
});
afterAll(async () => {
  await openai?.close();
  await ollama?.close();
});

const signal = (): AbortSignal => new AbortController().signal;
const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

async function drain(a: ProviderAdapter, model: string, s = signal()): Promise<string> {
  let text = '';
  for await (const c of await a.chatStream(chat(model) as never, { signal: s })) text += c.choices[0]?.delta?.content ?? '';
  return text;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(UpstreamError);
  return (e as UpstreamError).code;
}

describe.each(['openai', 'ollama'])('%s adapter over upstream-http', (name) => {
  const c = () => cases.find((x) => x.name === name)!;

  it('answers plain and streamed chats, embeddings and the model list over one keep-alive connection', async () => {
    const { fake, adapter, model } = c();
    fake().reset();
    const before = fake().connections;
    for (let i = 0; i < 5; i++) {
      const r = await adapter().chat(chat(model) as never, { signal: signal() });
      expect(r.choices[0]!.message.content).toBe('Hello from the fake model.');
      expect(r.usage?.prompt_tokens).toBeGreaterThan(0);
      expect(await drain(adapter(), model)).toBe('Hello from the fake model.');
    }
    // Keep-alive: ten calls, at most two connections (the pool may open a second while the
    // first is being released), never one per call.
    expect(fake().connections - before).toBeLessThanOrEqual(2);
    const models = await adapter().listModels({ signal: signal() });
    expect(models.length).toBeGreaterThan(0);
  });

  it.each<[FaultMode, string, boolean]>([
    ['rate_limit', 'provider_rate_limited', false],
    ['server_error', 'provider_server_error', false],
    ['drop', 'provider_connection_error', false],
    ['malformed', 'provider_bad_response', false],
    ['malformed', 'provider_stream_error', true],
    ['drop_mid_stream', 'provider_stream_error', true],
    ['error_mid_stream', 'provider_stream_error', true],
  ])('%s → %s (streamed: %s)', async (mode, code, streamed) => {
    const { fake, adapter, model } = c();
    fake().reset();
    fake().fail(mode === 'rate_limit' ? { mode, retryAfterS: 3 } : mode);
    const p = streamed ? drain(adapter(), model) : adapter().chat(chat(model) as never, { signal: signal() });
    if (name === 'openai' && mode === 'malformed' && !streamed) {
      expect(await codeOf(p)).toBe('provider_bad_response');
      return;
    }
    const got = await codeOf(p);
    // A non-streaming Ollama call reads the NDJSON stream too: a fault after the status is a stream error.
    expect(got).toBe(name === 'ollama' && !streamed && mode === 'malformed' ? 'provider_stream_error' : code);
    if (mode === 'rate_limit') {
      const e = await (streamed ? drain(adapter(), model) : adapter().chat(chat(model) as never, { signal: signal() })).then(() => undefined);
      expect(e).toBeUndefined(); // the next call works
    }
  });

  it('Retry-After reaches the error', async () => {
    const { fake, adapter, model } = c();
    fake().reset();
    fake().fail({ mode: 'rate_limit', retryAfterS: 3 });
    const e = await adapter()
      .chat(chat(model) as never, { signal: signal() })
      .catch((x: unknown) => x as UpstreamError);
    expect((e as UpstreamError).retryAfterMs).toBe(3000);
  });

  it('an abort mid-stream ends the iteration and closes that connection; the next call still works', async () => {
    const { fake, adapter, model } = c();
    fake().reset();
    expect(await drain(adapter(), model)).toBe('Hello from the fake model.'); // at least one pooled connection
    const accepted = fake().connections;
    const open = fake().openConnections;
    fake().chunkDelayMs = 30;
    const ac = new AbortController();
    const it = await adapter().chatStream(chat(model) as never, { signal: ac.signal });
    const seen: unknown[] = [];
    const err = await (async () => {
      for await (const chunk of it) {
        seen.push(chunk);
        if (seen.length === 2) ac.abort();
      }
    })().catch((x: unknown) => x);
    // Ended by the abort itself (not some other failure), right after the chunk that fired it.
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(seen).toHaveLength(2);
    // The aborted call's connection (pooled or new) is closed, not returned to the pool.
    const expected = (): number => open + (fake().connections - accepted) - 1;
    await waitFor(() => fake().openConnections, { until: (n) => n === expected(), what: `${expected()} open connections upstream` });
    fake().chunkDelayMs = 0;
    expect(await drain(adapter(), model)).toBe('Hello from the fake model.');
  });
});

async function* pieces(text: string, at: number[]): AsyncGenerator<Buffer> {
  const b = Buffer.from(text);
  let from = 0;
  for (const i of [...at, b.length]) {
    yield b.subarray(from, i);
    from = i;
  }
}

describe('event-stream and NDJSON readers', () => {
  const sse = '\uFEFF: comment\r\nevent: error\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: é\n\ndata: last\rid: 7\r\r';
  it('reads SSE with CR LF, CR and LF line ends, comments, multi-line data and a BOM, split at every byte', async () => {
    const len = Buffer.byteLength(sse);
    for (let i = 1; i < len; i++) {
      const out = [];
      for await (const ev of readSse(pieces(sse, [i]))) out.push(ev);
      expect(out, `split at ${i}`).toEqual([
        { event: 'error', data: '{"a":\n1}' },
        { event: 'message', data: 'é' },
        { event: 'message', data: 'last' },
      ]);
    }
  });
  it('drops an event that never got its blank line', async () => {
    const out = [];
    for await (const ev of readSse(pieces('data: a\n\ndata: cut', []))) out.push(ev);
    expect(out).toEqual([{ event: 'message', data: 'a' }]);
  });
  it('reads NDJSON split anywhere, without a final newline; a broken line is an error', async () => {
    const text = '{"a":1}\n\n{"b":"é"}\n{"c":3}';
    for (let i = 1; i < Buffer.byteLength(text); i++) {
      const out = [];
      for await (const v of readNdjson(pieces(text, [i]))) out.push(v);
      expect(out).toEqual([{ a: 1 }, { b: 'é' }, { c: 3 }]);
    }
    const bad = (async () => {
      for await (const _ of readNdjson(pieces('{"a":1}\n{"b":', []))) void _;
    })();
    await expect(bad).rejects.toBeInstanceOf(SyntaxError);
  });
});
