import { eq, inArray, isNull, or } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { buildApp } from '../../server/app.js';
import type { UsageRow } from '../../server/db/repos/usage.js';
import { newId } from '../../server/ids.js';
import { startTestApp, type TestApp } from './app.js';
import { call, login, seedTenant, sys, type Session } from './identity.js';
import { appRoutes } from './routes.js';

/** Every admin API route of the app as built (its own router stacks): a route added to any router is in the matrix. */
export async function adminApiRoutes(): Promise<string[]> {
  const t = await startTestApp();
  try {
    return appRoutes(() => buildApp(t.services)).filter((r) => r.split(' ')[1]!.startsWith('/admin/api/'));
  } finally {
    await t.close();
  }
}

/**
 * Cross-tenant matrix (test/integration/admin-cross-tenant.test.ts; through two PostgreSQL
 * replicas: postgres-replicas-matrix.test.ts): for every admin API route (enumerated from the
 * router, so a new route without a case here fails) and both credential kinds, a principal of
 * tenant A tries to read, change and delete tenant B's resources by id: always 404 (or, for
 * routes without ids, no B data / a platform-only refusal), nothing changes in B, and every
 * attempt on an id is audited.
 *
 * A new admin route gets its case in `cases()` below.
 */
export interface MatrixApps {
  /** The app the tenants are seeded through and B's rows are read from. */
  readonly app: TestApp;
  /** Where the requests go; with several (replicas), each route's two credential kinds go to different ones, alternating per route. */
  readonly urls: readonly string[];
  close(): Promise<void>;
}

let app: TestApp;
let urls: readonly string[];
let A: Awaited<ReturnType<typeof seedTenant>>;
let B: Awaited<ReturnType<typeof seedTenant>>;
let bKeyId: string;
/** B's team (issue 24) with a member and a team key. */
let bTeamId: string;
let bUserOnly: string;
/** A request of B's with stored content (opt-in content logging). */
let bReqId: string;
let session: Session;
let aKey: string;
let aKeyId: string;
/** B's private provider deployment, and a platform one (never writable, nor visible, through a tenant's path). */
let bProviderId: string;
let platformProviderId: string;

/** Path prefixes of platform-wide configuration: a tenant principal is refused before any id is looked at. */
const PLATFORM_ONLY = ['/admin/api/providers', '/admin/api/model-aliases', '/admin/api/jobs', '/admin/api/license', '/admin/api/plans', '/admin/api/prices', '/admin/api/sso/platform', '/admin/api/siem'];

type Case = { method: string; path: string; body?: unknown; expect: 'not_found' | 'no_b_data' | 'platform_only' | 'self' };

