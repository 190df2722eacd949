import { sql, type SQL } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import { SESSION_COOKIE } from '../../server/identity/sessions.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { call, login, PASSWORD, sys } from '../helpers/identity.js';
import { scimClient, scimTenant } from '../fixtures/scim/setup.js';

/**
 * SCIM security: tenant isolation (a token of A never reads or changes B's users or groups,
 * a filter cannot reach them), identity authority (a userName or e-mail of a platform admin
 * or of another tenant's member never takes that account over; new accounts only for domains
 * verified for the tenant), the token (only on /scim, nothing else on /scim; revoke and rotate
 * by the CLI hold at the next request; hashed at rest; audited), the licence capability.
 */
let app: TestApp;
let A: Awaited<ReturnType<typeof scimTenant>>;
let B: Awaited<ReturnType<typeof scimTenant>>;
let bUser: { id: string; userName: string };
let bGroup: string;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted });
  A = await scimTenant(app, 'alpha');
  B = await scimTenant(app, 'beta');
  const r = await B.client('POST', '/Users', { userName: `bob@${B.domain}`, externalId: 'b-ext-1' });
  expect(r.status).toBe(201);
  bUser = { id: r.body.id, userName: r.body.userName };
  const g = await B.client('POST', '/Groups', { displayName: 'Beta Team', members: [{ value: bUser.id }] });
  bGroup = g.body.id;
  cliEnv = { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent' };
});
afterAll(async () => {
  await app.close();
});

// What is stored, read on either dialect (TEST_DIALECT=postgres runs this file on PostgreSQL).
const rows = (q: SQL) => rawRows(app.services.store, q);
const REFUSED = 'An account with this e-mail exists and cannot be provisioned by this tenant; ask a platform administrator.';
const snapshot = async () =>
  JSON.stringify([
    await rows(sql`SELECT * FROM scim_users ORDER BY tenant_id, user_id`),
    await rows(sql`SELECT * FROM scim_group_members ORDER BY group_id, user_id`),
    await rows(sql`SELECT * FROM memberships ORDER BY tenant_id, user_id`),
    await rows(sql`SELECT id, email, name, status FROM users ORDER BY id`),
  ]);

describe('tenant isolation', () => {
  it("A's token: B's user and group by id are 404 for every method, and nothing in B changes", async () => {
    const before = await snapshot();
    const patch = { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] };
    for (const [method, path, body] of [
      ['GET', `/Users/${bUser.id}`],
      ['PUT', `/Users/${bUser.id}`, { userName: `bob@${B.domain}`, active: false }],
      ['PATCH', `/Users/${bUser.id}`, patch],
      ['DELETE', `/Users/${bUser.id}`],
      ['GET', `/Groups/${bGroup}`],
      ['PUT', `/Groups/${bGroup}`, { displayName: 'taken', members: [] }],
      ['PATCH', `/Groups/${bGroup}`, { Operations: [{ op: 'remove', path: 'members' }] }],
      ['DELETE', `/Groups/${bGroup}`],
    ] as const) {
      const r = await A.client(method, path, body);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    }
    expect(await snapshot()).toBe(before);
    expect((await B.client('GET', `/Users/${bUser.id}`)).body.active).toBe(true);
  });

  it("no filter or listing of A's reaches B's users or groups", async () => {
    for (const f of [`userName eq "${bUser.userName}"`, 'externalId eq "b-ext-1"', `id eq "${bUser.id}"`, `emails.value co "${B.domain}"`, 'userName pr', `userName pr or id eq "${bUser.id}"`]) {
      const r = await A.client('GET', `/Users?filter=${encodeURIComponent(f)}`);
      expect(r.status, f).toBe(200);
      expect(r.body.Resources.map((u: any) => u.id), f).not.toContain(bUser.id);
    }
    expect((await A.client('GET', '/Users')).body.Resources.map((u: any) => u.id)).not.toContain(bUser.id);
    const groups = await A.client('GET', `/Groups?filter=${encodeURIComponent(`members[value eq "${bUser.id}"] or id eq "${bGroup}"`)}`);
    expect(groups.body.totalResults).toBe(0);
  });

  it("A cannot put B's user into A's group", async () => {
    const before = await snapshot();
    const r = await A.client('POST', '/Groups', { displayName: 'Alpha Team', members: [{ value: bUser.id }] });
    expect(r.status).toBe(400);
    expect(r.body.scimType).toBe('invalidValue');
    expect(await snapshot()).toBe(before);
  });
});

