import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_OUTPUT_TOKENS, estimateChat, estimateEmbeddings, IMAGE_TOKENS } from '../../server/metering/estimate.js';

const dep = (maxOutputTokens?: number) => ({ deployment: { options: maxOutputTokens === undefined ? {} : { maxOutputTokens } } });
const user = (content: unknown) => [{ role: 'user', content }];

describe('the reservation of a call (issue 16: pessimistic)', () => {
  it('counts every message, system and tool content included, at 4 characters per token', () => {
    const messages = [
      { role: 'system', content: 'x'.repeat(40) },
      { role: 'user', content: [{ type: 'text', text: 'y'.repeat(20) }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'z'.repeat(19) } }] },
      { role: 'tool', tool_call_id: 'c', content: 'w'.repeat(20) },
    ];
    expect(estimateChat({ max_tokens: 5 }, messages, []).promptTokens).toBe(25); // 100 characters
  });

  it('counts tool definitions, functions and a response schema', () => {
    const tools = [{ type: 'function', function: { name: 'lookup', description: 'd'.repeat(400), parameters: { type: 'object' } } }];
    const base = estimateChat({ max_tokens: 1 }, user('hi'), []).promptTokens;
    expect(estimateChat({ max_tokens: 1, tools }, user('hi'), []).promptTokens - base).toBeGreaterThanOrEqual(100);
    expect(estimateChat({ max_tokens: 1, functions: tools }, user('hi'), []).promptTokens - base).toBeGreaterThanOrEqual(100);
    const rf = { type: 'json_schema', json_schema: { name: 's', schema: { description: 'e'.repeat(400) } } };
    expect(estimateChat({ max_tokens: 1, response_format: rf }, user('hi'), []).promptTokens - base).toBeGreaterThanOrEqual(100);
  });

  it('reserves a fixed amount per image part', () => {
    const parts = [{ type: 'text', text: 'abcd' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }];
    expect(estimateChat({ max_tokens: 1 }, user(parts), []).promptTokens).toBe(1 + 2 * IMAGE_TOKENS);
  });

  it('reserves max_tokens (or max_completion_tokens) × n', () => {
    expect(estimateChat({ max_tokens: 50, n: 4 }, user('hi'), []).maxTokens).toBe(200);
    expect(estimateChat({ max_completion_tokens: 30, max_tokens: 5, n: 2 }, user('hi'), []).maxTokens).toBe(60);
    // an n the API would refuse is reserved as 1 (the upstream refuses the call)
    expect(estimateChat({ max_tokens: 50, n: 1000 }, user('hi'), []).maxTokens).toBe(50);
    expect(estimateChat({ max_tokens: 50, n: 'x' }, user('hi'), []).maxTokens).toBe(50);
  });

  it('without max_tokens: the largest maxOutputTokens of the deployments that may serve it, × n', () => {
    expect(estimateChat({ n: 3 }, user('hi'), [dep(100), dep(4000), dep()]).maxTokens).toBe(3 * 4000);
    expect(estimateChat({}, user('hi'), [dep(100)]).maxTokens).toBe(100);
    expect(estimateChat({}, user('hi'), [dep()]).maxTokens).toBe(DEFAULT_MAX_OUTPUT_TOKENS);
    expect(estimateChat({}, user('hi'), []).maxTokens).toBe(DEFAULT_MAX_OUTPUT_TOKENS);
    expect(estimateChat({ max_tokens: 0 }, user('hi'), [dep(7)]).maxTokens).toBe(7);
  });

  it('embeddings: strings at 4 characters per token, token arrays by length, nothing to output', () => {
    expect(estimateEmbeddings('abcdefgh')).toEqual({ promptTokens: 2, maxTokens: 0 });
    expect(estimateEmbeddings(['abcd', 'efgh'])).toEqual({ promptTokens: 2, maxTokens: 0 });
    expect(estimateEmbeddings([1, 2, 3])).toEqual({ promptTokens: 3, maxTokens: 0 });
    expect(estimateEmbeddings([[1, 2], [3, 4, 5]])).toEqual({ promptTokens: 5, maxTokens: 0 });
    expect(estimateEmbeddings([[[1, 2]]])).toEqual({ promptTokens: 0, maxTokens: 0 }); // deeper than the API allows
    expect(estimateEmbeddings(undefined)).toEqual({ promptTokens: 0, maxTokens: 0 });
  });
});