function cases(route: string): Case[] | undefined {
  const [method, tpl] = route.split(' ') as [string, string];
  const fill = (t: string, tenant: string, user: string, key: string, provider = bProviderId) =>
    t
      .replace(':tenantId', tenant)
      .replace(':userId', user)
      .replace(':keyId', key)
      .replace(':teamId', bTeamId)
      .replace(':providerId', provider)
      .replace(':requestId', bReqId)
      .replace(':idpId', 'idp_00000000000000000000000000')
      .replace(':domain', 'bravo.test')
      .replace(':type', 'user')
      .replace(':queue', 'maintenance')
      .replace(':model', 'gpt-fake')
      .replace(':id', provider)
      .replace(':name', 'chat-default');
  const provider = { name: 'intruder', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', boundary: 'private', models: ['x'] };
  const body: Record<string, unknown> = {
    'PATCH /admin/api/tenants/:tenantId': { name: 'pwned' },
    'PUT /admin/api/tenants/:tenantId/members/:userId': { role: 'viewer' },
    'POST /admin/api/tenants/:tenantId/members': { email: 'intruder@a.test', role: 'member', password: 'intruder password 1' },
    'POST /admin/api/tenants/:tenantId/keys': { name: 'intruder' },
    'POST /admin/api/tenants/:tenantId/keys/:keyId/rotate': {},
    'POST /admin/api/tenants/:tenantId/teams': { name: 'intruder team' },
    'PATCH /admin/api/tenants/:tenantId/teams/:teamId': { name: 'pwned', limits: { monthly_tokens: 1 } },
    'PUT /admin/api/tenants/:tenantId/teams/:teamId/members/:userId': { role: 'admin' },
    'POST /admin/api/tenants/:tenantId/teams/:teamId/keys': { name: 'intruder' },
    'POST /admin/api/tenants/:tenantId/providers': provider,
    'PATCH /admin/api/tenants/:tenantId/providers/:providerId': { enabled: false, base_url: 'http://127.0.0.1:9/v1' },
    'POST /admin/api/tenants/:tenantId/providers/:providerId/test': {},
    'POST /admin/api/providers': provider,
    'PATCH /admin/api/providers/:id': { enabled: false },
    'POST /admin/api/providers/:id/test': {},
    'PUT /admin/api/model-aliases': { name: 'intruder', targets: [{ deployment: 'b-private', model: 'b-model' }] },
    'PUT /admin/api/gateway/policy': {},
    'PUT /admin/api/tenants/:tenantId/content-logging': { enabled: false },
    // valid, so the refusal is about who asks, whatever the order of the checks
    'PUT /admin/api/sso/platform': { claim_source: 'id_token', roles_path: null, groups_path: null, rules: [], allowed_domains: [], jit: false },
  };
  const b = body[route];
  const one = (path: string, expect: Case['expect']): Case => ({ method, path, expect, ...(b !== undefined ? { body: b } : {}) });
  const table: Record<string, () => Case[]> = {
    'GET /admin/api/me': () => [one(tpl, 'self')],
    'GET /admin/api/tenants': () => [one(tpl, 'no_b_data')],
    'POST /admin/api/tenants': () => [{ method, path: tpl, body: { slug: 'intruder' }, expect: 'platform_only' }],
    'GET /admin/api/users': () => [one(tpl, 'no_b_data')],
    'POST /admin/api/users': () => [{ method, path: tpl, body: { email: 'x@y.test' }, expect: 'platform_only' }],
    'GET /admin/api/audit': () => [one(tpl, 'platform_only')],
    // A tenant admin gets their own tenant's entry count (no B data).
    'GET /admin/api/audit/verify': () => [one(tpl, 'no_b_data')],
    // Acts on the caller's own tenant only.
    'GET /admin/api/gateway/policy': () => [one(tpl, 'self')],
    'PUT /admin/api/gateway/policy': () => [one(tpl, 'self')],
  };
  if (table[route]) return table[route]!();
  // Platform-wide configuration: refused before any id is looked at.
  if (PLATFORM_ONLY.some((p) => tpl.startsWith(p))) return [one(fill(tpl, '', '', ''), 'platform_only')];
  if (!tpl.includes(':')) return undefined;
  const out: Case[] = [one(fill(tpl, B.tenant.id, B.users.owner!.id, bKeyId), 'not_found')];
  // B's sub-resources addressed through A's own tenant path.
  if (tpl.includes(':userId')) out.push(one(fill(tpl, A.tenant.id, bUserOnly, bKeyId), 'not_found'));
  if (tpl.includes(':keyId')) out.push(one(fill(tpl, A.tenant.id, bUserOnly, bKeyId), 'not_found'));
  if (tpl.includes(':providerId')) {
    out.push(one(fill(tpl, A.tenant.id, bUserOnly, bKeyId), 'not_found'));
    // A platform deployment is not the tenant's either.
    out.push(one(fill(tpl, A.tenant.id, bUserOnly, bKeyId, platformProviderId), 'not_found'));
  }
  if (tpl.includes(':requestId')) out.push(one(fill(tpl, A.tenant.id, bUserOnly, bKeyId), 'not_found'));
  // B's team addressed through A's own tenant path (with A's own user where a user is named).
  if (tpl.includes(':teamId')) out.push(one(fill(tpl, A.tenant.id, A.users.admin!.id, bKeyId), 'not_found'));
  if (tpl.startsWith('/admin/api/users/')) out.splice(0, out.length, one(fill(tpl, '', bUserOnly, ''), 'not_found'));
  return out;
}

/** Everything of tenant B the matrix must not change, read through the store (either dialect). */
async function snapshotB(): Promise<string> {
  const { store } = app.services;
  const { q, t } = store;
  const byId = <R extends { id: string }>(rows: R[]) => rows.sort((x, y) => (x.id < y.id ? -1 : 1));
  return JSON.stringify({
    tenant: await store.all(q.select().from(t.tenants).where(eq(t.tenants.id, B.tenant.id))),
    members: (await store.all(q.select().from(t.memberships).where(eq(t.memberships.tenantId, B.tenant.id)))).sort((x, y) => (x.userId < y.userId ? -1 : 1)),
    keys: byId(
      await store.all(
        q.select({ id: t.apiKeys.id, name: t.apiKeys.name, revokedAt: t.apiKeys.revokedAt, expiresAt: t.apiKeys.expiresAt, scopes: t.apiKeys.scopes }).from(t.apiKeys).where(eq(t.apiKeys.tenantId, B.tenant.id)),
      ),
    ),
    users: byId(await store.all(q.select({ id: t.users.id, status: t.users.status, email: t.users.email }).from(t.users).where(inArray(t.users.id, [bUserOnly, B.users.owner!.id])))),
    providers: byId(await store.all(q.select().from(t.providerDeployments).where(or(eq(t.providerDeployments.tenantRef, B.tenant.id), isNull(t.providerDeployments.tenantRef))))),
    aliases: (await store.all(q.select().from(t.modelAliases))).sort((x, y) => (x.name < y.name ? -1 : 1)),
    settings: (await store.all(q.select({ key: t.tenantSettings.key, value: t.tenantSettings.value }).from(t.tenantSettings).where(eq(t.tenantSettings.tenantId, B.tenant.id)))).sort((x, y) => (x.key < y.key ? -1 : 1)),
    teams: byId(await store.all(q.select().from(t.teams).where(eq(t.teams.tenantId, B.tenant.id)))),
    teamMembers: (await store.all(q.select().from(t.teamMembers).where(eq(t.teamMembers.tenantId, B.tenant.id)))).sort((x, y) => (x.userId < y.userId ? -1 : 1)),
    traces: byId(await store.all(q.select({ id: t.callTraces.id, requestId: t.callTraces.requestId, trace: t.callTraces.trace }).from(t.callTraces).where(eq(t.callTraces.tenantId, B.tenant.id)))),
    contents: byId(
      await store.all(
        q.select({ id: t.callContents.id, requestId: t.callContents.requestId, content: t.callContents.content, expiresAt: t.callContents.expiresAt }).from(t.callContents).where(eq(t.callContents.tenantId, B.tenant.id)),
      ),
    ),
  });
}

/** The app options the matrix needs: provider base URLs below are on loopback, allowed for tenant-private deployments here on purpose. */
export const MATRIX_APP = { entitlements: unrestricted, env: { ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' } };

/** Defines the matrix's suite in the calling test file, on the apps `start` brings up (once, in beforeAll). */
export function crossTenantMatrix(title: string, routes: readonly string[], start: () => Promise<MatrixApps>): void {
  let apps: MatrixApps | undefined;
  beforeAll(async () => {
    apps = await start();
    app = apps.app;
    urls = apps.urls;
    A = await seedTenant(app.services, 'alpha', ['owner', 'admin']);
    B = await seedTenant(app.services, 'bravo', ['owner', 'member']);
    bUserOnly = B.users.member!.id;
    bKeyId = (await app.services.identity.keys.create(B.ctx, { name: 'b key', ownerUserId: B.users.owner!.id })).key.id;
    bTeamId = (await app.services.teams.create(B.ctx, { name: 'bravo team', limits: { monthly_tokens: 1000 } })).id;
    await app.services.teams.setMember(B.ctx, bTeamId, bUserOnly, 'admin');
    await app.services.teams.createKey(B.ctx, bTeamId, { name: 'b team key', ownerless: true });
    // B logs content and has one stored call.
    const content = app.services.gateway.content;
    await content.update(B.ctx, { enabled: true });
    bReqId = newId('req');
    const now = app.services.clock.now();
    content.begin(B.ctx, { retentionDays: 30 }, 'chat', { messages: [{ role: 'user', content: 'bravo secret plans' }] })!.end({ id: newId('use'), tenantId: B.tenant.id, requestId: bReqId, alias: 'm', endpoint: 'chat', stream: false, status: 'ok', errorCode: null, createdAt: now } as UsageRow);
    await content.flush();
    // …and a call trace of that request (the request explorer's routes find calls by request id).
    await app.services.gateway.traces.repo.insertMany([{ id: newId('trc'), tenantId: B.tenant.id, requestId: bReqId, usageId: null, createdAt: now, api: 'chat', endpoint: 'chat', model: 'm', deployment: null, userId: null, keyId: null, teamId: null, workflow: null, classification: 'internal', status: 'ok', httpStatus: 200, errorCode: null, latencyMs: 1, promptTokens: 1, completionTokens: 1, costMicros: 0, trace: '{"v":1,"attempts":[]}' }]);
    session = await login(app.url, A.users.owner!.email);
    const k = await app.services.identity.keys.create(A.ctx, { name: 'a admin key', ownerUserId: A.users.admin!.id, scopes: ['admin:read', 'admin:write', 'content:read', 'usage:read'] });
    aKey = k.secret;
    aKeyId = k.key.id;
    const deployments = app.services.gateway.deployments;
    bProviderId = (await deployments.create(sys(app.services), { name: 'b-private', kind: 'openai', base_url: 'http://127.0.0.1:9/b/v1', boundary: 'private', models: ['b-model'], tenant_id: B.tenant.id })).id;
    platformProviderId = (await deployments.create(sys(app.services), { name: 'platform-1', kind: 'openai', base_url: 'http://127.0.0.1:9/p/v1', boundary: 'private', models: ['p-model'] })).id;
  });
  afterAll(() => apps?.close());

  describe(title, () => {
    it('the app has the routes we expect to cover', () => {
      expect(routes.length).toBeGreaterThanOrEqual(60);
      // the routers that were once left out of a hand-written list
      for (const r of ['GET /admin/api/tenants/:tenantId/usage', 'GET /admin/api/jobs/failed', 'GET /admin/api/license']) expect(routes).toContain(r);
      for (const r of routes) expect(cases(r), `no cross-tenant case for ${r} (add it in test/helpers/cross-tenant-matrix.ts)`).toBeDefined();
    });

    routes.forEach((route, i) => {
      for (const cred of ['session', 'api_key'] as const) {
        it(`${route} as tenant A ${cred}`, async () => {
          // One app: always it. Replicas: the route's session and key go to different ones, and every replica serves both kinds.
          const url = urls[(i + (cred === 'api_key' ? 1 : 0)) % urls.length]!;
          const list = cases(route);
          expect(list, `add a cross-tenant case for ${route} (test/helpers/cross-tenant-matrix.ts)`).toBeDefined();
          for (const c of list!) {
            const before = await snapshotB();
            const auditBefore = await app.services.identity.audit.count();
            const auth = cred === 'session' ? { session } : { key: aKey };
            const r = await call(url, c.path, { method: c.method, ...(c.body !== undefined ? { body: c.body } : {}), ...auth });
            const text = JSON.stringify(r.body);
            switch (c.expect) {
              case 'not_found': {
                expect(r.status, `${c.method} ${c.path}: ${text}`).toBe(404);
                expect(r.body.error.code).toBe('not_found');
                const actor = cred === 'session' ? A.users.owner!.id : aKeyId;
                const denied = await app.services.identity.audit.list({ actorId: actor, outcome: 'denied', limit: 5 });
                expect((await app.services.identity.audit.count())).toBeGreaterThan(auditBefore);
                expect(denied[0]!.reason).toBe('not_found');
                expect([B.tenant.id, bKeyId, bUserOnly, B.users.owner!.id, bProviderId, platformProviderId, bReqId, bTeamId]).toContain(denied[0]!.targetId);
                break;
              }
              case 'platform_only':
                expect(r.status, `${c.method} ${c.path}: ${text}`).toBe(403);
                expect(['platform_admin_required', 'permission_denied']).toContain(r.body.error.code);
                break;
              case 'no_b_data':
              case 'self':
                expect(r.status).toBe(200);
                break;
            }
            // Nothing of B ever leaks or changes.
            for (const id of [B.tenant.id, bKeyId, bUserOnly, B.users.owner!.id, 'bravo', bProviderId, 'b-private', '127.0.0.1:9/b', bReqId, bTeamId]) expect(text).not.toContain(id);
            expect(await snapshotB()).toBe(before);
          }
        });
      }
    });

    it('a platform admin does reach B (so the 404s above are about tenancy, not broken routes)', async () => {
      const { users } = app.services.identity;
      const ctx = sys(app.services);
      await users.create(ctx, { email: 'root@platform.test', password: 'platform admin pass 1', platformAdmin: true });
      const root = await login(app.url, 'root@platform.test', 'platform admin pass 1');
      expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/keys/${bKeyId}`, { session: root })).status).toBe(200);
      expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/members`, { session: root })).body.data.length).toBe(2);
      expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/providers/${bProviderId}`, { session: root })).body.name).toBe('b-private');
      expect((await call(app.url, `/admin/api/providers?tenant=bravo`, { session: root })).body.data.map((d: { id: string }) => d.id)).toEqual([bProviderId]);
      const content = await call(app.url, `/admin/api/tenants/${B.tenant.id}/content-logs/${bReqId}`, { session: root });
      expect(content.status).toBe(200);
      expect(content.body.data[0].request.messages[0].content).toBe('bravo secret plans');
      const audit = await call(app.url, `/admin/api/audit?tenant=${B.tenant.id}`, { session: root });
      expect(audit.status).toBe(200);
      expect(audit.body.data.every((e: { tenant_id: string }) => e.tenant_id === B.tenant.id)).toBe(true);
    });

    it('tenant admins read only their tenant’s audit entries, with cursor pagination', async () => {
      const first = await call(app.url, `/admin/api/tenants/${A.tenant.id}/audit?limit=2`, { session });
      expect(first.status).toBe(200);
      expect(first.body.data).toHaveLength(2);
      expect(first.body.next_cursor).toBeTruthy();
      const next = await call(app.url, `/admin/api/tenants/${A.tenant.id}/audit?limit=2&cursor=${first.body.next_cursor}`, { session });
      expect(next.body.data[0].seq).toBeLessThan(first.body.data[1].seq);
      for (const e of [...first.body.data, ...next.body.data]) expect(e.tenant_id).toBe(A.tenant.id);
    });
  });
}
