import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';
import { runCliOk } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { FAST } from './gateway-env.js';

/**
 * Tenant-private provider deployments: tenant administrators manage their own tenant's
 * deployments through /admin/api/tenants/:tenantId/providers within the plan's
 * custom_providers (and cloud_providers for public ones); other tenants neither see nor
 * reach them, not in the admin API and not through /v1 (the openai SDK as client).
 */
let app: TestApp;
/** A second running server on the same database (another API replica). */
let second: TestApp;
let upstream: FakeOpenAI;
let airGapped = false;
const entitlements: Entitlements = { ...unrestricted, allowsBoundary: (b) => !(airGapped && b === 'public') };

type Seeded = Awaited<ReturnType<typeof seedTenant>>;
let A: Seeded;
let B: Seeded;
let aAdmin: Session;
let bAdmin: Session;
let root: Session;
let aMemberSession: Session;
let aAdminKey: string;
let aClient: OpenAI;
let bClient: OpenAI;
let platformId: string;
let cliEnv: Record<string, string>;
const cli = (...args: string[]) => runCliOk(['providers', ...args], cliEnv);

const UPSTREAM_KEY = 'sk-tenant-a-upstream';
const aPath = () => `/admin/api/tenants/${A.tenant.id}/providers`;
const bPath = () => `/admin/api/tenants/${B.tenant.id}/providers`;
const body = (name: string, extra: Record<string, unknown> = {}) => ({ name, kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: [`${name}-model`], options: FAST, ...extra });
const sdk = (key: string, url = app.url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
const chat = (client: OpenAI, model: string) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
const denials = async (actor: string) => (await app.services.identity.audit.list({ actorId: actor, outcome: 'denied', limit: 1 }))[0]!;

beforeAll(async () => {
  upstream = await new FakeOpenAI().start();
  // The fake upstream listens on loopback, which tenant-private deployments may only reach when
  // the platform allows it (egress rule: test/integration/gateway-tenant-egress.test.ts).
  const networks = { ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.1/32' };
  const config = testConfig(networks);
  cliEnv = { ...process.env, ...networks, ENCLAVE_DATA_DIR: config.dataDir, ENCLAVE_MASTER_KEY: config.masterKey!, REDIS_URL: config.redisUrl!, ENCLAVE_LOG_LEVEL: 'silent' } as Record<string, string>;
  app = await startTestApp({ config, entitlements });
  second = await startTestApp({ config, entitlements });
  const s = app.services;
  A = await seedTenant(s, 'acorp', ['owner', 'admin', 'member']);
  B = await seedTenant(s, 'bcorp', ['owner', 'admin', 'member']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  [aAdmin, bAdmin, root, aMemberSession] = await Promise.all([
    login(app.url, A.users.admin!.email),
    login(app.url, B.users.admin!.email),
    login(app.url, 'root@platform.test'),
    login(app.url, A.users.member!.email),
  ]);
  aAdminKey = (await s.identity.keys.create(A.ctx, { name: 'a admin', ownerUserId: A.users.admin!.id, scopes: ['admin:read', 'admin:write'] })).secret;
  aClient = sdk((await s.identity.keys.create(A.ctx, { name: 'a app', ownerUserId: A.users.member!.id })).secret);
  bClient = sdk((await s.identity.keys.create(B.ctx, { name: 'b app', ownerUserId: B.users.member!.id })).secret);
  platformId = (await s.gateway.deployments.create(sys(s), body('shared'))).id;
  const b = await call(app.url, bPath(), { method: 'POST', session: bAdmin, body: body('b-private', { base_url: `${upstream.url}/b-internal/v1` }) });
  expect(b.status).toBe(201);
});
afterAll(async () => {
  await second?.close();
  await app?.close();
  await upstream?.close();
});
beforeEach(() => {
  upstream.reset();
  upstream.apiKey = undefined;
  airGapped = false;
});

// The describes below are one story in order (later ones read what earlier ones left): kept in
// order under --sequence.shuffle.
describe('in order', { shuffle: false }, () => {
// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('tenant administrators manage their tenant’s private deployments', { shuffle: false }, () => {
  it('create, list, get, update, test, health, remove — own tenant only, credential never returned, audited for the tenant', async () => {
    const created = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-private', { api_key: UPSTREAM_KEY, region: 'eu-west', priority: 10, max_concurrency: 4 }) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ object: 'provider_deployment', name: 'a-private', tenant_id: A.tenant.id, approved: true, enabled: true, has_api_key: true, region: 'eu-west', priority: 10, max_concurrency: 4 });
    expect(JSON.stringify(created.body)).not.toContain(UPSTREAM_KEY);
    const stored = ((await rawRows(app.services.store, sql`SELECT api_key, tenant_ref FROM provider_deployments WHERE name = ${'a-private'}`)) as { api_key: string; tenant_ref: string }[])[0]!;
    expect(stored.api_key).not.toContain(UPSTREAM_KEY);
    expect(stored.tenant_ref).toBe(A.tenant.id);
    const id = created.body.id as string;

    // The tenant's list holds its own deployments only: not the platform's, not B's.
    const list = await call(app.url, aPath(), { session: aAdmin });
    expect(list.status).toBe(200);
    expect(list.body.data.map((d: { name: string }) => d.name)).toEqual(['a-private']);
    expect(JSON.stringify(list.body)).not.toContain(UPSTREAM_KEY);

    // By id and by name; an admin:write API key of the tenant works too.
    expect((await call(app.url, `${aPath()}/${id}`, { session: aAdmin })).body.health.breaker.state).toBe('closed');
    expect((await call(app.url, `${aPath()}/a-private`, { key: aAdminKey })).body.id).toBe(id);
    const patched = await call(app.url, `${aPath()}/${id}`, { method: 'PATCH', key: aAdminKey, body: { priority: 5, models: ['a-private-model', 'a-extra'] } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.priority).toBe(5);

    upstream.apiKey = UPSTREAM_KEY;
    const test = await call(app.url, `${aPath()}/${id}/test`, { method: 'POST', session: aAdmin, body: {} });
    expect(test.body).toMatchObject({ ok: true, models: ['gpt-fake', 'text-embedding-fake'] });
    expect((await call(app.url, `${aPath()}/${id}/health`, { session: aAdmin })).body.in_flight).toBe(0);

    // Audited, attributed to the tenant: the tenant admin reads it in the tenant's audit log.
    const audit = await call(app.url, `/admin/api/tenants/${A.tenant.id}/audit?limit=50`, { session: aAdmin });
    const mine = audit.body.data.filter((e: { action: string }) => e.action.startsWith('providers.'));
    expect(mine.map((e: { action: string }) => e.action)).toEqual(['providers.update', 'providers.create']);
    expect(mine[1]).toMatchObject({ tenant_id: A.tenant.id, actor: { type: 'user', id: A.users.admin!.id }, target: { type: 'provider_deployment', id } });
    expect(JSON.stringify(audit.body)).not.toContain(UPSTREAM_KEY);
    expect(JSON.stringify(audit.body)).not.toContain('b-private');

    expect((await call(app.url, `${aPath()}/${id}`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
    expect((await call(app.url, `${aPath()}/${id}`, { session: aAdmin })).status).toBe(404);
    expect((await app.services.identity.audit.list({ tenantId: A.tenant.id, action: 'providers.remove', limit: 1 }))[0]!.targetId).toBe(id);

    // Members have no providers:* permission.
    const m = await call(app.url, aPath(), { session: aMemberSession });
    expect(m.status).toBe(403);
    expect(m.body.error.code).toBe('role_forbidden');
  });

  it('refused without the plan’s custom_providers (platform admins are not bound by it); public needs cloud_providers too', async () => {
    const s = app.services;
    await s.metering.plans.upsert(sys(s), { name: 'basic', capabilities: ['self_service_keys', 'cloud_providers'] });
    await s.metering.plans.assign(sys(s), A.tenant.id, 'basic');
    try {
      for (const r of [await call(app.url, aPath(), { session: aAdmin }), await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-nope') })]) {
        expect(r.status).toBe(403);
        expect(r.body.error.code).toBe('plan_forbidden');
        expect(r.body.error.message).toBe("The tenant's plan (basic) does not include custom_providers.");
      }
      expect((await denials(A.users.admin!.id))).toMatchObject({ action: 'providers:write', reason: 'plan_forbidden', tenantRef: A.tenant.id });
      // A platform administrator configures a private deployment for the tenant whatever its plan.
      const byRoot = await call(app.url, aPath(), { method: 'POST', session: root, body: body('a-by-root', { approved: true }) });
      expect(byRoot.status, JSON.stringify(byRoot.body)).toBe(201);
      expect(byRoot.body.tenant_id).toBe(A.tenant.id);
      expect((await call(app.url, `${aPath()}/a-by-root`, { method: 'DELETE', session: root })).status).toBe(204);

      await s.metering.plans.upsert(sys(s), { name: 'byo', capabilities: ['custom_providers'] });
      await s.metering.plans.assign(sys(s), A.tenant.id, 'byo');
      const pub = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-public', { boundary: 'public' }) });
      expect(pub.status).toBe(403);
      expect(pub.body.error).toMatchObject({ code: 'plan_forbidden', message: "The tenant's plan (byo) does not include cloud_providers, which a public provider deployment needs." });
      const priv = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-byo') });
      expect(priv.status).toBe(201);
      const toPublic = await call(app.url, `${aPath()}/a-byo`, { method: 'PATCH', session: aAdmin, body: { boundary: 'public' } });
      expect(toPublic.status).toBe(403);
      expect(toPublic.body.error.code).toBe('plan_forbidden');
      expect((await s.gateway.deployments.get('a-byo')).boundary).toBe('private');
      expect((await call(app.url, `${aPath()}/a-byo`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
    } finally {
      await s.metering.plans.assign(sys(s), A.tenant.id, null);
    }
  });

  it('tenant_id names the tenant itself only; approval is the platform’s; names are unique without leaking whose', async () => {
    const other = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-elsewhere', { tenant_id: B.tenant.id }) });
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('not_found');
    expect((await denials(A.users.admin!.id))).toMatchObject({ action: 'providers.create', reason: 'not_found', targetId: B.tenant.id });
    const platformWide = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-platform', { tenant_id: null }) });
    expect(platformWide.status).toBe(403);
    expect(platformWide.body.error).toMatchObject({ code: 'platform_admin_required', param: 'tenant_id' });
    const approved = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-approved', { approved: true }) });
    expect(approved.status).toBe(403);
    expect(approved.body.error).toMatchObject({ code: 'platform_admin_required', param: 'approved' });
    expect(await app.services.gateway.deployments.find('a-elsewhere') ?? await app.services.gateway.deployments.find('a-approved')).toBeUndefined();

    const bySlug = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-slug', { tenant_id: 'acorp' }) });
    expect(bySlug.status).toBe(201);
    // A platform administrator withdraws approval; the tenant cannot give it back, nor move the deployment.
    expect((await call(app.url, `/admin/api/providers/a-slug`, { method: 'PATCH', session: root, body: { approved: false } })).body.approved).toBe(false);
    expect((await call(app.url, `${aPath()}/a-slug`, { method: 'PATCH', session: aAdmin, body: { approved: true } })).status).toBe(403);
    expect((await call(app.url, `${aPath()}/a-slug`, { method: 'PATCH', session: aAdmin, body: { tenant_id: B.tenant.id } })).status).toBe(404);
    const after = await app.services.gateway.deployments.get('a-slug');
    expect(after).toMatchObject({ approved: false, tenant_id: A.tenant.id });
    const lastChange = (await app.services.identity.audit.list({ tenantId: A.tenant.id, action: 'providers.update', outcome: 'allowed', limit: 1 }))[0]!;
    expect(lastChange.actorId).toBe((await call(app.url, '/admin/api/me', { session: root })).body.id);
    expect(JSON.parse(lastChange.details)).toMatchObject({ name: 'a-slug', changed: ['approved'], before: { approved: true }, after: { approved: false } });

    // B's deployment name: 409 that says the name is taken, nothing about B's deployment.
    const clash = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('b-private', { base_url: 'http://127.0.0.1:9/v1' }) });
    expect(clash.status).toBe(409);
    expect(clash.body.error).toMatchObject({ code: 'provider_exists', param: 'name', message: 'The provider deployment name b-private is taken; choose another.' });
    const b = await app.services.gateway.deployments.get('b-private');
    for (const leak of [b.id, B.tenant.id, 'bcorp', b.base_url]) expect(JSON.stringify(clash.body)).not.toContain(leak);
    expect((await call(app.url, `${aPath()}/a-slug`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
  });

  it('another tenant’s deployment, a platform deployment, another tenant’s path: 404 and audited; nothing changes', async () => {
    const b = await app.services.gateway.deployments.get('b-private');
    const before = JSON.stringify(await app.services.gateway.deployments.list());
    const attempts: [string, string, unknown?][] = [];
    for (const target of [b.id, 'b-private', platformId]) {
      attempts.push(['GET', `${aPath()}/${target}`], ['PATCH', `${aPath()}/${target}`, { enabled: false }], ['DELETE', `${aPath()}/${target}`], ['POST', `${aPath()}/${target}/test`, {}], ['GET', `${aPath()}/${target}/health`]);
    }
    attempts.push(['GET', bPath()], ['POST', bPath(), body('a-in-b')], ['GET', `${bPath()}/${b.id}`], ['DELETE', `${bPath()}/${b.id}`]);
    for (const [method, path, payload] of attempts) {
      for (const auth of [{ session: aAdmin }, { key: aAdminKey }]) {
        const n = await app.services.identity.audit.count();
        const r = await call(app.url, path, { method, ...auth, ...(payload !== undefined ? { body: payload } : {}) });
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.error.code).toBe('not_found');
        for (const leak of [b.base_url, B.tenant.id, 'bcorp']) expect(JSON.stringify(r.body)).not.toContain(leak);
        expect((await app.services.identity.audit.count())).toBe(n + 1);
        const e = (await app.services.identity.audit.list({ outcome: 'denied', limit: 1 }))[0]!;
        expect(e.reason).toBe('not_found');
        expect([b.id, 'b-private', platformId, B.tenant.id]).toContain(e.targetId);
      }
    }
    expect(JSON.stringify(await app.services.gateway.deployments.list())).toBe(before);
    expect(upstream.requests.length).toBe(0);
  });
});

describe('tenant-private models through /v1 (openai SDK)', () => {
  it('tenant A calls its private model; tenant B neither lists nor calls it (model_not_found, nothing sent upstream)', async () => {
    const created = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-llm', { api_key: UPSTREAM_KEY, models: ['a-secret-model'] }) });
    expect(created.status).toBe(201);
    upstream.apiKey = UPSTREAM_KEY;

    const r = await chat(aClient, 'a-secret-model');
    expect(r.choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect((await aClient.models.list()).data.map((m) => m.id)).toContain('a-secret-model');
    expect((await aClient.models.list()).data.map((m) => m.id)).toContain('shared-model');

    upstream.reset();
    const bModels = (await bClient.models.list()).data.map((m) => m.id);
    expect(bModels).not.toContain('a-secret-model');
    expect(bModels).toContain('shared-model');
    const e = await chat(bClient, 'a-secret-model').catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect(e.code).toBe('model_not_found');
    const m = await bClient.models.retrieve('a-secret-model').catch((x) => x);
    expect(m).toBeInstanceOf(OpenAI.NotFoundError);
    expect(upstream.requests.length).toBe(0);

    // The tenant's data-boundary policy still decides: internal data kept local → refused.
    const s = app.services;
    await s.gateway.policies.write(A.ctx, { boundaries: { internal: ['local'] } }, Date.now());
    try {
      const denied = await chat(aClient, 'a-secret-model').catch((x) => x);
      expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect(denied.code).toBe('policy_boundary_denied');
      expect(upstream.requests.length).toBe(0);
    } finally {
      await s.gateway.policies.write(A.ctx, {}, Date.now());
    }
    expect((await call(app.url, `${aPath()}/a-llm`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
  });

  it('air-gapped deployment mode refuses a tenant’s public deployment at configuration and at call time', async () => {
    airGapped = true;
    const refused = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-cloud', { boundary: 'public' }) });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ code: 'policy_boundary_unlicensed', type: 'policy_error' });

    airGapped = false;
    expect((await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-cloud', { boundary: 'public' }) })).status).toBe(201);
    expect((await chat(aClient, 'a-cloud-model')).choices[0]!.message.content).toBeTruthy();
    upstream.reset();
    airGapped = true;
    const e = await chat(aClient, 'a-cloud-model').catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(e.code).toBe('policy_boundary_denied');
    expect(upstream.requests.length).toBe(0);
    expect((await aClient.models.list()).data.map((x) => x.id)).not.toContain('a-cloud-model');
    const toPublic = await call(app.url, `${aPath()}/a-cloud`, { method: 'PATCH', session: aAdmin, body: { boundary: 'public' } });
    expect(toPublic.body.error.code).toBe('policy_boundary_unlicensed');
    airGapped = false;
    expect((await call(app.url, `${aPath()}/a-cloud`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
  });

  it('a tenant admin’s changes reach another running server within 1 s', async () => {
    const aOnSecond = sdk((await app.services.identity.keys.create(A.ctx, { name: 'a second', ownerUserId: A.users.member!.id })).secret, second.url);
    const ids = async () => (await aOnSecond.models.list()).data.map((m) => m.id);
    expect(await ids()).not.toContain('a-fresh-model');

    // Measured from the answer: the change is committed when the admin API answers.
    expect((await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-fresh') })).status).toBe(201);
    let t0 = Date.now();
    await waitFor(() => second.services.gateway.catalogue.deployment('a-fresh'), { what: 'a-fresh on the second server' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await ids()).toContain('a-fresh-model');
    expect((await chat(aOnSecond, 'a-fresh-model')).choices[0]!.message.content).toBeTruthy();

    expect((await call(app.url, `${aPath()}/a-fresh`, { method: 'PATCH', session: aAdmin, body: { enabled: false } })).status).toBe(200);
    t0 = Date.now();
    await waitFor(() => second.services.gateway.catalogue.deployment('a-fresh')?.enabled, { until: (e) => e === false, what: 'a-fresh disabled on the second server' });
    expect(Date.now() - t0).toBeLessThan(1000);
    const e = await chat(aOnSecond, 'a-fresh-model').catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);

    expect((await call(app.url, `${aPath()}/a-fresh`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
    t0 = Date.now();
    await waitFor(() => second.services.gateway.catalogue.deployment('a-fresh'), { until: (d) => d === undefined, what: 'a-fresh gone from the second server' });
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe('tenant model aliases', () => {
  it('a tenant alias wins over a same-named model for that tenant only; targets and tenant are checked; set and remove are audited', async () => {
    const s = app.services;
    // A's own deployment is a second upstream, so which one answered is plain.
    const own = await new FakeOpenAI().start();
    try {
    expect((await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: body('a-own', { base_url: `${own.url}/v1` }) })).status).toBe(201);
    const put = (b: Record<string, unknown>) => call(app.url, '/admin/api/model-aliases', { method: 'PUT', session: root, body: b });

    // Checked: the tenant must exist; every target must be a deployment the alias's tenant may use.
    expect((await put({ name: 'shared-model', tenant_id: 'no-such-tenant', targets: [{ deployment: 'a-own', model: 'a-own-model' }] })).status).toBe(404);
    for (const deployment of ['no-such-deployment', 'b-private']) {
      const r = await put({ name: 'shared-model', tenant_id: 'acorp', targets: [{ deployment, model: 'x' }] });
      expect(r.status, deployment).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'alias_target_unknown', param: 'targets[0].deployment' });
    }
    // A platform alias may not point at a tenant's own deployment either.
    expect((await put({ name: 'everyone', targets: [{ deployment: 'a-own', model: 'a-own-model' }] })).body.error.code).toBe('alias_target_unknown');
    expect(await s.gateway.deployments.listAliases()).toEqual([]);

    // A's alias named like the platform's model (by slug): A now reaches its own deployment …
    const set = await put({ name: 'shared-model', tenant_id: 'acorp', targets: [{ deployment: 'a-own', model: 'a-own-model' }] });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ name: 'shared-model', tenant_id: A.tenant.id });
    await waitFor(() => s.gateway.catalogue.candidates('shared-model', A.tenant.id)[0]?.deployment.name, { until: (n) => n === 'a-own', what: 'A’s alias in the catalogue' });
    upstream.reset();
    await chat(aClient, 'shared-model');
    expect(own.requests.map((r) => r.body.model)).toEqual(['a-own-model']);
    expect(upstream.requests).toHaveLength(0);
    // … while B still reaches the platform deployment under the same name, and still lists it.
    await chat(bClient, 'shared-model');
    expect(upstream.requests.map((r) => r.body.model)).toEqual(['shared-model']);
    expect(own.requests).toHaveLength(1);
    expect((await bClient.models.list()).data.map((m) => m.id)).toContain('shared-model');
    expect((await aClient.models.list()).data.filter((m) => m.id === 'shared-model')).toHaveLength(1);

    const setEntry = (await s.identity.audit.list({ tenantId: A.tenant.id, action: 'providers.alias_set', limit: 1 }))[0]!;
    expect(setEntry).toMatchObject({ targetId: 'shared-model', outcome: 'allowed' });
    expect(JSON.parse(setEntry.details)).toMatchObject({ targets: ['a-own/a-own-model'], replaced: false });

    expect((await call(app.url, '/admin/api/model-aliases/shared-model', { method: 'DELETE', session: root })).status).toBe(204);
    expect((await s.identity.audit.list({ tenantId: A.tenant.id, action: 'providers.alias_remove', limit: 1 }))[0]).toMatchObject({ targetId: 'shared-model' });
    await waitFor(() => s.gateway.catalogue.candidates('shared-model', A.tenant.id)[0]?.deployment.name, { until: (n) => n === 'shared', what: 'A’s alias removed from the catalogue' });
    upstream.reset();
    await chat(aClient, 'shared-model');
    expect(upstream.requests.map((r) => r.body.model)).toEqual(['shared-model']);
    expect(own.requests).toHaveLength(1);
    } finally {
      expect((await call(app.url, `${aPath()}/a-own`, { method: 'DELETE', session: aAdmin })).status).toBe(204);
      await own.close();
    }
  });
});

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('enclave providers --tenant', { shuffle: false }, () => {
  it('add --tenant <slug> makes a private deployment (audited for the tenant, live within 1 s); list --tenant filters; an unknown tenant fails', async () => {
    const [added, unknown] = await Promise.all([
      cli('add', '--name', 'a-cli', '--kind', 'openai', '--base-url', `${upstream.url}/v1`, '--boundary', 'private', '--models', 'a-cli-model', '--tenant', 'acorp', '--json'),
      cli('list', '--tenant', 'no-such-tenant').catch((x: { code: number; stderr: string }) => x),
    ]);
    const d = JSON.parse((added as { stdout: string }).stdout);
    expect(d).toMatchObject({ name: 'a-cli', tenant_id: A.tenant.id, approved: true });
    expect((unknown as { code: number }).code).toBe(3);
    expect((unknown as { stderr: string }).stderr).toMatch(/^enclave: not_found: Tenant not found/);
    const t0 = Date.now();
    await waitFor(() => app.services.gateway.catalogue.deployment('a-cli'), { what: 'a-cli in the catalogue' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await aClient.models.list()).data.map((m) => m.id)).toContain('a-cli-model');
    expect((await bClient.models.list()).data.map((m) => m.id)).not.toContain('a-cli-model');
    const entry = (await app.services.identity.audit.list({ tenantId: A.tenant.id, action: 'providers.create', limit: 1 }))[0]!;
    expect(entry).toMatchObject({ actorType: 'system', targetId: d.id });

    const [mine, platform] = await Promise.all([cli('list', '--tenant', A.tenant.id, '--json'), cli('list', '--platform')]);
    expect(JSON.parse(mine.stdout).map((x: { name: string }) => x.name)).toEqual(['a-cli']);
    expect(platform.stdout).toMatch(/shared .*\(platform\)/);
    expect(platform.stdout).not.toContain('a-cli');
    expect(platform.stdout).not.toContain('b-private');
  }, 30_000); // four CLI processes, each compiling the sources through tsx
});
});