describe('identity authority', () => {
  it("a userName/e-mail of a platform administrator is refused (409), the account untouched, the attempt audited", async () => {
    const root = await app.services.identity.users.create(sys(app.services), { email: `root@${A.domain}`, password: PASSWORD, platformAdmin: true });
    const before = await snapshot();
    const r = await A.client('POST', '/Users', { userName: `root@${A.domain}`, emails: [{ value: `ROOT@${A.domain}`, primary: true }] });
    expect(r.status).toBe(409);
    expect(r.body.scimType).toBe('uniqueness');
    expect(r.body.detail).toBe(REFUSED); // the same answer as for any account it may not hold
    expect(await snapshot()).toBe(before);
    expect((await login(app.url, root.email)).status).toBe(200); // still signs in with its own password
    const [audit] = await rows(sql`SELECT reason, outcome FROM audit_log WHERE action = 'scim.user.create' AND outcome = 'denied' ORDER BY seq DESC LIMIT 1`);
    expect(audit).toEqual({ reason: 'account_link_refused', outcome: 'denied' });
  });

  it("an account that is a member of another tenant is not taken over, even in the tenant's verified domain", async () => {
    const u = await app.services.identity.users.create(sys(app.services), { email: `carol@${A.domain}`, password: PASSWORD });
    await app.services.identity.users.grant(B.ctx, u.id, 'admin');
    const before = await snapshot();
    const r = await A.client('POST', '/Users', { userName: `carol@${A.domain}` });
    expect(r.status).toBe(409);
    expect(r.body.detail).toBe(REFUSED);
    expect(await snapshot()).toBe(before);
  });

  it('a new account only for a domain verified for the tenant: another tenant’s or an unverified domain is refused, nothing created', async () => {
    const before = await snapshot();
    for (const email of [`mallory@${B.domain}`, 'mallory@unverified.test']) {
      const r = await A.client('POST', '/Users', { userName: email });
      expect(r.status, email).toBe(400);
      expect(r.body.detail, email).toMatch(/not verified for this tenant/);
      expect(await app.services.identity.users.byEmail(email), email).toBeUndefined();
    }
    expect(await snapshot()).toBe(before);
  });

  it('an existing account of the verified domain that belongs to no tenant is adopted', async () => {
    const u = await app.services.identity.users.create(sys(app.services), { email: `dave@${A.domain}`, password: PASSWORD });
    const r = await A.client('POST', '/Users', { userName: `dave@${A.domain}` });
    expect(r.status).toBe(201);
    expect(r.body.id).toBe(u.id);
  });

  it("a PATCH cannot move an account's e-mail into another tenant's domain or onto another account", async () => {
    const r = await A.client('POST', '/Users', { userName: `erin@${A.domain}` });
    const id = r.body.id;
    const toB = await A.client('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'userName', value: `ceo@${B.domain}` }] });
    expect(toB.status).toBe(400);
    expect(toB.body.scimType).toBe('mutability');
    const taken = await A.client('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'userName', value: `dave@${A.domain}` }] });
    expect(taken.status).toBe(409);
    expect((await app.services.identity.users.byId(id))!.email).toBe(`erin@${A.domain}`);
  });
});

describe('the SCIM token', () => {
  it('nothing but a SCIM token is accepted on /scim: none, a session, an API key, a malformed or unknown token are 401', async () => {
    const owner = await login(app.url, A.users.owner!.email);
    const { secret: apiKey } = await app.services.identity.keys.create(A.ctx, { name: 'k', ownerUserId: A.users.owner!.id });
    const headers: Record<string, Record<string, string>> = {
      none: {},
      session: { cookie: owner.cookie, 'x-csrf-token': owner.csrf },
      apiKey: { authorization: `Bearer ${apiKey}` },
      basic: { authorization: `Basic ${Buffer.from(`x:${A.token}`).toString('base64')}` },
      malformed: { authorization: 'Bearer scim_short' },
      unknown: { authorization: `Bearer scim_${'A'.repeat(43)}` },
      forged: { authorization: `Bearer ${A.token.slice(0, 17)}${B.token.slice(17)}` },
    };
    for (const [name, h] of Object.entries(headers)) {
      const r = await scimClient(app.url, undefined)('GET', '/Users', undefined, h);
      expect(r.status, name).toBe(401);
      expect(r.body.schemas, name).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
      expect(r.headers.get('www-authenticate'), name).toBe('Bearer realm="scim"');
    }
    // The session and the key are good credentials elsewhere.
    expect(owner.cookie.startsWith(`${SESSION_COOKIE}=`)).toBe(true);
    expect((await call(app.url, '/admin/api/me', { key: apiKey })).status).toBe(200);
    expect((await call(app.url, '/admin/api/me', { session: owner })).status).toBe(200);
  });

  it('a SCIM token is accepted nowhere else', async () => {
    for (const path of ['/admin/api/me', `/admin/api/tenants/${A.tenant.id}/users`, '/v1/models', '/api/chat/models']) {
      const r = await call(app.url, path, { key: A.token });
      expect(r.status, path).toBe(401);
    }
  });

  it('stored only as a hash; create refused while one is live; revoke and rotate by the CLI hold at the next request; audited', async () => {
    const tokens = await rows(sql`SELECT * FROM scim_tokens WHERE tenant_id = ${A.tenant.id}`);
    expect(JSON.stringify(tokens)).not.toContain(A.token.slice(17));

    const again = await runCli(['scim', 'token', 'create', '--tenant', 'alpha'], cliEnv);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/scim_token_exists/);

    expect((await A.client('GET', '/Users')).status).toBe(200);
    const rotated = JSON.parse((await runCliOk(['scim', 'token', 'rotate', '--tenant', 'alpha', '--json'], cliEnv)).stdout);
    expect(rotated.token).toMatch(/^scim_[A-Za-z0-9_-]{43}$/);
    expect((await A.client('GET', '/Users')).status).toBe(401);
    const fresh = scimClient(app.url, rotated.token);
    expect((await fresh('GET', '/Users')).status).toBe(200);

    await runCliOk(['scim', 'token', 'revoke', '--tenant', 'alpha'], cliEnv);
    expect((await fresh('GET', '/Users')).status).toBe(401);
    const list = JSON.parse((await runCliOk(['scim', 'token', 'list', '--tenant', 'alpha', '--json'], cliEnv)).stdout);
    expect(list).toEqual([]);
    const created = (await runCliOk(['scim', 'token', 'create', '--tenant', 'alpha'], cliEnv)).stdout;
    const token = /^(scim_\S+)$/m.exec(created)![1]!;
    expect((await scimClient(app.url, token)('GET', '/Users')).status).toBe(200);
    A = { ...A, token, client: scimClient(app.url, token) };

    const actions = (await rows(sql`SELECT action, actor_id FROM audit_log WHERE tenant_ref = ${A.tenant.id} AND action LIKE 'scim.token.%' ORDER BY seq`)) as { action: string; actor_id: string }[];
    expect(actions.map((a) => a.action)).toEqual(['scim.token.create', 'scim.token.rotate', 'scim.token.revoke', 'scim.token.create']);
    expect(actions.slice(1).every((a) => a.actor_id === 'cli')).toBe(true);
  });

  it("a suspended tenant's token is refused", async () => {
    await app.services.identity.tenants.setStatus(sys(app.services), B.tenant.id, 'suspended');
    try {
      expect((await B.client('GET', '/Users')).status).toBe(403);
    } finally {
      await app.services.identity.tenants.setStatus(sys(app.services), B.tenant.id, 'active');
    }
    expect((await B.client('GET', '/Users')).status).toBe(200);
  });
});

describe('admin API status', () => {
  it("GET /admin/api/tenants/:id/scim: the tenant's admins see the state (never the secret), members are refused, another tenant is 404", async () => {
    const admin = await login(app.url, B.users.admin!.email);
    const r = await call(app.url, `/admin/api/tenants/${B.tenant.id}/scim`, { session: admin });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ object: 'scim_status', endpoint: '/scim/v2', token: { id: B.tokenId, tenant_id: B.tenant.id }, users: { provisioned: 1, active: 1, deprovisioned: 0 }, groups: 1, group_roles: [] });
    expect(JSON.stringify(r.body)).not.toContain(B.token.slice(17));
    const member = await login(app.url, B.users.member!.email);
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/scim`, { session: member })).status).toBe(403);
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/scim`, { session: admin })).status).toBe(404);
  });
});

describe('licence capability scim', () => {
  it('without it provisioning is refused, deprovisioning (DELETE) still works', async () => {
    let scimOn = true;
    const ent: Entitlements = { ...unrestricted, hasFeature: (f) => f !== 'scim' || scimOn };
    const other = await startTestApp({ entitlements: ent });
    try {
      const t = await scimTenant(other, 'gamma');
      const u = await t.client('POST', '/Users', { userName: `gus@${t.domain}` });
      expect(u.status).toBe(201);
      scimOn = false;
      const refused = await t.client('POST', '/Users', { userName: `gil@${t.domain}` });
      expect(refused.status).toBe(403);
      expect(refused.body.detail).toMatch(/licence/);
      expect((await t.client('GET', '/Users')).status).toBe(403);
      expect((await t.client('DELETE', `/Users/${u.body.id}`)).status).toBe(204);
      expect(await rawRows(other.services.store, sql`SELECT 1 FROM memberships WHERE user_id = ${u.body.id}`)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
