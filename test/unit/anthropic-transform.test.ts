import { describe, expect, it } from 'vitest';
import { StreamFold, toAnthropicRequest, toCompletion, toUsage } from '../../server/providers/anthropic/transform.js';
import { UpstreamError, type ChatRequest } from '../../server/providers/types.js';

/** The OpenAI ⇄ Anthropic Messages translation on its own: the shapes the fake does not produce. */
const req = (r: Record<string, unknown>): ChatRequest => ({ model: 'claude', messages: [], ...r }) as ChatRequest;

describe('toAnthropicRequest', () => {
  it('merges same-role turns (tool results of parallel calls), joins system and developer text, maps tool_choice', () => {
    const out = toAnthropicRequest(
      req({
        messages: [
          { role: 'system', content: 'A.' },
          { role: 'developer', content: [{ type: 'text', text: 'B.' }] },
          { role: 'user', content: 'weather in Paris and Rome?' },
          {
            role: 'assistant',
            content: 'Checking.',
            tool_calls: [
              { id: 't1', type: 'function', function: { name: 'w', arguments: '{"city":"Paris"}' } },
              { id: 't2', type: 'function', function: { name: 'w', arguments: '' } },
            ],
          },
          { role: 'tool', tool_call_id: 't1', content: '21' },
          { role: 'tool', tool_call_id: 't2', content: [{ type: 'text', text: '25' }] },
          { role: 'user', content: 'thanks' },
        ],
        tools: [{ type: 'function', function: { name: 'w', parameters: { type: 'object' } } }],
        tool_choice: 'required',
        parallel_tool_calls: false,
        stop: 'END',
        temperature: 1.5,
        max_completion_tokens: 50,
      }),
      true,
    );
    expect(out.system).toBe('A.\n\nB.');
    expect(out.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(out.messages[1].content).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 't1', name: 'w', input: { city: 'Paris' } },
      { type: 'tool_use', id: 't2', name: 'w', input: {} },
    ]);
    expect(out.messages[2].content).toEqual([
      { type: 'tool_result', tool_use_id: 't1', content: '21' },
      { type: 'tool_result', tool_use_id: 't2', content: '25' },
      { type: 'text', text: 'thanks' },
    ]);
    expect(out).toMatchObject({ tool_choice: { type: 'any', disable_parallel_tool_use: true }, stop_sequences: ['END'], temperature: 1, max_tokens: 50, stream: true });
  });

  it('images: data URLs as base64 blocks, http(s) URLs as url blocks, anything else refused', () => {
    const out = toAnthropicRequest(
      req({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA' } }, { type: 'image_url', image_url: { url: 'https://x.test/a.png' } }] }] }),
      false,
    );
    expect(out.messages[0].content).toEqual([
      { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'AAAA' } },
      { type: 'image', source: { type: 'url', url: 'https://x.test/a.png' } },
    ]);
    expect(() => toAnthropicRequest(req({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'file:///etc/passwd' } }] }] }), false)).toThrow(UpstreamError);
    expect(() => toAnthropicRequest(req({ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'w', arguments: '[1]' } }] }] }), false)).toThrow(/JSON object/);
  });
});

describe('answers', () => {
  it('a whole message: text, thinking, tool calls, stop reason and cache usage', () => {
    const c = toCompletion({
      id: 'msg_1',
      model: 'claude',
      content: [
        { type: 'thinking', thinking: 'hmm' },
        { type: 'text', text: 'Let me look.' },
        { type: 'tool_use', id: 't1', name: 'w', input: { city: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      usage: { input_tokens: 10, cache_creation_input_tokens: 4, cache_read_input_tokens: 6, output_tokens: 7 },
    });
    expect(c.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      message: { content: 'Let me look.', reasoning_content: 'hmm', tool_calls: [{ id: 't1', type: 'function', function: { name: 'w', arguments: '{"city":"Paris"}' } }] },
    });
    expect(c.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 7, total_tokens: 27, prompt_tokens_details: { cached_tokens: 6 } });
    expect(toUsage({ input_tokens: 3, output_tokens: 1 })).toEqual({ prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 });
  });

  it('a stream: text then a tool call in block 1 (tool index 0), thinking, unknown events skipped, stop then usage', () => {
    const f = new StreamFold();
    const evs = [
      { type: 'message_start', message: { id: 'msg_1', model: 'claude', usage: { input_tokens: 5, output_tokens: 1 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } },
      { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hi' } },
      { type: 'some_future_event' },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 't1', name: 'w', input: {} } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"a":1}' } },
      { type: 'content_block_stop', index: 2 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 9 } },
      { type: 'message_stop' },
    ];
    const chunks = evs.map((e) => f.onEvent(e)).filter((c) => c !== undefined);
    const deltas = chunks.map((c) => c.choices[0]?.delta);
    expect(deltas).toEqual([
      { role: 'assistant', content: '' },
      { reasoning_content: 'hmm' },
      { content: 'Hi' },
      { tool_calls: [{ index: 0, id: 't1', type: 'function', function: { name: 'w', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"a":1}' } }] },
      {},
      undefined,
    ]);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 });
    expect(f.stopped).toBe(true);
    expect(() => new StreamFold().onEvent({ type: 'content_block_delta', index: 3, delta: { type: 'input_json_delta', partial_json: '{' } })).toThrow(UpstreamError);
  });
});
