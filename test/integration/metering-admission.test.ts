import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import { AppError } from '../../server/errors.js';
import type { Limits } from '../../server/metering/limits.js';
import { sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/** A clock the tests move (token buckets refill and months roll over on it). */
const clock = { t: Date.UTC(2025, 0, 15, 12), now(): number { return this.t; } };
let licenceRefuses = false;
const ent: Entitlements = {
  ...unrestricted,
  checkTokens: (used, req) =>
    licenceRefuses
      ? { allowed: false, limit: 1000, error: new AppError(429, 'license_quota_exceeded', 'The licence allowance is used up.', { type: 'quota_error', details: { used, req } }) }
      : { allowed: true, limit: null },
};

let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv({ clock, entitlements: ent });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b,nomic-embed-text' });
});
afterAll(async () => env?.close());

const m = () => env.app.services.metering;
async function plan(limits: Limits, name = 'p'): Promise<void> {
  await m().plans.upsert(sys(env.app.services), { name, limits });
  await m().plans.assign(sys(env.app.services), env.tenant.tenant.id, name);
}
async function subject(type: 'user' | 'key', id: string, limits: Limits | null): Promise<void> {
  if (limits) await m().repo.setLimits(env.tenant.tenant.id, type, id, JSON.stringify(limits), clock.t);
  else await m().repo.deleteLimits(env.tenant.tenant.id, type, id);
  await m().revision.bump();
}
/** A fresh month and full buckets: each test starts clean. */
function nextMonth(): void {
  const d = new Date(clock.t);
  clock.t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 15, 12);
}
async function chat(body: Record<string, unknown> = {}, key = env.key) {
  const r = await fetch(`${env.app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, ...body }),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
}

describe('one hierarchy: key → user → tenant plan → licence', () => {
  it('each level alone refuses with its own level, limit and reset time', async () => {
    nextMonth();
    await plan({});
    // key: requests per minute
    await subject('key', env.keyId, { requests_per_minute: 2 });
    expect((await chat()).status).toBe(200);
    expect((await chat()).status).toBe(200);
    let r = await chat();
    expect(r.status).toBe(429);
    expect(r.body.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error', level: 'key', limit: 'requests_per_minute', limit_value: 2 });
    expect(Number(r.headers.get('retry-after'))).toBe(30); // one request of 2/min refills in 30 s
    expect(r.body.error.reset).toBe(new Date(clock.t + 30_000).toISOString());
    await subject('key', env.keyId, null);

    // user: monthly tokens (reserve = prompt estimate + max_tokens; each call uses 9)
    await subject('user', env.tenant.users.member!.id, { monthly_tokens: 25 });
    expect((await chat()).status).toBe(200);
    r = await chat();
    expect(r.status).toBe(429);
    const monthEnd = Date.UTC(new Date(clock.t).getUTCFullYear(), new Date(clock.t).getUTCMonth() + 1, 1);
    expect(r.body.error).toMatchObject({ code: 'quota_exceeded', type: 'quota_error', level: 'user', limit: 'monthly_tokens', limit_value: 25, reset: new Date(monthEnd).toISOString() });
    expect(Number(r.headers.get('retry-after'))).toBe(Math.ceil((monthEnd - clock.t) / 1000));
    await subject('user', env.tenant.users.member!.id, null);

    // tenant plan: concurrency 0 (nothing may run)
    await plan({ concurrent_requests: 0 });
    r = await chat();
    expect(r.body.error).toMatchObject({ code: 'rate_limit_exceeded', level: 'tenant', limit: 'concurrent_requests' });
    await plan({ monthly_cost_micros: 0 });
    r = await chat();
    expect(r.body.error).toMatchObject({ code: 'quota_exceeded', level: 'tenant', limit: 'monthly_cost_micros' });
    await plan({});

    // licence
    licenceRefuses = true;
    r = await chat();
    licenceRefuses = false;
    expect(r.status).toBe(429);
    expect(r.body.error).toMatchObject({ code: 'license_quota_exceeded', level: 'licence', limit: 'monthly_tokens' });
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await chat()).status).toBe(200);
  });

  it('the most restrictive level wins when several apply', async () => {
    nextMonth();
    await plan({ requests_per_minute: 2 });
    await subject('key', env.keyId, { requests_per_minute: 10 });
    await subject('user', env.tenant.users.member!.id, { requests_per_minute: 5 });
    expect((await chat()).status).toBe(200);
    expect((await chat()).status).toBe(200);
    let r = await chat();
    expect(r.body.error).toMatchObject({ level: 'tenant', limit: 'requests_per_minute', limit_value: 2 });
    // key exhausted too, and the tenant's month budget: the refusal names the one that lasts longest
    clock.t += 60_000;
    await subject('user', env.tenant.users.member!.id, null);
    await plan({ requests_per_minute: 100 });
    await subject('key', env.keyId, { requests_per_minute: 1 });
    expect((await chat()).status).toBe(200);
    await plan({ requests_per_minute: 100, monthly_tokens: 1 });
    r = await chat();
    expect(r.body.error).toMatchObject({ level: 'tenant', limit: 'monthly_tokens' });
    await plan({ requests_per_minute: 100 });
    r = await chat();
    expect(r.body.error).toMatchObject({ level: 'key', limit: 'requests_per_minute' });
    await subject('key', env.keyId, null);
    await subject('user', env.tenant.users.member!.id, null);
    await plan({});
  });

  it('a plan change takes effect within 1 s and is audited', async () => {
    nextMonth();
    await plan({});
    expect((await chat()).status).toBe(200);
    // through the identity API (no metering revision bump): the tenant cache expires in 500 ms
    await m().plans.upsert(sys(env.app.services), { name: 'tiny', limits: { requests_per_minute: 0 } });
    await env.app.services.identity.tenants.update(sys(env.app.services), env.tenant.tenant.id, { plan: 'tiny' });
    const t0 = Date.now(); // the change is committed
    // The promise: no call that starts 1 s after the change is served any more. Measured by the
    // start of the last call that was still served (a busy machine only makes fewer polls).
    let lastServedAt = t0;
    await waitFor(
      async () => {
        const started = Date.now();
        const status = (await chat()).status;
        if (status === 200) lastServedAt = started;
        return status;
      },
      { until: (status) => status === 429, what: 'calls refused under the new plan' },
    );
    expect(lastServedAt - t0).toBeLessThan(1000);
    await plan({});
    const audit = (await rawRows(env.app.services.store, sql`SELECT action FROM audit_log WHERE action IN ('tenant.plan', 'plan.create', 'plan.update')`)).map((r) => r.action);
    expect(audit).toContain('tenant.plan');
  });
});

describe('headers', () => {
  it("OpenAI's x-ratelimit-* headers on success, honest Retry-After on 429", async () => {
    nextMonth();
    await plan({ requests_per_minute: 5, tokens_per_minute: 1000 });
    const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: env.key, maxRetries: 0 });
    const raw = await client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 100 }).withResponse();
    const h = raw.response.headers;
    expect(h.get('x-ratelimit-limit-requests')).toBe('5');
    expect(h.get('x-ratelimit-remaining-requests')).toBe('4');
    expect(h.get('x-ratelimit-reset-requests')).toBe('12s');
    expect(h.get('x-ratelimit-limit-tokens')).toBe('1000');
    expect(h.get('x-ratelimit-remaining-tokens')).toBe(String(1000 - 103)); // 'hello there' ≈ 3 + max_tokens 100
    expect(h.get('x-ratelimit-reset-tokens')).toBe('6.18s');
    for (let i = 0; i < 4; i++) expect((await chat()).status).toBe(200);
    const err = await client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err.headers.get('retry-after')).toBe('12');
    expect(err.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    clock.t += 11_000;
    expect((await chat()).status).toBe(429);
    clock.t += 1_000;
    expect((await chat()).status).toBe(200);
    await plan({});
  });
});

describe('budgets under concurrency', () => {
  it('50 parallel requests at the edge of a budget overshoot by no more than the in-flight reservations', async () => {
    nextMonth();
    // estimate per call: 1 (prompt) + 10 (max_tokens) = 11; actual 9
    await plan({ monthly_tokens: 200 });
    const before = (await env.usage()).length;
    const results = await Promise.all(Array.from({ length: 50 }, () => chat()));
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 429);
    expect(ok + refused.length).toBe(50);
    for (const r of refused) expect(r.body.error).toMatchObject({ code: 'quota_exceeded', level: 'tenant', limit: 'monthly_tokens' });
    const rows = (await env.usage()).slice(before).filter((u) => u.status === 'ok');
    const used = rows.reduce((n, u) => n + u.promptTokens + u.completionTokens, 0);
    expect(used).toBeLessThanOrEqual(200); // estimates ≥ actuals: no overshoot at all
    expect(ok).toBeGreaterThanOrEqual(Math.floor(200 / 11));
    await plan({});
  });

  it('concurrency caps: at most N in flight, the rest refused at once; slots freed at settlement', async () => {
    nextMonth();
    await subject('key', env.keyId, { concurrent_requests: 3 });
    // Deterministic: reservations held open by hand.
    const ctx = await ({ ...env.tenant.ctx, principal: { kind: 'api_key' as const, id: env.keyId, keyId: env.keyId, userId: env.tenant.users.member!.id, role: 'member' as const } });
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await m().hook.admit(ctx, { model: 'llama3.1:8b', promptTokens: 1, maxTokens: 1 }));
    await expect(m().hook.admit(ctx, { model: 'llama3.1:8b', promptTokens: 1, maxTokens: 1 })).rejects.toMatchObject({ status: 429, details: { level: 'key', limit: 'concurrent_requests' } });
    expect((await chat()).body.error).toMatchObject({ level: 'key', limit: 'concurrent_requests' });
    await m().admission.release(held.pop()!);
    expect((await chat()).status).toBe(200);
    for (const r of held) await m().admission.release(r);
    // Over HTTP: 10 parallel calls while the upstream holds its answers: exactly 3 reach it,
    // the other 7 are refused at once (before any answer) and name the cap.
    env.ollama.reset();
    const release = env.ollama.hold();
    const refused: Awaited<ReturnType<typeof chat>>[] = [];
    const upstreamCalls = () => env.ollama.requests.filter((r) => r.path === '/api/chat').length;
    const calls = Array.from({ length: 10 }, () =>
      chat().then((r) => {
        if (r.status !== 200) refused.push(r);
        return r;
      }),
    );
    try {
      await waitFor(() => refused.length + upstreamCalls(), { until: (n) => n === 10, what: 'every call refused or held upstream' });
      expect(upstreamCalls()).toBe(3);
      for (const r of refused) expect(r.body.error).toMatchObject({ code: 'rate_limit_exceeded', level: 'key', limit: 'concurrent_requests' });
    } finally {
      release();
    }
    expect((await Promise.all(calls)).filter((r) => r.status === 200)).toHaveLength(3);
    env.ollama.reset();
    expect((await chat()).status).toBe(200);
    await subject('key', env.keyId, null);
  });

  it('rollups equal raw records exactly after a mixed workload (success, error, disconnect, stream)', async () => {
    nextMonth();
    await plan({ monthly_tokens: 1_000_000 });
    env.ollama.reset();
    for (let i = 0; i < 6; i++) expect((await chat()).status).toBe(200);
    expect((await chat({ stream: true })).status).toBe(200);
    expect((await chat({ model: 'nope' })).status).toBe(404);
    env.ollama.fail('server_error', 'server_error');
    expect((await chat()).status).toBe(502);
    const ac = new AbortController();
    const disconnects = (await env.usage()).filter((u) => u.status === 'client_disconnect').length;
    // The client goes away while the upstream holds its answer (a fixed delay before the abort
    // raced the request itself on a loaded machine: gone before Enclave read it, no call at all).
    const n = env.ollama.requests.length;
    const release = env.ollama.hold();
    const gone = fetch(`${env.app.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'bye' }] }) }).catch(() => null);
    await waitFor(() => env.ollama.requests.length > n, { what: 'the call reached the upstream' });
    ac.abort();
    await gone;
    await waitFor(async () => (await env.usage()).filter((u) => u.status === 'client_disconnect').length, { until: (k) => k > disconnects, what: 'the disconnected call’s usage record' });
    release();
    env.ollama.reset();
    await env.usage();
    // On either dialect (PostgreSQL's sums arrive as strings: compared as numbers).
    const store = env.app.services.store;
    const tenantId = env.tenant.tenant.id;
    const numbers = (r: Record<string, unknown> | undefined) => Object.fromEntries(Object.entries(r ?? {}).map(([k, v]) => [k, Number(v)]));
    const [raw] = await rawRows(store, sql`SELECT COUNT(*) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, SUM(cost_micros) AS cost, SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS e FROM usage_records WHERE tenant_id = ${tenantId}`);
    const [roll] = await rawRows(store, sql`SELECT SUM(requests) AS n, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c, SUM(cost_micros) AS cost, SUM(errors) AS e FROM usage_rollups WHERE tenant_id = ${tenantId}`);
    expect(numbers(roll)).toEqual(numbers(raw));
    const statuses = (await rawRows(store, sql`SELECT DISTINCT status FROM usage_records WHERE tenant_id = ${tenantId}`)).map((r) => r.status);
    expect(statuses).toEqual(expect.arrayContaining(['ok', 'error', 'refused', 'client_disconnect']));
    await plan({});
  });
});

