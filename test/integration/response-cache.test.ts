import Anthropic from '@anthropic-ai/sdk';
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, login, seedTenant, sys, type Session } from '../helpers/identity.js';
import { rawRows } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The governed response cache (issue 19) end to end: the official openai SDK against /v1, the
 * fake OpenAI-compatible upstream (its request count says whether a call went upstream), the
 * real Redis (read raw to prove what is stored), the admin API with sessions, usage records.
 * The cache matrix of the issue: two tenants never share an entry, a stricter classification
 * never hits an entry made under a laxer one, a hit is refused once the key lost its scope or
 * the model was disallowed, and a hit is still admitted (rate limits count it).
 */
let env: GatewayEnv;
let other: Awaited<ReturnType<typeof seedTenant>>;
let otherKey: string;
let owner: Session;
let otherOwner: Session;
const s = () => env.app.services;
const T = () => env.tenant.tenant.id;
const upstreamCalls = () => env.openai.requests.filter((r) => r.path === '/v1/chat/completions').length;
const marker = (what: string) => `MARKER-${what}-${randomBytes(6).toString('hex')}`;
const setCache = (tenantId: string, session: Session, body: Record<string, unknown>) => call(env.app.url, `/admin/api/tenants/${tenantId}/response-cache`, { method: 'PUT', session, body });

type Msg = OpenAI.ChatCompletionMessageParam;
async function chat(content: string, o: { key?: string; headers?: Record<string, string>; extra?: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> } = {}) {
  const client = o.key ? new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: o.key, maxRetries: 0 }) : env.client;
  const messages: Msg[] = [{ role: 'user', content }];
  const r = await client.chat.completions.create({ model: 'gpt-fake', messages, temperature: 0, ...o.extra }, { headers: o.headers ?? {} }).withResponse();
  return { body: r.data, cache: r.response.headers.get('x-enclave-cache'), requestId: r.response.headers.get('x-request-id')! };
}
async function usageOf(requestId: string) {
  const rows = await env.usage();
  return rows.find((r) => r.requestId === requestId)!;
}

beforeAll(async () => {
  env = await gatewayEnv();
  // private: allowed for public, internal and confidential data by the default policy.
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'] });
  await s().metering.pricing.set(sys(s()), { model: 'gpt-fake', input_micros_per_mtok: 2_500_000, output_micros_per_mtok: 10_000_000, request_micros: 100 });
  // Calls without the header are `public` here, so a `confidential` header raises them.
  await s().gateway.policies.write(env.tenant.ctx, { defaultClassification: 'public' }, Date.now());
  other = await seedTenant(s(), 'other', ['owner', 'member']);
  otherKey = (await s().identity.keys.create(other.ctx, { name: 'o', ownerUserId: other.users.member!.id })).secret;
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  otherOwner = await login(env.app.url, other.users.owner!.email);
});
afterAll(async () => env?.close());

