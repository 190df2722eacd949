import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cacheDirective } from '../../server/gateway/cache/index.js';
import { chunksOf, ChunkFold, choicesOfFold, wholeOf, type CacheEntry } from '../../server/gateway/cache/entry.js';
import { cacheKey, canonical, deterministic, offersTools, replayable } from '../../server/gateway/cache/key.js';
import { CACHE_OFF, cacheOn, mergeCacheSettings, parseCacheSettings } from '../../server/gateway/cache/settings.js';

const secret = randomBytes(32);
const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0, max_tokens: 10 };

describe('response cache key', () => {
  it('is the same for the same request in any key order, without caller-only fields', () => {
    const a = cacheKey(secret, 't1', 'd1', 'public', body);
    expect(cacheKey(secret, 't1', 'd1', 'public', { max_tokens: 10, temperature: 0, messages: [{ content: 'hi', role: 'user' }], model: 'm' })).toBe(a);
    expect(cacheKey(secret, 't1', 'd1', 'public', { ...body, user: 'u', metadata: { a: 1 }, stream: true, stream_options: { include_usage: true } })).toBe(a);
  });

  it('differs by tenant, deployment, classification, model, messages and parameters, and by the secret', () => {
    const a = cacheKey(secret, 't1', 'd1', 'public', body);
    const others = [
      cacheKey(secret, 't2', 'd1', 'public', body),
      cacheKey(secret, 't1', 'd2', 'public', body),
      cacheKey(secret, 't1', 'd1', 'confidential', body),
      cacheKey(secret, 't1', 'd1', 'public', { ...body, model: 'n' }),
      cacheKey(secret, 't1', 'd1', 'public', { ...body, messages: [{ role: 'user', content: 'hi!' }] }),
      cacheKey(secret, 't1', 'd1', 'public', { ...body, max_tokens: 11 }),
      cacheKey(randomBytes(32), 't1', 'd1', 'public', body),
      cacheKey(secret, 't1', 'd1', 'public', body, 'api_key:key_1'),
    ];
    expect(new Set([a, ...others]).size).toBe(others.length + 1);
    // Field boundaries cannot be shifted between tenant and deployment ids.
    expect(cacheKey(secret, 'ab', 'c', 'public', body)).not.toBe(cacheKey(secret, 'a', 'bc', 'public', body));
  });

  it('does not carry the prompt (an HMAC, not a hash anyone can recompute)', () => {
    expect(cacheKey(secret, 't1', 'd1', 'public', body)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('canonical JSON sorts nested keys and keeps array order', () => {
    expect(canonical({ b: [{ y: 1, x: 2 }, 3], a: null })).toBe('{"a":null,"b":[{"x":2,"y":1},3]}');
    expect(canonical({ b: 1, a: undefined })).toBe('{"b":1}');
  });

  it('deterministic: temperature 0 or a seed; tools are noticed', () => {
    expect(deterministic({ temperature: 0 })).toBe(true);
    expect(deterministic({ seed: 3, temperature: 1 })).toBe(true);
    expect(deterministic({})).toBe(false);
    expect(deterministic({ temperature: 0.1 })).toBe(false);
    expect(deterministic({ seed: '3' })).toBe(false);
    expect(offersTools({ tools: [{}] })).toBe(true);
    expect(offersTools({ tools: [] })).toBe(false);
    expect(offersTools({ functions: [{}] })).toBe(true);
    expect(replayable({ temperature: 0 })).toBe(true);
    expect(replayable({ logprobs: true, top_logprobs: 2 })).toBe(false);
    expect(replayable({ modalities: ['text', 'audio'] })).toBe(false);
  });
});

describe('client directives', () => {
  const req = (h: Record<string, string>) => ({ headers: h }) as unknown as IncomingMessage;
  it('no-store and x-enclave-cache: bypass skip the cache; no-cache skips the lookup only', () => {
    expect(cacheDirective(req({}))).toBeUndefined();
    expect(cacheDirective(req({ 'cache-control': 'no-store' }))).toBe('no-store');
    expect(cacheDirective(req({ 'cache-control': 'max-age=0, No-Store' }))).toBe('no-store');
    expect(cacheDirective(req({ 'x-enclave-cache': 'BYPASS' }))).toBe('no-store');
    expect(cacheDirective(req({ 'cache-control': 'no-cache' }))).toBe('no-cache');
    expect(cacheDirective(req({ 'cache-control': 'max-age=60' }))).toBeUndefined();
  });
});

describe('settings', () => {
  it('off by default; an unreadable setting is off; a key switch wins over the tenant switch', () => {
    expect(parseCacheSettings(undefined)).toBe(CACHE_OFF);
    expect(parseCacheSettings('{"enabled":true}')).toBe(CACHE_OFF);
    expect(parseCacheSettings('not json')).toBe(CACHE_OFF);
    const on = mergeCacheSettings(CACHE_OFF, { enabled: true, keys: { k1: false, k2: true } });
    expect(cacheOn(on, undefined)).toBe(true);
    expect(cacheOn(on, 'k1')).toBe(false);
    expect(cacheOn(on, 'k3')).toBe(true);
    const keyOnly = mergeCacheSettings(on, { enabled: false, keys: { k1: null } });
    expect(keyOnly.keys).toEqual({ k2: true });
    expect(cacheOn(keyOnly, 'k2')).toBe(true);
    expect(cacheOn(keyOnly, 'k1')).toBe(false);
  });
});

describe('entries', () => {
  const entry: CacheEntry = {
    v: 1,
    dep: 'd1',
    choices: [
      { index: 0, message: { role: 'assistant', content: 'Hello there.' }, finish_reason: 'stop' },
      { index: 1, message: { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] }, finish_reason: 'tool_calls' },
    ],
    usage: { prompt_tokens: 3, completion_tokens: 5 },
    cost: 42,
    at: 0,
  };

  it('a hit replayed as chunks folds back into the stored choices (what a streaming client assembles)', () => {
    const chunks = chunksOf(entry, 'chatcmpl-x', 'alias', 1_700_000_000_000);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } });
    expect(chunks.every((c) => c.model === 'alias' && c.id === 'chatcmpl-x' && c.object === 'chat.completion.chunk')).toBe(true);
    const f = new ChunkFold();
    for (const c of chunks) f.add(c);
    expect(choicesOfFold(f)).toEqual(entry.choices);
  });

  it('a hit as a whole completion carries the stored choices and usage under the alias', () => {
    const w = wholeOf(entry, 'chatcmpl-y', 'alias', 1_700_000_000_000);
    expect(w).toMatchObject({ id: 'chatcmpl-y', object: 'chat.completion', created: 1_700_000_000, model: 'alias', usage: { total_tokens: 8 } });
    expect(w.choices.map((c) => c.message)).toEqual(entry.choices.map((c) => c.message));
    (w.choices[0]!.message as { content: string }).content = 'changed';
    expect(entry.choices[0]!.message.content).toBe('Hello there.'); // a copy per hit
  });
});