describe('calendar months', () => {
  it('roll over at the UTC month boundary', async () => {
    clock.t = Date.UTC(2026, 0, 31, 23, 59);
    await plan({ monthly_tokens: 12 });
    expect((await chat()).status).toBe(200);
    const r = await chat();
    expect(r.body.error).toMatchObject({ level: 'tenant', limit: 'monthly_tokens', reset: '2026-02-01T00:00:00.000Z' });
    clock.t = Date.UTC(2026, 1, 1, 0, 0, 1);
    expect((await chat()).status).toBe(200);
    await plan({});
  });

  it("roll over at the tenant's time zone month boundary", async () => {
    await m().plans.updateTenantSettings(sys(env.app.services), env.tenant.tenant.id, { timezone: 'America/New_York' });
    clock.t = Date.UTC(2026, 2, 1, 3); // 22:00 on 28 Feb in New York
    await plan({ monthly_tokens: 12 });
    expect((await chat()).status).toBe(200);
    const r = await chat();
    expect(r.body.error).toMatchObject({ level: 'tenant', limit: 'monthly_tokens', reset: '2026-03-01T05:00:00.000Z' });
    clock.t = Date.UTC(2026, 2, 1, 4, 59);
    expect((await chat()).status).toBe(429);
    clock.t = Date.UTC(2026, 2, 1, 5, 0, 1);
    expect((await chat()).status).toBe(200);
    // the report for February (New York) holds the first call
    const rep = await m().reports.report({ tenantId: env.tenant.tenant.id, month: '2026-02' });
    expect(rep.total.requests).toBe(3); // one admitted, two refused (refusals are usage records too)
    await m().plans.updateTenantSettings(sys(env.app.services), env.tenant.tenant.id, { timezone: 'UTC' });
    await plan({});
  });
});

