import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../server/providers/types.js';
import { fromGemini, googleError, toGemini, toOpenAIChunks, type GeminiResponse } from '../../server/providers/vertex/transform.js';

/** OpenAI Chat Completions ⇄ Gemini generateContent, the edges the conformance table does not reach. */
async function chunks(list: GeminiResponse[]) {
  async function* src(): AsyncGenerator<GeminiResponse> {
    for (const r of list) yield r;
  }
  const out = [];
  for await (const c of toOpenAIChunks(src(), 'm')) out.push(c);
  return out;
}

describe('toGemini', () => {
  it('a tool message names its function through the call it answers; an unknown call id is refused', () => {
    const r = toGemini({
      model: 'm',
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: 'let me look', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"k":"v"}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'plain text' },
      ],
    } as never);
    expect(r.contents).toEqual([
      { role: 'user', parts: [{ text: 'q' }] },
      { role: 'model', parts: [{ text: 'let me look' }, { functionCall: { name: 'lookup', args: { k: 'v' } } }] },
      { role: 'user', parts: [{ functionResponse: { name: 'lookup', response: { content: 'plain text' } } }] },
    ]);
    expect(() => toGemini({ model: 'm', messages: [{ role: 'tool', tool_call_id: 'zz', content: 'x' }] } as never)).toThrow(/no earlier assistant message called/);
  });

  it('generationConfig from sampling, n, stop and response_format (schema cleaned)', () => {
    const r = toGemini({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      max_completion_tokens: 5,
      top_p: 0.5,
      seed: 7,
      n: 2,
      stop: ['a', 'b'],
      response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } } },
    } as never);
    expect(r.generationConfig).toEqual({ maxOutputTokens: 5, topP: 0.5, seed: 7, candidateCount: 2, stopSequences: ['a', 'b'], responseMimeType: 'application/json', responseSchema: { type: 'object', properties: { a: { type: 'string' } } } });
  });
});

describe('Gemini answers', () => {
  it('thought parts are left out; thinking tokens count as completion tokens', () => {
    const c = fromGemini({ candidates: [{ content: { parts: [{ text: 'hmm', thought: true }, { text: 'answer' }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 3, thoughtsTokenCount: 5, totalTokenCount: 10 } }, 'm');
    expect(c.choices[0]!.message.content).toBe('answer');
    expect(c.usage).toEqual({ prompt_tokens: 2, completion_tokens: 8, total_tokens: 10, completion_tokens_details: { reasoning_tokens: 5 } });
  });

  it('a blocked prompt and an empty safety stop are provider_content_filtered naming the side; a cut answer keeps its words', () => {
    const p = (() => {
      try {
        fromGemini({ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' } }, 'm');
      } catch (e) {
        return e as UpstreamError;
      }
    })()!;
    expect([p.code, p.upstreamText, p.retryable]).toEqual(['provider_content_filtered', 'prompt', false]);
    expect(() => fromGemini({ candidates: [{ content: { parts: [] }, finishReason: 'SAFETY' }] }, 'm')).toThrow(/blocked the answer/);
    expect(fromGemini({ candidates: [{ content: { parts: [{ text: 'part' }] }, finishReason: 'RECITATION' }] }, 'm').choices[0]!.finish_reason).toBe('content_filter');
  });

  it('a stream without a finishReason was cut off; two candidates stream as two choices', async () => {
    await expect(chunks([{ candidates: [{ content: { parts: [{ text: 'a' }] } }] }])).rejects.toThrow(/ended before the answer was finished/);
    const out = await chunks([
      { candidates: [{ index: 0, content: { parts: [{ text: 'a' }] } }, { index: 1, content: { parts: [{ text: 'b' }] } }] },
      { candidates: [{ index: 0, finishReason: 'STOP' }, { index: 1, finishReason: 'MAX_TOKENS' }], usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 2 } },
    ]);
    expect(out.filter((c) => c.choices[0]?.finish_reason).map((c) => [c.choices[0]!.index, c.choices[0]!.finish_reason])).toEqual([
      [0, 'stop'],
      [1, 'length'],
    ]);
    expect(out.at(-1)!.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  });
});

describe('googleError', () => {
  it.each([
    [429, { error: { code: 429, status: 'RESOURCE_EXHAUSTED', message: 'quota', details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2.5s' }] } }, 'provider_rate_limited', 2500],
    [400, { error: { code: 400, status: 'INVALID_ARGUMENT', message: 'API key not valid.', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }] } }, 'provider_auth_failed', undefined],
    [400, { error: { code: 400, status: 'INVALID_ARGUMENT', message: 'bad field' } }, 'provider_request_rejected', undefined],
    [403, { error: { code: 403, status: 'PERMISSION_DENIED', message: 'denied' } }, 'provider_auth_failed', undefined],
    [404, { error: { code: 404, status: 'NOT_FOUND', message: 'no model' } }, 'provider_model_not_found', undefined],
    [503, { error: { code: 503, status: 'UNAVAILABLE', message: 'overloaded' } }, 'provider_server_error', undefined],
  ] as const)('%s → %s', (status, body, code, retry) => {
    const e = googleError(status, JSON.stringify(body));
    expect(e.code).toBe(code);
    expect(e.retryAfterMs).toBe(retry);
  });
  it('a body that is not JSON keeps the status', () => {
    expect(googleError(502, '<html>bad gateway</html>').code).toBe('provider_server_error');
  });
});
