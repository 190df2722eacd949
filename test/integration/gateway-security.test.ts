import net from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, login, seedTenant } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16, gateway findings: (1) calls that fail on our side never count against a shared
 * deployment's circuit breaker, so one tenant's member key cannot take a provider away from
 * every tenant; (2) no internal error text or internal address reaches a client on any face
 * (/v1, the Ollama face, the web chat's stream); (3) policy refusals are visible to the
 * tenant's admins (usage record with the code; rate-limited audit entries that feed the
 * console's "Denied actions (24 h)").
 */
let env: GatewayEnv;
let other: { key: string };
let deadPort = 0;

/** A raw JSON body (the SDK would stringify the nested value itself and overflow in the test). */
function nestedJson(model: string, depth: number): string {
  return `{"model":${JSON.stringify(model)},"messages":[{"role":"user","content":"hi"}],"metadata_x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
}

const INTERNAL = /Maximum call stack|ECONNREFUSED|127\.0\.0\.1|localhost|RangeError|TypeError|at [\w.]+ \(/;

beforeAll(async () => {
  env = await gatewayEnv();
  const s = env.app.services;
  const o = await seedTenant(s, 'other', ['member']);
  const { secret } = await s.identity.keys.create(o.ctx, { name: 'other', ownerUserId: o.users.member!.id });
  other = { key: secret };
  // A port nothing listens on: connections are refused.
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  deadPort = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  await env.addProvider({ name: 'shared-openai', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['shared-o'], options: { maxRetries: 0, breakerFailures: 2 } });
  env.ollama.models.push('shared-l');
  await env.addProvider({ name: 'shared-ollama', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: ['shared-l'], options: { maxRetries: 0, breakerFailures: 2 } });
  await env.addProvider({ name: 'dead-10-0-0-7', kind: 'openai', base_url: `http://127.0.0.1:${deadPort}/v1`, boundary: 'local', models: ['dead-model'], options: { maxRetries: 0, breakerFailures: 1000 } });
});
afterAll(async () => {
  await env?.close();
});

