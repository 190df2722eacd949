import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, login, PASSWORD, sys, type Session } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

const clock = { t: Date.UTC(2027, 4, 10, 12), now(): number { return this.t; } };
let env: GatewayEnv;
let root: Session;
let owner: Session;
let member: Session;
beforeAll(async () => {
  env = await gatewayEnv({ clock });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
  const s = env.app.services;
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  root = await login(env.app.url, 'root@platform.test');
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  member = await login(env.app.url, env.tenant.users.member!.email);
});
afterAll(async () => env?.close());

const chat = (max_tokens = 10) => call(env.app.url, '/v1/chat/completions', { method: 'POST', key: env.key, body: { model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens } });

// In order, also under --sequence.shuffle: plans and prices set first are what the limits,
// reports and retention steps build on (one tenant's metering set-up told step by step).
describe('metering admin API', { shuffle: false }, () => {
  it('platform admins manage plans and prices; tenant admins cannot', async () => {
    const u = env.app.url;
    const tid = env.tenant.tenant.id;
    expect((await call(u, '/admin/api/plans/gold', { method: 'PUT', session: owner, body: { limits: { monthly_tokens: 5 } } })).status).toBe(403);
    let r = await call(u, '/admin/api/plans/gold', { method: 'PUT', session: root, body: { description: 'Gold', capabilities: ['batch_api'], limits: { monthly_tokens: 100, requests_per_minute: 50 } } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'gold', capabilities: ['batch_api'], limits: { monthly_tokens: 100, requests_per_minute: 50 }, allowed_models: null });
    expect((await call(u, '/admin/api/plans/gold', { method: 'PUT', session: root, body: { limits: { monthly_tokens: -1 } } })).status).toBe(400);
    expect((await call(u, `/admin/api/tenants/${tid}/plan`, { method: 'PUT', session: owner, body: { plan: 'gold' } })).status).toBe(403);
    expect((await call(u, `/admin/api/tenants/${tid}/plan`, { method: 'PUT', session: root, body: { plan: 'nope' } })).status).toBe(404);
    expect((await call(u, `/admin/api/tenants/${tid}/plan`, { method: 'PUT', session: root, body: { plan: 'gold' } })).status).toBe(200);
    expect((await call(u, '/admin/api/plans/gold', { method: 'DELETE', session: root })).body.error.code).toBe('plan_in_use');
    r = await call(u, '/admin/api/plans', { session: root });
    expect(r.body.data.map((p: any) => p.name)).toEqual(expect.arrayContaining(['default', 'gold']));

    expect((await call(u, '/admin/api/prices', { method: 'PUT', session: owner, body: { model: 'm', input_micros_per_mtok: 1, output_micros_per_mtok: 1 } })).status).toBe(403);
    r = await call(u, '/admin/api/prices', { method: 'PUT', session: root, body: { model: 'llama3.1:8b', input_micros_per_mtok: 1_000_000, output_micros_per_mtok: 1_000_000 } });
    expect(r.status).toBe(200);
    const v1 = r.body.version;
    r = await call(u, '/admin/api/prices', { method: 'PUT', session: root, body: { model: 'llama3.1:8b', input_micros_per_mtok: 2_000_000, output_micros_per_mtok: 2_000_000 } });
    expect(r.body.version).toBeGreaterThan(v1);
    r = await call(u, '/admin/api/prices/llama3.1:8b/history', { session: root });
    expect(r.body.data.map((p: any) => p.version)).toEqual([v1, v1 + 1]);
    expect((await call(u, '/admin/api/prices', { method: 'PUT', session: root, body: { model: 'x', input_micros_per_mtok: 1.5, output_micros_per_mtok: 1 } })).status).toBe(400);
  });

  it('tenant admins set per-user and per-key limits; soft-limit alerts fire once per window; reports as JSON and CSV', async () => {
    const u = env.app.url;
    const tid = env.tenant.tenant.id;
    expect((await call(u, `/admin/api/tenants/${tid}/limits/key/${env.keyId}`, { method: 'PUT', session: member, body: { requests_per_minute: 1 } })).status).toBe(403);
    let r = await call(u, `/admin/api/tenants/${tid}/limits/key/${env.keyId}`, { method: 'PUT', session: owner, body: { requests_per_minute: 100 } });
    expect(r.body).toEqual({ subject_type: 'key', subject_id: env.keyId, limits: { requests_per_minute: 100 } });
    r = await call(u, `/admin/api/tenants/${tid}/limits`, { session: owner });
    expect(r.body.plan.name).toBe('gold');
    expect(r.body.overrides).toEqual([expect.objectContaining({ subject_type: 'key', subject_id: env.keyId })]);

    // plan gold: 100 monthly tokens; each call uses 7 (1 prompt + 6 completion)
    const first = await chat();
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('50'); // tenant 50 < key 100
    for (let i = 0; i < 11; i++) expect((await chat()).status).toBe(200); // 84 used → 80 % crossed
    await waitFor(async () => (await env.app.services.metering.repo.notifications(tid, true)).length, { until: (n) => n === 1, what: 'one open notification' });
    r = await call(u, `/admin/api/tenants/${tid}/notifications`, { session: owner });
    expect(r.body.data).toEqual([expect.objectContaining({ limit: 'monthly_tokens', threshold: 80, limit_value: 100 })]);
    expect((await chat()).status).toBe(200); // 91
    expect((await chat()).status).toBe(429); // 91 + 11 > 100
    expect((await env.app.services.metering.repo.notifications(tid, true)).length).toBe(1); // not again
    const audit = Number((await rawRows(env.app.services.store, sql`SELECT COUNT(*) AS n FROM audit_log WHERE action = 'quota.alert'`))[0]!.n);
    expect(audit).toBe(1);
    const metrics = await env.app.services.metrics.registry.metrics();
    expect(metrics).toMatch(/enclave_quota_alerts_total\{limit="monthly_tokens",threshold="80"\} 1/);
    expect(metrics).toMatch(/enclave_quota_refusals_total\{level="tenant",limit="monthly_tokens"\} 1/);
    expect((await call(u, `/admin/api/tenants/${tid}/notifications/${r.body.data[0].id}/dismiss`, { method: 'POST', session: owner })).status).toBe(204);
    expect((await call(u, `/admin/api/tenants/${tid}/notifications`, { session: owner })).body.data).toEqual([]);

    r = await call(u, `/admin/api/tenants/${tid}/usage?by=key`, { session: owner });
    expect(r.body).toMatchObject({ object: 'enclave.usage_report', month: '2027-05', by: 'key' });
    expect(r.body.rows).toEqual([expect.objectContaining({ group: env.keyId, requests: 14, errors: 1, total_tokens: 91 })]);
    r = await call(u, `/admin/api/tenants/${tid}/usage?by=day&format=csv`, { session: owner });
    expect(r.headers.get('content-type')).toMatch(/text\/csv/);
    expect(String(r.body).trim().split('\n')).toEqual(['day,requests,errors,prompt_tokens,completion_tokens,total_tokens,cost_micros', expect.stringMatching(/^2027-05-10,14,1,13,78,91,\d+$/)]);
    expect((await call(u, `/admin/api/tenants/${tid}/usage`, { session: member })).status).toBe(403);

    // self-service: the key sees its own usage and what remains at every level, without admin rights
    r = await call(u, '/v1/enclave/usage', { key: env.key });
    expect(r.body).toMatchObject({ object: 'enclave.usage', month: '2027-05', plan: 'gold', usage: { tokens: 91, requests: 14 }, remaining: { monthly_tokens: 9 } });
    r = await call(u, '/v1/enclave/usage', { session: member });
    expect(r.body).toMatchObject({ usage: { tokens: 91 } });
  });

  it('raw records past the tenant retention are purged; rollups and reports stay', async () => {
    const u = env.app.url;
    const tid = env.tenant.tenant.id;
    expect((await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { raw_retention_days: 0 } })).status).toBe(400);
    const r = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { raw_retention_days: 1, timezone: 'UTC' } });
    expect(r.body).toMatchObject({ raw_retention_days: 1, timezone: 'UTC' });
    const before = (await env.app.services.metering.reports.report({ tenantId: tid, month: '2027-05' })).total;
    expect((await env.usage()).length).toBeGreaterThan(0);
    clock.t += 2 * 86_400_000;
    expect(await env.app.services.metering.purgeRaw()).toBeGreaterThan(0);
    expect((await env.usage()).length).toBe(0);
    expect((await env.app.services.metering.reports.report({ tenantId: tid, month: '2027-05' })).total).toEqual(before);
  });

  it('a plan without cloud_providers never reaches a public deployment; with it, it does', async () => {
    const s = env.app.services;
    await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, api_key: 'sk-up', boundary: 'public', models: ['gpt-fake'] });
    env.openai.apiKey = 'sk-up';
    await s.metering.plans.upsert(sys(s), { name: 'onprem', capabilities: ['batch_api'] });
    await s.metering.plans.assign(sys(s), env.tenant.tenant.id, 'onprem');
    const body = { model: 'gpt-fake', messages: [{ role: 'user', content: 'hi' }] };
    let r = await call(env.app.url, '/v1/chat/completions', { method: 'POST', key: env.key, body });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('policy_boundary_denied');
    expect(env.openai.requests.length).toBe(0);
    expect((await call(env.app.url, '/v1/models', { key: env.key })).body.data.map((m: any) => m.id)).not.toContain('gpt-fake');
    await s.metering.plans.upsert(sys(s), { name: 'onprem', capabilities: ['batch_api', 'cloud_providers'] });
    r = await call(env.app.url, '/v1/chat/completions', { method: 'POST', key: env.key, body });
    expect(r.status).toBe(200);
  });
});
