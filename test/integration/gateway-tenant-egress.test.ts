import { sql } from 'drizzle-orm';
import { rawRun } from '../helpers/stores.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';
import { FAST } from './gateway-env.js';

/**
 * The egress rule for tenant-private deployments under the default setting
 * (ENCLAVE_TENANT_PROVIDER_NETWORKS empty): a tenant administrator cannot point the
 * appliance at its own loopback services or at the cloud metadata endpoint, neither when
 * setting the base URL nor through a name resolving there at connection time. Platform
 * deployments are not restricted. The fake upstream listens on loopback, so it doubles as
 * "an internal service": it must see no request from a tenant-private deployment.
 */
let app: TestApp;
let upstream: FakeOpenAI;
let A: Awaited<ReturnType<typeof seedTenant>>;
let aAdmin: Session;
let root: Session;
let client: OpenAI;
const aPath = () => `/admin/api/tenants/${A.tenant.id}/providers`;
const port = () => new URL(upstream.url).port;

beforeAll(async () => {
  upstream = await new FakeOpenAI().start();
  app = await startTestApp({ entitlements: unrestricted });
  const s = app.services;
  A = await seedTenant(s, 'acorp', ['owner', 'admin', 'member']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  [aAdmin, root] = await Promise.all([login(app.url, A.users.admin!.email), login(app.url, 'root@platform.test')]);
  client = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: (await s.identity.keys.create(A.ctx, { name: 'app', ownerUserId: A.users.member!.id })).secret, maxRetries: 0 });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

describe('tenant-private deployments may not reach loopback or link-local addresses', () => {
  it('refuses such a base URL on create and update (400 base_url_forbidden, nothing stored), for tenant and platform administrators alike', async () => {
    const bad = [`http://127.0.0.1:${port()}/v1`, `http://localhost:${port()}/v1`, `http://[::ffff:127.0.0.1]:${port()}/v1`, 'http://169.254.169.254/latest/v1', `http://[::1]:${port()}/v1`];
    for (const base_url of bad) {
      for (const session of [aAdmin, root]) {
        const r = await call(app.url, aPath(), { method: 'POST', session, body: { name: 'a-sneaky', kind: 'openai', base_url, boundary: 'private', models: ['m'] } });
        expect(r.status, base_url).toBe(400);
        expect(r.body.error).toMatchObject({ code: 'base_url_forbidden', param: 'base_url' });
        expect(r.body.error.message).toMatch(/tenant-private deployments may not reach.*ENCLAVE_TENANT_PROVIDER_NETWORKS/);
      }
    }
    expect(await app.services.gateway.deployments.list({ tenantId: A.tenant.id })).toEqual([]);

    // An allowed address first (nothing listens there), then an update towards loopback.
    const ok = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: { name: 'a-lan', kind: 'openai', base_url: 'http://10.255.255.1:8000/v1', boundary: 'private', models: ['lan-model'] } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const patch = await call(app.url, `${aPath()}/a-lan`, { method: 'PATCH', session: aAdmin, body: { base_url: `http://127.0.0.1:${port()}/v1` } });
    expect(patch.status).toBe(400);
    expect(patch.body.error.code).toBe('base_url_forbidden');
    expect((await app.services.gateway.deployments.get('a-lan')).base_url).toBe('http://10.255.255.1:8000/v1');

    // A platform deployment on loopback is fine (platform administrators own the perimeter) …
    const platform = await call(app.url, '/admin/api/providers', { method: 'POST', session: root, body: { name: 'platform-local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['platform-model'] } });
    expect(platform.status, JSON.stringify(platform.body)).toBe(201);
    // … but handing it to a tenant (whose administrators could then use it) is refused.
    const move = await call(app.url, `/admin/api/providers/${platform.body.id}`, { method: 'PATCH', session: root, body: { tenant_id: A.tenant.id } });
    expect(move.status).toBe(400);
    expect(move.body.error.code).toBe('base_url_forbidden');
    expect((await app.services.gateway.deployments.get('platform-local')).tenant_id).toBeNull();
    expect(upstream.requests).toHaveLength(0);
  });

  it('a stored tenant deployment whose name resolves to loopback is refused at connection time: the call fails, test says why, the service sees nothing', async () => {
    const s = app.services;
    const created = await call(app.url, aPath(), { method: 'POST', session: aAdmin, body: { name: 'a-rebind', kind: 'openai', base_url: 'http://10.255.255.2:8000/v1', boundary: 'local', models: ['rebind-model'], options: FAST } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // As a row stored before this rule existed, or a name whose DNS answer changed since:
    // written behind the service's back, then announced like any configuration change.
    await rawRun(s.store, sql`UPDATE provider_deployments SET base_url = ${`http://localhost:${port()}/v1`} WHERE name = ${'a-rebind'}`);
    await s.gateway.revision.bump();
    upstream.reset();

    const err = await client.chat.completions.create({ model: 'rebind-model', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('provider_connection_error');
    const tested = await call(app.url, `${aPath()}/a-rebind/test`, { method: 'POST', session: aAdmin });
    expect(tested.status).toBe(200);
    expect(tested.body).toMatchObject({ ok: false });
    expect(tested.body.error).toMatch(/refused to connect to localhost: 127\.0\.0\.1 is loopback/);
    expect(upstream.requests).toHaveLength(0);

    // Its breaker opens; /readyz (unauthenticated) counts it without naming it, and a tenant's
    // broken endpoint does not make the appliance degraded.
    for (let i = 0; i < 5 && s.gateway.catalogue.deployment('a-rebind')!.breaker.state !== 'open'; i++) {
      await client.chat.completions.create({ model: 'rebind-model', messages: [{ role: 'user', content: 'hi' }] }).catch(() => undefined);
    }
    expect(s.gateway.catalogue.deployment('a-rebind')!.breaker.state).toBe('open');
    const ready = await fetch(`${app.url}/readyz`);
    const text = await ready.text();
    expect(JSON.parse(text).checks.providers).toMatchObject({ status: 'ok', deployments: 1, open_breakers: [], tenant_deployments: 2, tenant_open_breakers: 1 });
    for (const secret of ['a-rebind', 'a-lan', 'acorp', A.tenant.id]) expect(text).not.toContain(secret);

    // The platform deployment on the same address still works: the rule is for tenant-private ones.
    const ok = await client.chat.completions.create({ model: 'platform-model', messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0]!.message.content).toBeTruthy();
    expect(upstream.requests).toHaveLength(1);
  });
});