describe('cost and reporting', () => {
  it('costs usage records in integer micro-units with the price version; reports and self-service usage', async () => {
    nextMonth();
    const price = await m().pricing.set(sys(env.app.services), { model: 'llama3.1:8b', input_micros_per_mtok: 1_000_000, output_micros_per_mtok: 2_000_000, request_micros: 5 });
    const before = (await env.usage()).length;
    expect((await chat()).status).toBe(200);
    const row = (await env.usage()).slice(before)[0]!;
    // 1 µ per prompt token, 2 µ per completion token (per token = per-million price / 1e6), plus 5 per request
    expect(row.costMicros).toBe(row.promptTokens + 2 * row.completionTokens + 5);
    const cost = row.costMicros;
    expect(row.priceVersion).toBe(price.version);
    const self = await fetch(`${env.app.url}/v1/enclave/usage`, { headers: { authorization: `Bearer ${env.key}` } }).then((r) => r.json());
    expect(self).toMatchObject({ object: 'enclave.usage', usage: { tokens: row.promptTokens + row.completionTokens, cost_micros: cost, requests: 1 } });
    const d = new Date(clock.t);
    const month = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    const rep = await m().reports.report({ tenantId: env.tenant.tenant.id, month, by: 'model' });
    expect(rep.rows).toEqual([expect.objectContaining({ group: 'llama3.1:8b', requests: 1, cost_micros: cost })]);
  });
});
