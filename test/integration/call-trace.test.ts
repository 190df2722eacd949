import { sql } from 'drizzle-orm';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { call, login, seedTenant, type Session } from '../helpers/identity.js';
import { rawRows } from '../helpers/stores.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Call traces (issue 25): the decision record of a call refused by policy, of one that fell
 * back across two deployments, and of one admitted near a limit, each with the right reasons;
 * the request explorer's API (search, open, replay) and its tenancy; no content in a trace.
 * One app for the file (gatewayEnv), two fake upstreams.
 */
let env: GatewayEnv;
let second: FakeOpenAI;
let owner: Session;
const EMAIL = 'trace.secret.person@example.com';

beforeAll(async () => {
  env = await gatewayEnv();
  second = await new FakeOpenAI().start();
  // Refused by policy: a public and a private deployment of one model; restricted data may only go local.
  await env.addProvider({ name: 'pol-public', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'public', models: ['gpt-pol'] });
  await env.addProvider({ name: 'pol-private', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-pol'] });
  // Fallback: a (first fake, no retry) then b (second fake).
  await env.addProvider({ name: 'fb-a', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fb'], priority: 1, options: { maxRetries: 0 } });
  await env.addProvider({ name: 'fb-b', kind: 'openai', base_url: `${second.url}/v1`, boundary: 'private', models: ['gpt-fb'], priority: 2 });
  owner = await login(env.app.url, env.tenant.users.owner!.email);
});
afterAll(async () => {
  await env?.close();
  await second?.close();
});
afterEach(() => {
  env.openai.assertNoPendingFaults();
  second.assertNoPendingFaults();
});

const tenantPath = () => `/admin/api/tenants/${env.tenant.tenant.id}`;
async function traceOf(requestId: string): Promise<Record<string, any>> {
  const r = await call(env.app.url, `${tenantPath()}/calls/${requestId}`, { session: owner });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body.data).toHaveLength(1);
  return r.body.data[0];
}
/** The request id of a refused call, from the SDK's error (its headers: a Headers object or a plain record, by SDK version). */
function requestIdOf(e: unknown): string {
  const h = (e as { headers?: Headers | Record<string, string> }).headers;
  const id = h instanceof Headers ? h.get('x-request-id') : h?.['x-request-id'];
  expect(id).toBeTruthy();
  return id!;
}

describe('decision records', () => {
  it('a call refused by policy: the classification, its source, every candidate dropped by policy, nothing attempted', async () => {
    const e = await env.client.chat.completions.create({ model: 'gpt-pol', messages: [{ role: 'user', content: 'hello' }] }, { headers: { 'X-Enclave-Classification': 'restricted' } }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(e.code).toBe('policy_boundary_denied');
    const t = await traceOf(requestIdOf(e));
    expect(t).toMatchObject({ model: 'gpt-pol', status: 'refused', http_status: 403, error_code: 'policy_boundary_denied', classification: 'restricted', deployment: null });
    expect(t.classification_decision).toEqual({ value: 'restricted', source: 'header', requested: 'restricted' });
    expect(t.candidates).toHaveLength(2);
    expect(t.candidates).toEqual(
      expect.arrayContaining([
        { deployment: 'pol-public', model: 'gpt-pol', boundary: 'public', kept: false, reason: 'policy' },
        { deployment: 'pol-private', model: 'gpt-pol', boundary: 'private', kept: false, reason: 'policy' },
      ]),
    );
    expect(t.attempts).toEqual([]);
    expect(t.admission).toBeNull();
    expect(t.stages_ms.plan).toBeGreaterThanOrEqual(0);
    expect(t.stages_ms.upstream).toBeNull();
  });

  it('a call that fell back across two deployments: the first one failed (status, retryable), the second answered; content rule hits by type only', async () => {
    env.openai.fail('server_error');
    const r = await env.client.chat.completions.create({ model: 'gpt-fb', messages: [{ role: 'user', content: `write to ${EMAIL}` }], temperature: 0.2 }, { headers: { 'X-Enclave-Classification': 'confidential' } }).withResponse();
    expect(r.data.choices[0]!.message.content).toBe('Hello from the fake model.');
    const t = await traceOf(r.response.headers.get('x-request-id')!);
    expect(t).toMatchObject({ status: 'ok', http_status: 200, deployment: 'fb-b', classification: 'confidential' });
    expect(t.classification_decision).toMatchObject({ value: 'confidential', source: 'header' });
    expect(t.candidates.map((c: Record<string, unknown>) => [c.deployment, c.kept, c.outcome])).toEqual([
      ['fb-a', true, 'tried'],
      ['fb-b', true, 'tried'],
    ]);
    expect(t.attempts).toHaveLength(2);
    expect(t.attempts[0]).toMatchObject({ deployment: 'fb-a', status: 'provider_server_error', upstream_status: 500, retryable: true });
    expect(t.attempts[1]).toMatchObject({ deployment: 'fb-b', status: 'ok' });
    expect(t.attempts[1].first_byte_ms).toBeGreaterThan(0);
    expect(t.attempts[1].total_ms).toBeGreaterThanOrEqual(t.attempts[1].first_byte_ms);
    expect(t.fallbacks).toEqual([{ from: 'fb-a', to: 'fb-b', reason: 'provider_server_error' }]);
    // Confidential data: e-mail addresses are redacted before a non-local deployment (default rules).
    expect(t.rules).toEqual({ action: 'redact', hits: { email: 1 }, redacted: ['email'] });
    expect(t.params).toEqual({ temperature: 0.2 });
    expect(t.result).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), cost_micros: expect.any(Number), attempts: 2 });
    expect(t.admission).toMatchObject({ store: expect.any(String), levels: expect.any(Array) });
    // Never content: neither the prompt nor the matched text, in the API or at rest.
    expect(JSON.stringify(t)).not.toContain('trace.secret.person');
    expect(JSON.stringify(t)).not.toContain('write to');
    const rows = await rawRows(env.app.services.store, sql`SELECT * FROM call_traces`);
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain('trace.secret.person');
  });

  it('a call admitted near a limit: the level, its limit and what remained; the next one refused names the level', async () => {
    const s = env.app.services;
    const { key, secret } = await s.identity.keys.create(env.tenant.ctx, { name: 'limited', ownerUserId: env.tenant.users.member!.id });
    await s.metering.repo.setLimits(env.tenant.tenant.id, 'key', key.id, JSON.stringify({ requests_per_minute: 2 }), s.clock.now());
    await s.metering.revision.bump();
    const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
    const ask = () => client.chat.completions.create({ model: 'gpt-fb', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    await ask();
    const near = await ask();
    const t = await traceOf(near.response.headers.get('x-request-id')!);
    expect(t.key_id).toBe(key.id);
    const level = t.admission.levels.find((l: { level: string }) => l.level === 'key');
    expect(level).toEqual({ level: 'key', limits: { requests_per_minute: 2 }, remaining: { requests_per_minute: 0 } });
    expect(t.admission.waited_ms).toBeGreaterThanOrEqual(0);
    const e = await ask().catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    const refused = await traceOf(requestIdOf(e));
    expect(refused).toMatchObject({ status: 'refused', http_status: 429, error_code: 'rate_limit_exceeded' });
    expect(refused.admission.refused).toMatchObject({ level: 'key', limit: 'requests_per_minute', limit_value: 2, code: 'rate_limit_exceeded' });
    expect(refused.attempts).toEqual([]);
  });

  it('a streamed call: connect, first byte and total of its attempt, the relay stage', async () => {
    const stream = await env.client.chat.completions.create({ model: 'gpt-fb', messages: [{ role: 'user', content: 'stream please' }], stream: true }).withResponse();
    let text = '';
    for await (const chunk of stream.data) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    const t = await traceOf(stream.response.headers.get('x-request-id')!);
    expect(t).toMatchObject({ status: 'ok', stream: true, deployment: 'fb-a' });
    const a = t.attempts[0];
    expect(a.connect_ms).toBeGreaterThan(0);
    expect(a.first_byte_ms).toBeGreaterThanOrEqual(a.connect_ms);
    expect(a.total_ms).toBeGreaterThanOrEqual(a.first_byte_ms);
    expect(t.stages_ms.relay).toBeGreaterThanOrEqual(0);
    expect(t.result.ttft_ms).toBeGreaterThan(0);
  });

  it('the stage durations reach the histogram', async () => {
    const text = await env.app.services.metrics.registry.metrics();
    for (const stage of ['plan', 'admission', 'upstream', 'relay']) expect(text).toMatch(new RegExp(`enclave_gateway_stage_duration_seconds_count\\{stage="${stage}"\\} [1-9]`));
  });
});

describe('request explorer API', () => {
  it('searches by model, status, code and request id, newest first, with a cursor', async () => {
    const base = `${tenantPath()}/calls`;
    const byModel = await call(env.app.url, `${base}?model=gpt-fb&limit=2`, { session: owner });
    expect(byModel.status).toBe(200);
    expect(byModel.body.data).toHaveLength(2);
    expect(byModel.body.data.every((c: { model: string }) => c.model === 'gpt-fb')).toBe(true);
    expect(byModel.body.data[0].id > byModel.body.data[1].id).toBe(true);
    expect(byModel.body.next_cursor).toBeTruthy();
    const next = await call(env.app.url, `${base}?model=gpt-fb&limit=2&cursor=${byModel.body.next_cursor}`, { session: owner });
    expect(next.body.data[0].id < byModel.body.data[1].id).toBe(true);
    const refused = await call(env.app.url, `${base}?status=refused&code=policy_boundary_denied`, { session: owner });
    expect(refused.body.data.map((c: { model: string }) => c.model)).toEqual(['gpt-pol']);
    const one = await call(env.app.url, `${base}?request_id=${refused.body.data[0].request_id}`, { session: owner });
    expect(one.body.data).toHaveLength(1);
    // A list never carries the decision document (open a call for it).
    expect(one.body.data[0].candidates).toBeUndefined();
    const bad = await call(env.app.url, `${base}?status=weird`, { session: owner });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('status');
  });

  it('another tenant’s admin gets 404 (audited) for this tenant’s calls, through either path', async () => {
    const s = env.app.services;
    const other = await seedTenant(s, 'trace-other', ['owner']);
    const them = await login(env.app.url, other.users.owner!.email);
    const list = await call(env.app.url, `${tenantPath()}/calls`, { session: them });
    expect(list.status).toBe(404);
    const mine = (await call(env.app.url, `${tenantPath()}/calls?limit=1`, { session: owner })).body.data[0].request_id;
    const direct = await call(env.app.url, `${tenantPath()}/calls/${mine}`, { session: them });
    expect(direct.status).toBe(404);
    const own = await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/calls/${mine}`, { session: them });
    expect(own.status).toBe(404);
    expect(JSON.stringify(own.body)).not.toContain('gpt-');
    const denied = await s.identity.audit.list({ actorId: other.users.owner!.id, outcome: 'denied', limit: 5 });
    expect(denied.map((d) => d.targetId)).toContain(mine);
    // Their own search sees nothing of ours.
    expect((await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/calls`, { session: them })).body.data).toEqual([]);
  });

  it('replay: a content-logged call re-runs as a new metered call of the admin, pinned or not, audited; without logged content it is refused', async () => {
    const s = env.app.services;
    const r0 = await env.client.chat.completions.create({ model: 'gpt-fb', messages: [{ role: 'user', content: 'not logged' }] }).withResponse();
    const unlogged = r0.response.headers.get('x-request-id')!;
    const no = await call(env.app.url, `${tenantPath()}/calls/${unlogged}/replay`, { method: 'POST', body: {}, session: owner });
    expect(no.status).toBe(409);
    expect(no.body.error.code).toBe('replay_unavailable');

    await s.gateway.content.update(env.tenant.ctx, { enabled: true });
    const r1 = await env.client.chat.completions.create({ model: 'gpt-fb', messages: [{ role: 'user', content: 'say hello' }], max_tokens: 20 }).withResponse();
    const original = r1.response.headers.get('x-request-id')!;
    const before = second.requests.length;
    const rep = await call(env.app.url, `${tenantPath()}/calls/${original}/replay`, { method: 'POST', body: { deployment: 'fb-b' }, session: owner });
    expect(rep.status, JSON.stringify(rep.body)).toBe(200);
    expect(rep.body).toMatchObject({ object: 'call_replay', replay_of: original, status: 'ok', model: 'gpt-fb', deployment: 'fb-b' });
    expect(rep.body.request_id).not.toBe(original);
    expect(rep.body.response.choices[0].message.content).toBe('Hello from the fake model.');
    expect(second.requests.length).toBe(before + 1);
    expect(second.requests.at(-1)!.body).toMatchObject({ messages: [{ role: 'user', content: 'say hello' }], max_tokens: 20 });
    // A call of its own: traced and metered to the admin who replayed it.
    const t = await traceOf(rep.body.request_id);
    expect(t).toMatchObject({ workflow: 'replay', user_id: env.tenant.users.owner!.id, deployment: 'fb-b' });
    expect(t.candidates.find((c: { deployment: string }) => c.deployment === 'fb-a')).toMatchObject({ kept: false, reason: 'pinned' });
    const usage = (await env.usage()).find((u) => u.requestId === rep.body.request_id);
    expect(usage).toMatchObject({ userId: env.tenant.users.owner!.id, workflow: 'replay', status: 'ok' });
    const audit = await s.identity.audit.list({ actorId: env.tenant.users.owner!.id, limit: 10 });
    expect(audit.find((a) => a.action === 'call.replay' && a.outcome === 'allowed')?.targetId).toBe(original);
    const bad = await call(env.app.url, `${tenantPath()}/calls/${original}/replay`, { method: 'POST', body: { deployment: 'pol-public' }, session: owner });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_request');
    await s.gateway.content.update(env.tenant.ctx, { enabled: false });
  });

  it('retention: traces older than the tenant’s raw usage retention (default 30 days) are purged', async () => {
    const s = env.app.services;
    const traces = s.gateway.traces;
    await traces.flush();
    const count = async () => Number((await rawRows(s.store, sql`SELECT count(*) AS n FROM call_traces WHERE tenant_id = ${env.tenant.tenant.id}`))[0]!.n);
    const n = await count();
    expect(n).toBeGreaterThan(0);
    // Nothing is old enough yet.
    expect(await traces.purgeExpired([])).toBe(0);
    // A retention of 0 days for this tenant takes everything before now.
    expect(await traces.purgeExpired([{ tenantId: env.tenant.tenant.id, days: 0 }])).toBe(n);
    expect(await count()).toBe(0);
  });
});