describe('response cache', { shuffle: false }, () => {
  it('is off by default: identical deterministic calls both go upstream, no header, no cache field', async () => {
    const p = marker('off');
    const before = upstreamCalls();
    const a = await chat(p);
    const b = await chat(p);
    expect(upstreamCalls() - before).toBe(2);
    expect([a.cache, b.cache]).toEqual([null, null]);
    expect((await usageOf(b.requestId)).cache).toBeNull();
  });

  it('the tenant admin turns it on (audited); another tenant cannot read or change it (404)', async () => {
    const put = await setCache(T(), owner, { enabled: true, ttl_seconds: 600 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ object: 'response_cache', enabled: true, ttl_seconds: 600, allow_tools: false });
    const audit = await s().identity.audit.list({ action: 'tenant.response_cache', limit: 1 });
    expect(JSON.parse(audit[0]!.details)).toMatchObject({ before: { enabled: false }, after: { enabled: true } });
    expect((await call(env.app.url, `/admin/api/tenants/${T()}/response-cache`, { session: otherOwner })).status).toBe(404);
    expect((await setCache(T(), otherOwner, { enabled: false })).status).toBe(404);
    expect((await setCache(T(), owner, { ttl_seconds: 0 })).status).toBe(400);
  });

  it('a miss then a hit: the hit does not go upstream, answers the same, records cache=hit with zero tokens and cost and what it saved', async () => {
    const p = marker('hit');
    const before = upstreamCalls();
    const a = await chat(p);
    const b = await chat(p);
    expect(upstreamCalls() - before).toBe(1);
    expect([a.cache, b.cache]).toEqual(['miss', 'hit']);
    expect(b.body.choices[0]!.message.content).toBe(a.body.choices[0]!.message.content);
    expect(b.body.model).toBe('gpt-fake');
    expect(b.body.usage).toEqual(a.body.usage);
    const miss = await usageOf(a.requestId);
    const hit = await usageOf(b.requestId);
    expect(miss).toMatchObject({ cache: 'miss', savedCostMicros: 0, status: 'ok' });
    expect(miss.costMicros).toBeGreaterThan(100);
    expect(hit).toMatchObject({ cache: 'hit', promptTokens: 0, completionTokens: 0, costMicros: 0, savedCostMicros: miss.costMicros, status: 'ok', attempts: 0, deploymentId: miss.deploymentId });
    // The console's numbers.
    const g = await call(env.app.url, `/admin/api/tenants/${T()}/response-cache`, { session: owner });
    expect(g.body.stats).toMatchObject({ hits: 1, misses: 1, hit_ratio: 0.5, saved_cost_micros: miss.costMicros });
    expect(g.body.stats.stored_bytes).toBeGreaterThan(0);
  });

  it('hit_cost_fraction: a hit is charged that share of the original cost (chargeback), and saves the rest', async () => {
    await setCache(T(), owner, { hit_cost_fraction: 0.25 });
    const p = marker('fraction');
    const a = await chat(p);
    const b = await chat(p);
    expect(b.cache).toBe('hit');
    const miss = await usageOf(a.requestId);
    const charge = Math.round(miss.costMicros * 0.25);
    expect(await usageOf(b.requestId)).toMatchObject({ cache: 'hit', promptTokens: 0, completionTokens: 0, costMicros: charge, savedCostMicros: miss.costMicros - charge });
    await setCache(T(), owner, { hit_cost_fraction: 0 });
  });

  it('the request is normalized: key order and the caller-only `user` field do not matter; other parameters do', async () => {
    const p = marker('norm');
    const before = upstreamCalls();
    await chat(p, { extra: { max_tokens: 50, user: 'alice' } });
    const same = await env.client.chat.completions.create({ max_tokens: 50, temperature: 0, messages: [{ content: p, role: 'user' }], model: 'gpt-fake', user: 'bob' }).withResponse();
    expect(same.response.headers.get('x-enclave-cache')).toBe('hit');
    const different = await chat(p, { extra: { max_tokens: 51 } });
    expect(different.cache).toBe('miss');
    expect(upstreamCalls() - before).toBe(2);
  });

  it('a streamed request is served from the cache as a stream (with usage when asked), whole or streamed origin alike', async () => {
    const p = marker('stream');
    const before = upstreamCalls();
    const streamOnce = async () => {
      const r = await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: p }], temperature: 0, stream: true, stream_options: { include_usage: true } }).withResponse();
      let text = '';
      let finish: string | null | undefined;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const ch of r.data) {
        text += ch.choices[0]?.delta?.content ?? '';
        finish = ch.choices[0]?.finish_reason ?? finish;
        if (ch.usage) usage = ch.usage;
      }
      return { text, finish, usage, cache: r.response.headers.get('x-enclave-cache'), requestId: r.response.headers.get('x-request-id')! };
    };
    const a = await streamOnce(); // streamed miss: the folded chunks are stored
    const b = await streamOnce();
    expect([a.cache, b.cache]).toEqual(['miss', 'hit']);
    expect(b.text).toBe('Hello from the fake model.');
    expect(b.text).toBe(a.text);
    expect(b.finish).toBe('stop');
    expect(b.usage).toMatchObject({ prompt_tokens: a.usage!.prompt_tokens, completion_tokens: a.usage!.completion_tokens });
    // The same request, not streamed: the entry the stream made serves it too.
    const c = await chat(p);
    expect(c.cache).toBe('hit');
    expect(c.body.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(upstreamCalls() - before).toBe(1);
    expect(await usageOf(b.requestId)).toMatchObject({ cache: 'hit', stream: true, status: 'ok' });
  });

  it('the other faces are served from the cache in their own format (Anthropic Messages streamed and whole, OpenAI Responses)', async () => {
    const anthropic = new Anthropic({ baseURL: env.app.url, apiKey: env.key, maxRetries: 0 });
    const p = marker('faces');
    const before = upstreamCalls();
    // temperature is a Messages API parameter this SDK version does not type.
    const params = { model: 'gpt-fake', max_tokens: 64, temperature: 0, messages: [{ role: 'user', content: p }] } as Anthropic.MessageCreateParamsNonStreaming;
    const ask = () => anthropic.messages.create(params).withResponse();
    const a = await ask();
    const b = await ask();
    expect([a.response.headers.get('x-enclave-cache'), b.response.headers.get('x-enclave-cache')]).toEqual(['miss', 'hit']);
    expect(b.data.content).toEqual(a.data.content);
    expect(b.data.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake model.' });
    const streamed = anthropic.messages.stream(params);
    const final = await streamed.finalMessage();
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake model.' });
    expect(final.stop_reason).toBe('end_turn');
    const r1 = await env.client.responses.create({ model: 'gpt-fake', input: p, temperature: 0 }).withResponse();
    const r2 = await env.client.responses.create({ model: 'gpt-fake', input: p, temperature: 0 }).withResponse();
    expect(r2.response.headers.get('x-enclave-cache')).toBe('hit');
    expect(r2.data.output_text).toBe(r1.data.output_text);
    // The Ollama face (NDJSON), streamed as Ollama clients ask by default.
    const ollama = async () => {
      const r = await fetch(`${env.app.url}/ollama/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content: p }], options: { temperature: 0 } }) });
      const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l) as { message?: { content?: string }; done?: boolean });
      return { cache: r.headers.get('x-enclave-cache'), text: lines.map((l) => l.message?.content ?? '').join(''), done: lines.at(-1)?.done };
    };
    const o1 = await ollama();
    const o2 = await ollama();
    expect(o2).toEqual({ cache: 'hit', text: 'Hello from the fake model.', done: true });
    expect(o1.text).toBe(o2.text);
    // Upstream: one Messages call, one Responses call and one Ollama call at most (fewer when they normalize to the same request).
    expect(upstreamCalls() - before).toBeLessThanOrEqual(3);
  });

  it('bypass: not deterministic, Cache-Control: no-store, x-enclave-cache: bypass, tools unless allowed', async () => {
    const p = marker('bypass');
    await chat(p); // fills
    const before = upstreamCalls();
    expect((await chat(p, { extra: { temperature: 0.7 } })).cache).toBe('bypass');
    expect((await chat(p, { headers: { 'cache-control': 'no-store' } })).cache).toBe('bypass');
    expect((await chat(p, { headers: { 'x-enclave-cache': 'bypass' } })).cache).toBe('bypass');
    expect(upstreamCalls() - before).toBe(3);
    // A seed makes a request deterministic too.
    expect((await chat(p, { extra: { temperature: 0.7, seed: 7 } })).cache).toBe('miss');
    expect((await chat(p, { extra: { temperature: 0.7, seed: 7 } })).cache).toBe('hit');
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    expect((await chat(p, { extra: { tools } })).cache).toBe('bypass');
    expect((await chat(p, { extra: { tools } })).cache).toBe('bypass');
    await setCache(T(), owner, { allow_tools: true });
    expect((await chat(p, { extra: { tools } })).cache).toBe('miss');
    const hit = await chat(p, { extra: { tools } });
    expect(hit.cache).toBe('hit');
    expect(hit.body.choices[0]!.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    await setCache(T(), owner, { allow_tools: false });
  });

  it('two tenants with identical prompts never share an entry', async () => {
    expect((await setCache(other.tenant.id, otherOwner, { enabled: true })).status).toBe(200);
    const p = marker('tenants');
    const before = upstreamCalls();
    expect((await chat(p)).cache).toBe('miss');
    expect((await chat(p)).cache).toBe('hit');
    // The other tenant asks the very same (same model, deployment, classification): a miss of its own.
    expect((await chat(p, { key: otherKey, headers: { 'x-enclave-classification': 'internal' } })).cache).toBe('miss');
    expect((await chat(p, { headers: { 'x-enclave-classification': 'internal' } })).cache).toBe('miss');
    expect((await chat(p, { key: otherKey, headers: { 'x-enclave-classification': 'internal' } })).cache).toBe('hit');
    expect(upstreamCalls() - before).toBe(3);
  });

  it('partition "caller": two keys of one tenant no longer share (by default they do)', async () => {
    const second = (await s().identity.keys.create(env.tenant.ctx, { name: 'second', ownerUserId: env.tenant.users.owner!.id })).secret;
    const shared = marker('shared');
    expect((await chat(shared)).cache).toBe('miss');
    expect((await chat(shared, { key: second })).cache).toBe('hit');
    expect((await setCache(T(), owner, { partition: 'caller' })).body).toMatchObject({ partition: 'caller' });
    const own = marker('own');
    expect((await chat(own)).cache).toBe('miss');
    expect((await chat(own, { key: second })).cache).toBe('miss');
    expect((await chat(own, { key: second })).cache).toBe('hit');
    expect((await chat(own)).cache).toBe('hit');
    await setCache(T(), owner, { partition: 'tenant' });
  });

  it('a confidential request never hits an entry made under public (the classification is part of the key)', async () => {
    const p = marker('class');
    const before = upstreamCalls();
    expect((await chat(p)).cache).toBe('miss'); // public (the tenant's default here)
    expect((await chat(p, { headers: { 'x-enclave-classification': 'confidential' } })).cache).toBe('miss');
    expect((await chat(p, { headers: { 'x-enclave-classification': 'confidential' } })).cache).toBe('hit');
    expect(upstreamCalls() - before).toBe(2);
  });

  it('entries in Redis are encrypted: neither the prompt nor the answer appears in any key or value', async () => {
    const p = marker('raw');
    await chat(p);
    const redis = s().redis;
    const keys = await redis.keys(`enclave:cache:{${T()}}:*`);
    const entries = keys.filter((k) => k.includes(':e:'));
    expect(entries.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.includes(p)).toBe(false);
    for (const k of entries) {
      const v = (await redis.get(k))!;
      expect(v.startsWith('enc:v1:')).toBe(true);
      expect(v.includes(p)).toBe(false);
      expect(v.includes('Hello from the fake model')).toBe(false);
      expect(Buffer.from(v.split(':')[3]!, 'base64url').toString('latin1').includes('Hello from the fake model')).toBe(false);
    }
    // The other tenant's entries live under its own prefix only.
    expect((await redis.keys(`enclave:cache:{${other.tenant.id}}:e:*`)).length).toBeGreaterThan(0);
    // A value moved under another tenant's key does not decrypt there (AAD): a miss, not a leak.
    const mine = entries[0]!;
    const q = marker('moved');
    await chat(q, { key: otherKey, headers: { 'x-enclave-classification': 'internal' } });
    const theirs = (await redis.keys(`enclave:cache:{${other.tenant.id}}:e:*`)).filter((k) => !k.endsWith(mine.split(':e:')[1]!));
    for (const k of theirs) await redis.set(k, (await redis.get(mine))!, 'KEEPTTL');
    const before = upstreamCalls();
    expect((await chat(q, { key: otherKey, headers: { 'x-enclave-classification': 'internal' } })).cache).toBe('miss');
    expect(upstreamCalls() - before).toBe(1);
  });

  it('a hit is still admitted: the rate limit counts it, and the refusal sends nothing upstream', async () => {
    const { key, secret } = await s().identity.keys.create(env.tenant.ctx, { name: 'limited', ownerUserId: env.tenant.users.member!.id });
    await s().metering.repo.setLimits(T(), 'key', key.id, JSON.stringify({ requests_per_minute: 2 }), Date.now());
    await s().metering.revision.bump();
    const p = marker('limit');
    expect((await chat(p, { key: secret })).cache).toBe('miss');
    expect((await chat(p, { key: secret })).cache).toBe('hit');
    const before = upstreamCalls();
    const third = await chat(p, { key: secret }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(OpenAI.RateLimitError);
    expect(upstreamCalls()).toBe(before);
  });

  it('a hit is refused once the key lost its scope (its owner lost the role), or the model was disallowed since', async () => {
    const p = marker('revoked');
    expect((await chat(p)).cache).toBe('miss');
    expect((await chat(p)).cache).toBe('hit');
    const before = upstreamCalls();
    // The key's owner becomes a viewer: the key loses models:invoke with it.
    await s().identity.users.grant(env.tenant.ctx, env.tenant.users.member!.id, 'viewer');
    const denied = await waitFor(() => chat(p).then(() => undefined, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>), { until: (e) => e !== undefined, what: 'the role change to reach the key' });
    expect(denied!.status).toBe(403);
    await s().identity.users.grant(env.tenant.ctx, env.tenant.users.member!.id, 'member');
    await waitFor(() => chat(p).then((r) => r.cache, () => undefined), { until: (c) => c === 'hit', what: 'the role back' });
    // The tenant's policy no longer allows private deployments for public data.
    await s().gateway.policies.write(env.tenant.ctx, { defaultClassification: 'public', boundaries: { public: ['local'] } }, Date.now());
    const refused = (await chat(p).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(refused.status).toBe(403);
    expect((refused.error as { code?: string }).code).toBe('policy_boundary_denied');
    expect(upstreamCalls()).toBe(before);
    await s().gateway.policies.write(env.tenant.ctx, { defaultClassification: 'public' }, Date.now());
    const rows = await env.usage();
    expect(rows.filter((r) => r.status === 'refused' && r.cache === null).length).toBeGreaterThanOrEqual(2);
  });

  it('the size cap evicts the soonest-expiring entries; metrics count hits, misses, bytes and evictions without a tenant label', async () => {
    await setCache(T(), owner, { max_bytes: 1024 });
    await call(env.app.url, `/admin/api/tenants/${T()}/response-cache/entries`, { method: 'DELETE', session: owner });
    // Entries of one size (the same answer): the cap holds as many as fit, the oldest go first.
    const prompts = [marker('cap-0')];
    expect((await chat(prompts[0]!)).cache).toBe('miss');
    const size = Number(await waitFor(() => s().redis.get(`enclave:cache:{${T()}}:b`), { what: 'the first entry' }));
    const fit = Math.floor(1024 / size);
    expect(fit).toBeGreaterThanOrEqual(1);
    for (let i = 1; i <= fit; i++) {
      prompts.push(marker(`cap-${i}`));
      expect((await chat(prompts[i]!)).cache).toBe('miss');
    }
    expect(Number(await s().redis.get(`enclave:cache:{${T()}}:b`))).toBeLessThanOrEqual(1024);
    expect((await chat(prompts.at(-1)!)).cache).toBe('hit');
    expect((await chat(prompts[0]!)).cache).toBe('miss'); // evicted for the newer ones
    const m = await (await fetch(`${env.app.url}/metrics`)).text();
    expect(m).toMatch(/enclave_gateway_cache_lookups_total\{result="hit"\} [1-9]/);
    expect(m).toMatch(/enclave_gateway_cache_lookups_total\{result="miss"\} [1-9]/);
    expect(m).toMatch(/enclave_gateway_cache_bytes_total\{direction="stored"\} [1-9]/);
    expect(m).toMatch(/enclave_gateway_cache_evictions_total [1-9]/);
    expect(m.split('\n').filter((l) => l.startsWith('enclave_gateway_cache_') && l.includes('tenant'))).toEqual([]);
    await setCache(T(), owner, { max_bytes: 16 * 1024 * 1024 });
  });

  it('Redis unavailable: calls are answered as misses, never failed', async () => {
    const p = marker('down');
    expect((await chat(p)).cache).toBe('miss');
    s().redis.disconnect();
    // Closed for good (no reconnect) before the call: every command fails at once.
    await waitFor(() => s().redis.status, { until: (st) => st === 'end', what: 'the redis client closed' });
    try {
      const before = upstreamCalls();
      const r = await chat(p);
      expect(r.cache).toBe('miss');
      expect(r.body.choices[0]!.message.content).toBe('Hello from the fake model.');
      expect(upstreamCalls() - before).toBe(1);
    } finally {
      await s().redis.connect();
    }
    await waitFor(() => chat(p).then((r) => r.cache), { until: (c) => c === 'hit', what: 'redis back' });
  });

  it('turning it off stops lookups at once and drops the tenant’s entries; the admin can purge', async () => {
    const p = marker('offagain');
    await chat(p);
    expect((await chat(p)).cache).toBe('hit');
    const off = await setCache(T(), owner, { enabled: false });
    expect(off.status).toBe(200);
    expect((await chat(p)).cache).toBeNull();
    expect(await s().redis.keys(`enclave:cache:{${T()}}:*`)).toEqual([]);
    // Per key: on for this key only.
    await setCache(T(), owner, { keys: { [env.keyId]: true } });
    expect((await chat(p)).cache).toBe('miss');
    const another = await s().identity.keys.create(env.tenant.ctx, { name: 'another', ownerUserId: env.tenant.users.member!.id });
    expect((await chat(p, { key: another.secret })).cache).toBeNull();
    const purge = await call(env.app.url, `/admin/api/tenants/${T()}/response-cache/entries`, { method: 'DELETE', session: owner });
    expect(purge.body).toMatchObject({ deleted: 1 });
    expect((await chat(p)).cache).toBe('miss');
    const stored = await rawRows(s().store, sql`SELECT cache, COUNT(*) AS n FROM usage_records WHERE tenant_id = ${T()} GROUP BY cache ORDER BY cache`);
    expect(stored.map((r) => r.cache)).toEqual(expect.arrayContaining(['hit', 'miss', 'bypass', null]));
  });
});
