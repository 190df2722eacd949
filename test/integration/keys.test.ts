import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { createContext } from '../../server/context.js';
import { AppError } from '../../server/errors.js';
import { applyKey } from '../../server/identity/http.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { runCliOk } from '../helpers/cli.js';
import { call, login, ManualClock, seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Polls `url` with the key until it is refused as revoked; returns how long after `t0` (the
 * change's commit) the last call that was still accepted started. The promise "within 1 s"
 * holds when that is under 1 s: a busy machine only makes fewer polls, never a false failure.
 */
async function lastAcceptedAfter(url: string, secret: string, t0: number): Promise<number> {
  let last = -Infinity;
  await waitFor(
    async () => {
      const started = Date.now();
      const r = await me(url, secret);
      if (r.status === 200) last = started - t0;
      return code(r);
    },
    { until: (c) => c === 'auth_key_revoked', what: `${url} refusing the revoked key` },
  );
  return last;
}
const clock = new ManualClock();
let app: TestApp;
let second: TestApp;
let acme: Awaited<ReturnType<typeof seedTenant>>;
let env: Record<string, string>;

beforeAll(async () => {
  const config = testConfig();
  app = await startTestApp({ config, clock, entitlements: unrestricted });
  // A second running process on the same database (another API replica).
  second = await startTestApp({ config, entitlements: unrestricted });
  acme = await seedTenant(app.services, 'acme');
  env = {
    ...process.env,
    ENCLAVE_DATA_DIR: config.dataDir,
    ENCLAVE_MASTER_KEY: config.masterKey!,
    REDIS_URL: config.redisUrl!,
    ENCLAVE_LOG_LEVEL: 'silent',
  } as Record<string, string>;
});
afterAll(async () => {
  await second.close();
  await app.close();
});

async function makeKey(input: { ownerUserId?: string | null; scopes?: string[]; allowedModels?: string[]; expiresAt?: number } = {}) {
  return app.services.identity.keys.create(acme.ctx, { name: 'test', ownerUserId: input.ownerUserId ?? null, ...input });
}
const me = (url: string, key: string) => call(url, '/admin/api/me', { key });
const code = (r: { body: any }) => r.body?.error?.code;

async function authorizeWith(secret: string, action: 'models:invoke', resource: { model?: string }) {
  const s = app.services;
  const ctx = applyKey(createContext({ requestId: 'req_t', log: s.log, clock: s.clock }), (await s.identity.keys.verify(secret)));
  return s.identity.access.authorize(ctx, action, resource);
}

describe('API key lifecycle', () => {
  it('valid key authenticates as its tenant, with scopes and the owner’s role', async () => {
    const { key, secret } = await makeKey({ ownerUserId: acme.users.member!.id });
    expect(secret).toMatch(/^enk_/);
    const r = await me(app.url, secret);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'api_key', id: key.id, user_id: acme.users.member!.id, role: 'member', tenant: { id: acme.tenant.id } });
    expect(r.body.scopes).toEqual(['models:invoke', 'models:list', 'embeddings:create']);
    // Stored only as a hash.
    const [row] = await rawRows(app.services.store, sql`SELECT * FROM api_keys WHERE id = ${key.id}`);
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(JSON.stringify(row)).not.toContain(secret.slice(12));
  });

  it('wrong checksum, malformed, unknown and wrong secret each answer 401 with their code', async () => {
    const { secret } = await makeKey();
    const flipped = secret.slice(0, 20) + (secret[20] === 'a' ? 'b' : 'a') + secret.slice(21);
    expect(code(await me(app.url, flipped))).toBe('auth_key_checksum');
    expect(code(await me(app.url, 'enk_short'))).toBe('auth_key_malformed');
    expect(code(await me(app.url, 'sk-proj-abcdef'))).toBe('auth_key_malformed');
    // A well-formed key that was never issued, and one with a known prefix but another secret: same answer.
    const { generateKey } = await import('../../server/keys/format.js');
    const unknown = await me(app.url, generateKey().secret);
    expect(unknown.status).toBe(401);
    expect(code(unknown)).toBe('auth_key_invalid');
    // Same visible prefix, valid checksum, different secret: indistinguishable from unknown.
    const { checksum } = await import('../../server/keys/format.js');
    const body = secret.slice(4, 12) + generateKey().secret.slice(12, 47);
    const forged = await me(app.url, `enk_${body}${checksum(body)}`);
    expect(forged.status).toBe(401);
    expect(code(forged)).toBe('auth_key_invalid');
    expect(forged.body).toEqual(unknown.body);
    expect(unknown.body.error.message).not.toMatch(/exist/i);
    const none = await call(app.url, '/admin/api/me');
    expect(code(none)).toBe('auth_required');
  });

  it('expired key: auth_key_expired', async () => {
    const { secret } = await makeKey({ expiresAt: clock.now() + 60_000 });
    expect((await me(app.url, secret)).status).toBe(200);
    clock.advance(60_000);
    expect(code(await me(app.url, secret))).toBe('auth_key_expired');
  });

  it('revoked key: refused at once here and within 1 s in a second running process', async () => {
    const { key, secret } = await makeKey();
    expect((await me(app.url, secret)).status).toBe(200);
    expect((await me(second.url, secret)).status).toBe(200); // warm both caches
    const session = await login(app.url, acme.users.admin!.email);
    const r = await call(app.url, `/admin/api/tenants/${acme.tenant.id}/keys/${key.id}`, { method: 'DELETE', session });
    const t0 = Date.now(); // committed: the admin API answered
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('revoked');
    expect(code(await me(app.url, secret))).toBe('auth_key_revoked');
    expect(await lastAcceptedAfter(second.url, secret, t0)).toBeLessThan(1000);
  });

  it('revocation by the CLI (another process writing the database) reaches the running server within 1 s', async () => {
    const { key, secret } = await makeKey();
    expect((await me(app.url, secret)).status).toBe(200);
    await runCliOk(['keys', 'revoke', key.id], env);
    const t0 = Date.now(); // committed: the CLI exited
    expect(await lastAcceptedAfter(app.url, secret, t0)).toBeLessThan(1000);
  });

  it('owner deactivated: auth_key_owner_inactive, in every process', async () => {
    const u = await app.services.identity.users.create(sys(app.services), { email: 'owner-gone@acme.test' });
    await app.services.identity.users.grant(acme.ctx, u.id, 'member');
    const { secret } = await makeKey({ ownerUserId: u.id });
    expect((await me(second.url, secret)).status).toBe(200);
    await app.services.identity.users.deactivate(sys(app.services), u.id);
    expect(code(await me(app.url, secret))).toBe('auth_key_owner_inactive');
    await waitFor(async () => code(await me(second.url, secret)), { until: (c) => c === 'auth_key_owner_inactive', what: 'the second process refusing the key' });
  });

  it('owner losing the role that granted a scope: the key loses it at its next use', async () => {
    const u = await app.services.identity.users.create(sys(app.services), { email: 'demoted@acme.test' });
    await app.services.identity.users.grant(acme.ctx, u.id, 'admin');
    const { secret } = await makeKey({ ownerUserId: u.id, scopes: ['admin:read', 'models:invoke'] });
    const path = `/admin/api/tenants/${acme.tenant.id}/members`;
    expect((await call(app.url, path, { key: secret })).status).toBe(200);
    await app.services.identity.users.grant(acme.ctx, u.id, 'member');
    const r = await call(app.url, path, { key: secret });
    expect(r.status).toBe(403);
    expect(code(r)).toBe('role_forbidden');
    await app.services.identity.users.removeMember(acme.ctx, u.id);
    expect(code(await me(app.url, secret))).toBe('auth_key_owner_inactive');
  });

  it('tenant suspended: tenant_suspended (403); resume restores the key', async () => {
    const t = await seedTenant(app.services, 'suspendme', ['owner']);
    const { secret } = await app.services.identity.keys.create(t.ctx, { name: 'k', ownerUserId: t.users.owner!.id });
    expect((await me(app.url, secret)).status).toBe(200);
    await app.services.identity.tenants.setStatus(sys(app.services), t.tenant.id, 'suspended');
    const r = await me(app.url, secret);
    expect(r.status).toBe(403);
    expect(code(r)).toBe('tenant_suspended');
    await app.services.identity.tenants.setStatus(sys(app.services), t.tenant.id, 'active');
    expect((await me(app.url, secret)).status).toBe(200);
  });

  it('scope missing: key_scope_missing', async () => {
    const { secret } = await makeKey({ scopes: ['models:invoke'] });
    const r = await call(app.url, `/admin/api/tenants/${acme.tenant.id}/keys`, { key: secret });
    expect(r.status).toBe(403);
    expect(code(r)).toBe('key_scope_missing');
  });

  it('model not allowed: key_model_not_allowed', async () => {
    const { secret } = await makeKey({ allowedModels: ['llama3'] });
    expect((await authorizeWith(secret, 'models:invoke', { model: 'llama3' }))).toEqual({ allow: true });
    const d = (await authorizeWith(secret, 'models:invoke', { model: 'gpt-4o' }));
    expect(d.allow === false && d.reason).toBe('key_model_not_allowed');
  });

  it('a key never carries more than its creator or owner could do', async () => {
    const member = await login(app.url, acme.users.member!.email);
    const path = `/admin/api/tenants/${acme.tenant.id}/keys`;
    const tooMuch = await call(app.url, path, { method: 'POST', session: member, body: { name: 'x', scopes: ['admin:write'] } });
    expect(tooMuch.status).toBe(403);
    expect(code(tooMuch)).toBe('key_scope_exceeds_creator');
    const ok = await call(app.url, path, { method: 'POST', session: member, body: { name: 'mine' } });
    expect(ok.status).toBe(201);
    expect(ok.body.owner_user_id).toBe(acme.users.member!.id);
    expect(ok.body.secret).toMatch(/^enk_/);
    // The secret is never shown again.
    const again = await call(app.url, `${path}/${ok.body.id}`, { session: member });
    expect(again.status).toBe(200);
    expect(again.body.secret).toBeUndefined();
    expect(JSON.stringify(again.body)).not.toContain(ok.body.secret);
    // A member may not create keys for others.
    const forOther = await call(app.url, path, { method: 'POST', session: member, body: { name: 'x', owner_user_id: acme.users.admin!.id } });
    expect(forOther.status).toBe(403);
    // An admin may not make a key for a viewer with scopes the viewer lacks.
    const admin = await login(app.url, acme.users.admin!.email);
    const forViewer = await call(app.url, path, { method: 'POST', session: admin, body: { name: 'x', owner_user_id: acme.users.viewer!.id, scopes: ['models:invoke'] } });
    expect(code(forViewer)).toBe('key_scope_exceeds_creator');
    // A key with admin:write cannot mint a key with scopes it lacks.
    const { secret } = await makeKey({ ownerUserId: acme.users.admin!.id, scopes: ['admin:write'] });
    const viaKey = await call(app.url, path, { method: 'POST', key: secret, body: { name: 'x', scopes: ['usage:read'] } });
    expect(code(viaKey)).toBe('key_scope_exceeds_creator');
  });

  it('rotation: a successor with the same settings; the old key ends after the overlap', async () => {
    const { key, secret } = await makeKey({ ownerUserId: acme.users.admin!.id, scopes: ['models:invoke'], allowedModels: ['llama3'] });
    const admin = await login(app.url, acme.users.admin!.email);
    const r = await call(app.url, `/admin/api/tenants/${acme.tenant.id}/keys/${key.id}/rotate`, { method: 'POST', session: admin, body: { overlap_seconds: 60 } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: key.name, scopes: ['models:invoke'], allowed_models: ['llama3'], owner_user_id: acme.users.admin!.id, rotated_from_id: key.id });
    expect((await me(app.url, r.body.secret)).status).toBe(200);
    expect((await me(app.url, secret)).status).toBe(200); // overlap
    clock.advance(61_000);
    expect(code(await me(app.url, secret))).toBe('auth_key_expired');
    expect((await me(app.url, r.body.secret)).status).toBe(200);
    // Without overlap the old key stops at once.
    const r2 = await call(app.url, `/admin/api/tenants/${acme.tenant.id}/keys/${r.body.id}/rotate`, { method: 'POST', session: admin, body: {} });
    expect(code(await me(app.url, r.body.secret))).toBe('auth_key_revoked');
    expect((await me(app.url, r2.body.secret)).status).toBe(200);
  });

  it('records last use (time and address) without a write per request', async () => {
    const { key, secret } = await makeKey();
    await me(app.url, secret);
    await app.services.identity.keys.flushUsage();
    const row = await app.services.identity.keys.get(acme.ctx, key.id);
    expect(row.lastUsedAt).toBe(clock.now());
    expect(row.lastUsedIp).toMatch(/127\.0\.0\.1/);
  });

  it('verification on a cache hit does not touch SQLite', async () => {
    const { secret } = await makeKey();
    const keys = app.services.identity.keys;
    await keys.verify(secret);
    const sqlite = app.services.sqlite!.$client;
    const prepare = sqlite.prepare.bind(sqlite);
    let calls = 0;
    (sqlite as unknown as { prepare: unknown }).prepare = (...a: [string]) => {
      calls++;
      return prepare(...a);
    };
    try {
      for (let i = 0; i < 100; i++) await keys.verify(secret);
    } finally {
      (sqlite as unknown as { prepare: unknown }).prepare = prepare;
    }
    expect(calls).toBe(0);
    await expect(keys.verify('enk_' + 'x'.repeat(49))).rejects.toThrow(AppError);
  });

  it('CLI: keys create --json includes the secret once; list never does', async () => {
    const { stdout } = await runCliOk(['keys', 'create', '--tenant', 'acme', '--name', 'cli key', '--owner', acme.users.member!.email, '--scopes', 'models:invoke', '--models', 'llama3,mistral', '--max-classification', 'internal', '--json'], env);
    const created = JSON.parse(stdout);
    expect(created.secret).toMatch(/^enk_/);
    expect(created).toMatchObject({ name: 'cli key', scopes: ['models:invoke'], allowed_models: ['llama3', 'mistral'], max_classification: 'internal', owner_user_id: acme.users.member!.id, created_by: 'system:cli' });
    expect((await me(app.url, created.secret)).status).toBe(200);
    const list = await runCliOk(['keys', 'list', '--tenant', 'acme', '--json'], env);
    expect(list.stdout).toContain(created.id);
    expect(list.stdout).not.toContain(created.secret);
    const bad = await runCliOk(['keys', 'create', '--tenant', 'nope', '--name', 'x'], env).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toMatch(/^enclave: no tenant nope\n$/);
  });
});

