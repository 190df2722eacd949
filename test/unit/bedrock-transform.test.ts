import { describe, expect, it } from 'vitest';
import { bedrockError, fromConverse, toConverse, toOpenAIChunks, type StreamEvent } from '../../server/providers/bedrock/transform.js';
import { UpstreamError } from '../../server/providers/types.js';

/** OpenAI Chat Completions ⇄ Bedrock Converse, the edges the conformance table does not reach. */
async function* events(list: StreamEvent[]): AsyncGenerator<StreamEvent> {
  for (const e of list) yield e;
}
async function chunks(list: StreamEvent[]) {
  const out = [];
  for await (const c of toOpenAIChunks(events(list), 'm')) out.push(c);
  return out;
}
const rejectedBy = (f: () => unknown): UpstreamError => {
  try {
    f();
  } catch (e) {
    return e as UpstreamError;
  }
  throw new Error('did not throw');
};

describe('toConverse', () => {
  it('merges neighbouring turns of one role (tool results after each other, a user text after a tool result)', () => {
    const r = toConverse({
      model: 'm',
      messages: [
        { role: 'developer', content: 'rules' },
        { role: 'user', content: 'q' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }, { id: 'b', type: 'function', function: { name: 'g', arguments: '' } }] },
        { role: 'tool', tool_call_id: 'a', content: '1' },
        { role: 'tool', tool_call_id: 'b', content: [{ type: 'text', text: '2' }] },
        { role: 'user', content: 'and?' },
      ],
    } as never);
    expect(r.system).toEqual([{ text: 'rules' }]);
    expect(r.messages).toEqual([
      { role: 'user', content: [{ text: 'q' }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 'a', name: 'f', input: { x: 1 } } }, { toolUse: { toolUseId: 'b', name: 'g', input: {} } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'a', content: [{ text: '1' }] } }, { toolResult: { toolUseId: 'b', content: [{ text: '2' }] } }, { text: 'and?' }] },
    ]);
  });

  it('refuses what Converse cannot do, before anything is sent (400)', () => {
    expect(rejectedBy(() => toConverse({ model: 'm', n: 2, messages: [{ role: 'user', content: 'x' }] } as never)).code).toBe('provider_request_rejected');
    expect(rejectedBy(() => toConverse({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/bmp;base64,AA==' } }] }] } as never)).message).toMatch(/image\/bmp/);
    expect(rejectedBy(() => toConverse({ model: 'm', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] } as never)).message).toMatch(/not valid JSON/);
    expect(rejectedBy(() => toConverse({ model: 'm', messages: [{ role: 'function', content: 'x' }] } as never)).message).toMatch(/role function/);
  });

  it('tool_choice none sends no tools; stop as a string becomes one stop sequence', () => {
    const r = toConverse({ model: 'm', tool_choice: 'none', stop: 'END', tools: [{ type: 'function', function: { name: 'f' } }], messages: [{ role: 'user', content: 'x' }] } as never);
    expect(r.toolConfig).toBeUndefined();
    expect(r.inferenceConfig).toEqual({ stopSequences: ['END'] });
  });
});

describe('Converse answers', () => {
  it('text and tool use, stop reasons and cached prompt tokens', () => {
    const c = fromConverse({ output: { message: { content: [{ text: 'a' }, { toolUse: { toolUseId: 't', name: 'f', input: { y: 2 } } }] } }, stopReason: 'tool_use', usage: { inputTokens: 3, outputTokens: 4, totalTokens: 7, cacheReadInputTokens: 2 } }, 'm');
    expect(c.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { content: 'a', tool_calls: [{ id: 't', function: { name: 'f', arguments: '{"y":2}' } }] } });
    expect(c.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: 2 } });
    expect(fromConverse({ output: { message: { content: [{ text: '' }] } }, stopReason: 'guardrail_intervened' }, 'm').choices[0]!.finish_reason).toBe('content_filter');
    expect(fromConverse({ output: { message: { content: [] } }, stopReason: 'max_tokens' }, 'm').choices[0]!.finish_reason).toBe('length');
    expect(() => fromConverse({}, 'm')).toThrow(/output\.message\.content/);
  });

  it('a stream without messageStop was cut off; tool input for a block never started is an error', async () => {
    await expect(chunks([{ type: 'messageStart', body: { role: 'assistant' } }, { type: 'contentBlockDelta', body: { delta: { text: 'a' } } }])).rejects.toThrow(/ended before the answer was finished/);
    await expect(chunks([{ type: 'contentBlockDelta', body: { contentBlockIndex: 3, delta: { toolUse: { input: '{' } } } }])).rejects.toThrow(/never started/);
  });

  it('two tool blocks are numbered in the order they start; unknown event types are skipped', async () => {
    const out = await chunks([
      { type: 'messageStart', body: { role: 'assistant' } },
      { type: 'contentBlockStart', body: { contentBlockIndex: 1, start: { toolUse: { toolUseId: 'x', name: 'f' } } } },
      { type: 'contentBlockStart', body: { contentBlockIndex: 2, start: { toolUse: { toolUseId: 'y', name: 'g' } } } },
      { type: 'contentBlockDelta', body: { contentBlockIndex: 2, delta: { toolUse: { input: '{}' } } } },
      { type: 'somethingNew', body: {} },
      { type: 'messageStop', body: { stopReason: 'tool_use' } },
      { type: 'metadata', body: { usage: { inputTokens: 1, outputTokens: 2 } } },
    ]);
    expect(out.map((c) => c.choices[0]?.delta?.tool_calls?.[0]?.index ?? null)).toEqual([null, 0, 1, 1, null, null]);
    expect(out.at(-1)!.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  });
});

describe('bedrockError', () => {
  it.each([
    [429, 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/', 'provider_rate_limited', true],
    [429, 'ModelNotReadyException', 'provider_server_error', true],
    [503, 'ServiceUnavailableException', 'provider_server_error', true],
    [400, 'ValidationException', 'provider_request_rejected', false],
    [403, 'AccessDeniedException', 'provider_auth_failed', false],
    [403, 'UnrecognizedClientException', 'provider_auth_failed', false],
    [404, 'ResourceNotFoundException', 'provider_model_not_found', false],
    [418, undefined, 'provider_request_rejected', false],
    [undefined, 'throttlingException', 'provider_rate_limited', true],
    [undefined, 'modelStreamErrorException', 'provider_stream_error', true],
  ] as const)('%s %s → %s', (status, type, code, retryable) => {
    const e = bedrockError(status, type, 'why');
    expect(e.code).toBe(code);
    expect(e.retryable).toBe(retryable);
  });
});
