import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { growthRefusal, unrestricted, type Entitlements, type TokenAdmission } from '../../server/access/entitlements.js';
import { AppError } from '../../server/errors.js';
import { call, login, seedTenant, sys, type Session } from '../helpers/identity.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/** Entitlements the test steers: a licence key limit and a soft-mode token warning. */
const lic: { keyLimit: number | null; warning: 'license_quota_80' | 'license_quota_exceeded_soft' | undefined } = { keyLimit: null, warning: undefined };
const entitlements: Entitlements = {
  ...unrestricted,
  checkGrowth: (kind, current) => (kind === 'keys' && lic.keyLimit !== null && current >= lic.keyLimit ? growthRefusal('keys', lic.keyLimit, current) : undefined),
  checkTokens: (): TokenAdmission => (lic.warning ? { allowed: true, limit: 1_000_000, warning: lic.warning } : { allowed: true, limit: null }),
};

let env: GatewayEnv;
let owner: Session;
beforeAll(async () => {
  env = await gatewayEnv({ entitlements });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
  owner = await login(env.app.url, env.tenant.users.owner!.email);
});
afterAll(async () => env?.close());

const chat = () => call(env.app.url, '/v1/chat/completions', { method: 'POST', key: env.key, body: { model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 } });

async function refusal(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    return e as AppError;
  }
  throw new Error('expected a refusal');
}

describe('plan max_keys and the licence key limit at key creation', () => {
  it('the plan caps the tenant’s active keys (409 key_limit, level tenant); rotation and revocation free the count', async () => {
    const s = env.app.services;
    const tid = env.tenant.tenant.id;
    const ctx = env.tenant.ctx;
    await s.metering.plans.upsert(sys(s), { name: 'two-keys', limits: { max_keys: 2 } });
    await s.metering.plans.assign(sys(s), tid, 'two-keys');
    // gatewayEnv created one key; a second fits.
    const second = await s.identity.keys.create(ctx, { name: 'second' });
    const e = await refusal(s.identity.keys.create(ctx, { name: 'third' }));
    expect(e.status).toBe(409);
    expect((await e.toBody()).error).toMatchObject({ code: 'key_limit', type: 'conflict_error', level: 'tenant', limit: 'max_keys', limit_value: 2, current: 2 });

    // Over HTTP the refusal carries the same fields.
    const r = await call(env.app.url, `/admin/api/tenants/${tid}/keys`, { method: 'POST', session: owner, body: { name: 'third' } });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'key_limit', level: 'tenant', limit: 'max_keys', limit_value: 2 });
    const denied = (await rawRows(s.store, sql`SELECT details FROM audit_log WHERE action = 'key.create' AND outcome = 'denied' ORDER BY seq DESC`))[0]!.details as string;
    expect(JSON.parse(denied)).toEqual({ level: 'tenant' });

    // A rotation replaces a key: allowed at the cap.
    const rotated = await s.identity.keys.rotate(ctx, second.key.id);
    expect(rotated.previous.revokedAt).not.toBeNull();
    expect((await refusal(s.identity.keys.create(ctx, { name: 'still-full' }))).code).toBe('key_limit');
    // Another tenant (default plan) is not affected by this tenant's count.
    const other = await seedTenant(s, 'other', ['owner']);
    await s.identity.keys.create(other.ctx, { name: 'free' });
    await s.identity.keys.revoke(ctx, rotated.key.id);
    await s.identity.keys.create(ctx, { name: 'after-revoke' });

    // Without max_keys in the plan, nothing limits (the plan value is read fresh at creation).
    await s.metering.plans.upsert(sys(s), { name: 'two-keys', limits: {} });
    await s.identity.keys.create(ctx, { name: 'unlimited' });
  });

  it('the licence caps keys installation-wide (level licence) and wins when both are full', async () => {
    const s = env.app.services;
    const ctx = env.tenant.ctx;
    const active = Number((await rawRows(s.store, sql`SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL`))[0]!.n);
    lic.keyLimit = active;
    try {
      let e = await refusal(s.identity.keys.create(ctx, { name: 'over-licence' }));
      expect((await e.toBody()).error).toMatchObject({ code: 'key_limit', level: 'licence', limit: 'max_keys', limit_value: active, current: active });
      // Both full: the licence is named (a bigger plan would not help).
      await s.metering.plans.upsert(sys(s), { name: 'two-keys', limits: { max_keys: 1 } });
      e = await refusal(s.identity.keys.create(ctx, { name: 'over-both' }));
      expect((await e.toBody()).error).toMatchObject({ level: 'licence' });
      lic.keyLimit = null;
      e = await refusal(s.identity.keys.create(ctx, { name: 'over-plan' }));
      expect((await e.toBody()).error).toMatchObject({ level: 'tenant', limit_value: 1 });
    } finally {
      lic.keyLimit = null;
    }
  });
});

describe('licence soft-mode warning header', () => {
  it('x-enclave-license-warning is set on admitted /v1 calls while the licence warns, with and without tenant limits', async () => {
    const s = env.app.services;
    const tid = env.tenant.tenant.id;
    await s.metering.plans.assign(sys(s), tid, null); // default plan: no limits, admission does not touch Redis
    let r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-enclave-license-warning')).toBeNull();

    lic.warning = 'license_quota_80';
    r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-enclave-license-warning')).toBe('license_quota_80');

    await s.metering.plans.upsert(sys(s), { name: 'rpm', limits: { requests_per_minute: 100 } });
    await s.metering.plans.assign(sys(s), tid, 'rpm');
    lic.warning = 'license_quota_exceeded_soft';
    r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-enclave-license-warning')).toBe('license_quota_exceeded_soft');
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('100');

    // Streaming answers carry it too (headers are set at admission, before the stream starts).
    const st = await fetch(`${env.app.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, stream: true }),
    });
    expect(st.status).toBe(200);
    expect(st.headers.get('x-enclave-license-warning')).toBe('license_quota_exceeded_soft');
    await st.text();

    lic.warning = undefined;
    r = await chat();
    expect(r.headers.get('x-enclave-license-warning')).toBeNull();
  });
});