const post = (path: string, body: string, key = env.key) =>
  fetch(`${env.app.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });

describe('calls that fail locally never count against a shared deployment', () => {
  it('a body whose upstream request cannot be built (stack overflow) leaves the breaker closed for every tenant', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post('/v1/chat/completions', nestedJson('shared-o', 20_000));
      const text = await r.text();
      expect(r.status, text).not.toBe(200);
      expect(r.status, text).not.toBe(503);
      expect(text).not.toMatch(INTERNAL);
    }
    const dep = env.app.services.gateway.catalogue.deployment('shared-openai')!;
    expect(dep.breaker.state).toBe('closed');
    expect(dep.breaker.snapshot().consecutive_failures).toBe(0);
    const ok = await new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: other.key, maxRetries: 0 }).chat.completions.create({ model: 'shared-o', messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0]!.message.content).toBe('Hello from the fake model.');
  });

  it('a request our translation cannot handle (Ollama deployment) is our error, not the provider’s', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post('/v1/chat/completions', JSON.stringify({ model: 'shared-l', messages: [null] }));
      const text = await r.text();
      expect(r.status, text).not.toBe(200);
      expect(r.status, text).not.toBe(503);
      expect(text).not.toMatch(INTERNAL);
    }
    const dep = env.app.services.gateway.catalogue.deployment('shared-ollama')!;
    expect(dep.breaker.state).toBe('closed');
    expect(dep.breaker.snapshot().consecutive_failures).toBe(0);
    const ok = await new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: other.key, maxRetries: 0 }).chat.completions.create({ model: 'shared-l', messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0]!.message.content).toBeTruthy();
  });

  it('a client that goes away does not count either', async () => {
    env.openai.reset();
    env.openai.latencyMs = 300;
    const before = env.app.services.gateway.catalogue.deployment('shared-openai')!.breaker.snapshot().consecutive_failures;
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      const p = fetch(`${env.app.url}/v1/chat/completions`, {
        method: 'POST',
        signal: ac.signal,
        headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'shared-o', messages: [{ role: 'user', content: 'hi' }] }),
      }).catch(() => undefined);
      await waitFor(() => env.openai.requests.length === i + 1, { what: 'the upstream got the call' });
      ac.abort();
      await p;
      await waitFor(() => env.openai.requests[i]!.aborted, { what: 'the upstream call aborted' });
    }
    env.openai.latencyMs = 0;
    expect(env.app.services.gateway.catalogue.deployment('shared-openai')!.breaker.snapshot().consecutive_failures).toBe(before);
  });
});

describe('no internal error text or address reaches a client', () => {
  it('/v1 (whole and streamed): a stable code and a message naming the model', async () => {
    const e = await env.client.chat.completions.create({ model: 'dead-model', messages: [{ role: 'user', content: 'hi' }] }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect(e.status).toBe(502);
    expect(e.code).toBe('provider_connection_error');
    expect(e.message).toContain('dead-model');
    expect(JSON.stringify(e.error)).not.toMatch(INTERNAL);
    expect(JSON.stringify(e.error)).not.toContain('dead-10-0-0-7');

    const r = await post('/v1/chat/completions', JSON.stringify({ model: 'dead-model', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    const text = await r.text();
    expect(r.status).toBe(502);
    expect(text).toContain('provider_connection_error');
    expect(text).not.toMatch(INTERNAL);

    const local = await post('/v1/chat/completions', nestedJson('shared-o', 20_000).replace('"messages"', '"stream":true,"messages"'));
    expect(await local.text()).not.toMatch(INTERNAL);
  });

  it('the Ollama face: {error} with the same human message', async () => {
    for (const stream of [true, false]) {
      const r = await post('/ollama/api/chat', JSON.stringify({ model: 'dead-model', stream, messages: [{ role: 'user', content: 'hi' }] }));
      const text = await r.text();
      expect(r.status, text).toBe(502);
      expect(JSON.parse(text).error).toContain('dead-model');
      expect(text).not.toMatch(INTERNAL);
    }
    const deepTools = `{"model":"shared-o","messages":[{"role":"user","content":"hi"}],"stream":false,"tools":[${'['.repeat(20_000)}${']'.repeat(20_000)}]}`;
    const r = await post('/ollama/api/chat', deepTools);
    const text = await r.text();
    expect(r.status).not.toBe(200);
    expect(text).not.toMatch(INTERNAL);
    expect(env.app.services.gateway.catalogue.deployment('shared-openai')!.breaker.snapshot().consecutive_failures).toBe(0);
  });

  it('the web chat stream', async () => {
    const m = await login(env.app.url, env.tenant.users.member!.email);
    const conv = await call(env.app.url, '/api/chat/conversations', { method: 'POST', session: m, body: { model: 'dead-model' } });
    expect(conv.status).toBe(201);
    const r = await fetch(`${env.app.url}/api/chat/conversations/${conv.body.id}/completions`, {
      method: 'POST',
      headers: { cookie: m.cookie, 'x-csrf-token': m.csrf, 'content-type': 'application/json' },
      body: JSON.stringify({ mode: 'send', content: 'hello', model: 'dead-model' }),
    });
    const text = await r.text();
    expect(text).toContain('provider_connection_error');
    expect(text).toContain('dead-model');
    expect(text).not.toMatch(INTERNAL);
  });
});

describe('policy refusals are visible to tenant admins', () => {
  it('a usage record with the refusal code, and a denied audit entry the console counts — rate-limited', async () => {
    const s = env.app.services;
    const before = (await s.identity.audit.list({ tenantId: env.tenant.tenant.id, outcome: 'denied', limit: 1000 })).length;
    // restricted data may go to local deployments only; shared-o is private.
    for (let i = 0; i < 30; i++) {
      const e = await env.client.chat.completions.create({ model: 'shared-o', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-enclave-classification': 'restricted' } }).catch((x) => x);
      expect(e.status).toBe(403);
      expect(e.code).toBe('policy_boundary_denied');
    }
    await waitFor(async () => (await env.usage()).filter((u) => u.errorCode === 'policy_boundary_denied').length === 30, { what: '30 refusal usage records' });
    expect((await env.usage()).filter((u) => u.errorCode === 'policy_boundary_denied').every((u) => u.status === 'refused')).toBe(true);

    // What the console's "Denied actions (24 h)" reads: the tenant's audit log, outcome denied.
    const owner = await login(env.app.url, env.tenant.users.owner!.email);
    const since = Date.now() - 24 * 3600_000;
    const denied = await call(env.app.url, `/admin/api/tenants/${env.tenant.tenant.id}/audit?outcome=denied&since=${since}&limit=1000`, { session: owner });
    expect(denied.status).toBe(200);
    const mine = denied.body.data.filter((x: { action: string }) => x.action === 'gateway.refused');
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(mine[0].reason).toBe('policy_boundary_denied');
    // Rate-limited: 30 refusals in a burst do not write 30 entries.
    const after = (await s.identity.audit.list({ tenantId: env.tenant.tenant.id, outcome: 'denied', limit: 1000 })).length;
    expect(after - before).toBeLessThanOrEqual(2);
    // No prompt text in the entry.
    expect(JSON.stringify(mine)).not.toContain('"hi"');
  });
});
