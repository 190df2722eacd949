import { describe, expect, it } from 'vitest';
import { OllamaAdapter } from '../../server/providers/ollama/adapter.js';
import { OpenAIAdapter } from '../../server/providers/openai/adapter.js';
import { UpstreamError } from '../../server/providers/types.js';
import { freePort } from '../../server/redis/ping.js';

describe('provider adapters: an unreachable provider', () => {
  it('is a provider_connection_error for both kinds (retryable, counts against the breaker)', async () => {
    const port = await freePort(); // nothing listens there
    const adapters = [
      new OllamaAdapter({ baseUrl: `http://127.0.0.1:${port}` } as never),
      new OpenAIAdapter({ baseUrl: `http://127.0.0.1:${port}/v1` } as never),
    ];
    for (const a of adapters) {
      const e = await a.chat({ model: 'm', messages: [{ role: 'user', content: 'hi' }] } as never, { signal: new AbortController().signal } as never).catch((x: unknown) => x);
      expect(e, a.kind).toBeInstanceOf(UpstreamError);
      expect((e as UpstreamError).code, a.kind).toBe('provider_connection_error');
    }
  });
});
