import { sql, type SQL } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRows } from '../helpers/stores.js';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { scimTenant, shape, type ScimClient } from '../fixtures/scim/setup.js';

/**
 * SCIM 2.0 conformance: the request sequences Microsoft Entra ID and Okta send (their
 * recorded shapes in test/fixtures/scim/), then a generic client (discovery, pagination,
 * projection, the error schema, body limits) — against the real app over HTTP.
 */
let app: TestApp;
let entra: Awaited<ReturnType<typeof scimTenant>>;
let okta: Awaited<ReturnType<typeof scimTenant>>;
let generic: Awaited<ReturnType<typeof scimTenant>>;
const MAX_BODY = 65_536;

beforeAll(async () => {
  app = await startTestApp({ config: testConfig({ ENCLAVE_MAX_BODY_BYTES: String(MAX_BODY) }), entitlements: unrestricted });
  entra = await scimTenant(app, 'entra');
  okta = await scimTenant(app, 'okta');
  generic = await scimTenant(app, 'generic');
});
afterAll(async () => {
  await app.close();
});

// What is stored, read on either dialect (TEST_DIALECT=postgres runs this file on PostgreSQL).
const one = async (q: SQL): Promise<any> => (await rawRows(app.services.store, q))[0]; // a raw row: its columns as the SQL names them
const membership = async (tenantId: string, userId: string) => (await one(sql`SELECT role FROM memberships WHERE tenant_id = ${tenantId} AND user_id = ${userId}`)) as { role: string } | undefined;
const account = async (userId: string) => (await one(sql`SELECT email, name, status, password_hash FROM users WHERE id = ${userId}`)) as { email: string; name: string; status: string; password_hash: string | null };

function expectScimJson(r: { headers: Headers }) {
  expect(r.headers.get('content-type')).toMatch(/^application\/scim\+json/);
}
function expectScimError(r: { status: number; body: any; headers: Headers }, status: number, scimType?: string) {
  expect(r.status).toBe(status);
  expectScimJson(r);
  expect(r.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
  expect(r.body.status).toBe(String(status));
  if (scimType) expect(r.body.scimType).toBe(scimType);
  expect(typeof r.body.detail).toBe('string');
}

// The describes below are one story in order (later ones read what earlier ones left): kept in
// order under --sequence.shuffle.
describe('in order', { shuffle: false }, () => {
// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('Microsoft Entra ID request sequence', { shuffle: false }, () => {
  let c: ScimClient;
  let vars: Record<string, string>;
  let userId: string;
  let groupId: string;
  beforeAll(() => {
    c = entra.client;
    vars = { domain: entra.domain };
  });

  it('looks the user up (none), creates it, finds it by userName, externalId and work e-mail', async () => {
    const none = await c('GET', shape('entra-id', 'getUserByUserName', vars));
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 0, Resources: [] });

    const created = await c('POST', '/Users', shape('entra-id', 'createUser', vars));
    expect(created.status).toBe(201);
    expectScimJson(created);
    userId = created.body.id;
    vars.user = userId;
    expect(userId).toMatch(/^usr_/);
    expect(created.headers.get('location')).toBe(`${app.url}/scim/v2/Users/${userId}`);
    expect(created.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
      externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
      userName: `Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@${entra.domain}`,
      active: true,
      name: { givenName: 'givenName', familyName: 'familyName' },
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Engineering', employeeNumber: '1234' },
      meta: { resourceType: 'User', location: `${app.url}/scim/v2/Users/${userId}` },
    });
    // The account: the primary e-mail, no password (its holder signs in through the tenant's IdP), a member.
    expect(await account(userId)).toMatchObject({ email: `test_user_fd0ea19b-0777-472c-9f96-4f70d2226f2e@${entra.domain}`, status: 'active', password_hash: null });
    expect((await membership(entra.tenant.id, userId))?.role).toBe('member');

    for (const q of ['getUserByUserName', 'getUserByExternalId', 'getUserByWorkEmail']) {
      const r = await c('GET', shape('entra-id', q, vars));
      expect(r.status, q).toBe(200);
      expect(r.body.totalResults, q).toBe(1);
      expect(r.body.Resources[0].id, q).toBe(userId);
    }
    const miss = await c('GET', shape('entra-id', 'getUserByUserNameNoMatch', vars));
    expect(miss.body.totalResults).toBe(0);
  });

  it('PATCH: multi-valued by filter, single-valued, replace without a path', async () => {
    let r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'patchMultiValued', vars));
    expect(r.status).toBe(200);
    expect(r.body.emails).toEqual([{ primary: true, type: 'work', value: `updatedEmail@${entra.domain}` }]);
    expect(r.body.name.familyName).toBe('updatedFamilyName');
    expect((await account(userId)).email).toBe(`updatedemail@${entra.domain}`);

    r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'patchSingleValued', vars));
    expect(r.status).toBe(200);
    expect(r.body.userName).toBe(`5b50642d-79fc-4410-9e90-4c077cdd1a59@${entra.domain}`);

    r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'patchReplaceWithoutPath', vars));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      displayName: 'Updated Display',
      name: { givenName: 'updatedGivenName', familyName: 'updatedFamilyName' },
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Research', employeeNumber: '1234' },
    });
    expect((await account(userId)).name).toBe('Updated Display');
  });

  it('disables with active "False" and enables with "True" (and the compliant boolean)', async () => {
    let r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'disableUser', vars));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
    expect(await membership(entra.tenant.id, userId)).toBeUndefined();
    expect((await account(userId)).status).toBe('deactivated');
    // Still served (Entra reads it back), filterable by active.
    expect((await c('GET', `/Users?filter=${encodeURIComponent('active eq false')}`)).body.Resources.map((u: any) => u.id)).toContain(userId);

    r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'enableUser', vars));
    expect(r.body.active).toBe(true);
    expect((await membership(entra.tenant.id, userId))?.role).toBe('member');
    expect((await account(userId)).status).toBe('active');

    r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'disableUserCompliant', vars));
    expect(r.body.active).toBe(false);
    r = await c('PATCH', `/Users/${userId}`, shape('entra-id', 'enableUser', vars));
    expect(r.body.active).toBe(true);
  });

  it('groups: create, get without members, find by displayName, add and remove a member, rename, delete', async () => {
    const g = await c('POST', '/Groups', shape('entra-id', 'createGroup', vars));
    expect(g.status).toBe(201);
    groupId = g.body.id;
    vars.group = groupId;
    expect(g.body).toMatchObject({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'displayName', externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159', meta: { resourceType: 'Group' } });

    const noMembers = await c('GET', shape('entra-id', 'getGroupExcludingMembers', vars));
    expect(noMembers.status).toBe(200);
    expect(noMembers.body.members).toBeUndefined();
    const byName = await c('GET', shape('entra-id', 'getGroupByDisplayName', vars));
    expect(byName.body.totalResults).toBe(1);

    expect((await c('PATCH', `/Groups/${groupId}`, shape('entra-id', 'addMember', vars))).status).toBe(200);
    let check = await c('GET', shape('entra-id', 'checkMember', vars));
    expect(check.body.totalResults).toBe(1);
    expect(check.body.Resources[0].members).toBeUndefined();
    expect((await c('GET', `/Users/${userId}`)).body.groups).toEqual([{ value: groupId, display: 'displayName', $ref: `${app.url}/scim/v2/Groups/${groupId}` }]);

    expect((await c('PATCH', `/Groups/${groupId}`, shape('entra-id', 'removeMember', vars))).status).toBe(200);
    check = await c('GET', shape('entra-id', 'checkMember', vars));
    expect(check.body.totalResults).toBe(0);

    const renamed = await c('PATCH', `/Groups/${groupId}`, shape('entra-id', 'renameGroup', vars));
    expect(renamed.body.displayName).toBe('1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName');

    expect((await c('DELETE', `/Groups/${groupId}`)).status).toBe(204);
    expectScimError(await c('GET', `/Groups/${groupId}`), 404);
  });

  it('deletes the user: the membership ends, the data stays, the audit says who and via scim', async () => {
    const r = await c('DELETE', `/Users/${userId}`);
    expect(r.status).toBe(204);
    expectScimError(await c('GET', `/Users/${userId}`), 404);
    expect(await membership(entra.tenant.id, userId)).toBeUndefined();
    expect((await account(userId)).status).toBe('deactivated'); // its only tenant: the seat is freed
    const audit = await one(sql`SELECT actor_type, actor_id, target_id, details FROM audit_log WHERE action = 'scim.user.delete' AND target_id = ${userId}`);
    expect(audit).toMatchObject({ actor_type: 'system', actor_id: `scim:${entra.tokenId}`, target_id: userId });
    expect(JSON.parse(audit.details)).toMatchObject({ via: 'scim', previous_role: 'member', account_deactivated: true });
  });

  it('re-provisioning the deleted user brings the same account back', async () => {
    // The account's address is the one the PATCH above set; the directory sends it again.
    const again = await c('POST', '/Users', { ...shape('entra-id', 'createUser', vars), emails: [{ primary: true, type: 'work', value: `updatedEmail@${entra.domain}` }] });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(userId);
    expect((await account(userId)).status).toBe('active');
    expect((await membership(entra.tenant.id, userId))?.role).toBe('member');
  });
});

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('Okta request sequence', { shuffle: false }, () => {
  let c: ScimClient;
  let vars: Record<string, string>;
  let userId: string;
  let groupId: string;
  beforeAll(() => {
    c = okta.client;
    vars = { domain: okta.domain };
  });

  it('looks the user up, creates it (the password is never stored), reads it, PUTs it', async () => {
    expect((await c('GET', shape('okta', 'getUserByUserName', vars))).body.totalResults).toBe(0);
    const created = await c('POST', '/Users', shape('okta', 'createUser', vars));
    expect(created.status).toBe(201);
    userId = created.body.id;
    vars.user = userId;
    expect(created.body).toMatchObject({ userName: `test.user@${okta.domain}`, displayName: 'Test User', locale: 'en-US', externalId: '00ujl29u0le5T6Aj10h7', active: true, groups: [] });
    expect(created.body.password).toBeUndefined();
    const row = await one(sql`SELECT * FROM scim_users WHERE user_id = ${userId}`);
    expect(JSON.stringify(row)).not.toContain('1mz050nq');
    expect((await account(userId)).password_hash).toBeNull();

    const found = await c('GET', shape('okta', 'getUserByUserName', vars));
    expect(found.body).toMatchObject({ totalResults: 1, startIndex: 1, itemsPerPage: 1 });
    expect((await c('GET', `/Users/${userId}`)).body.id).toBe(userId);

    const put = await c('PUT', `/Users/${userId}`, shape('okta', 'putUser', vars));
    expect(put.status).toBe(200);
    expect(put.body.name).toEqual({ givenName: 'Another', middleName: 'Excited', familyName: 'User' });
    expect(put.body.displayName).toBeUndefined(); // PUT replaces: what is not sent is gone
  });

  it('deactivates and reactivates with replace without a path', async () => {
    let r = await c('PATCH', `/Users/${userId}`, shape('okta', 'deactivateUser', vars));
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
    expect(await membership(okta.tenant.id, userId)).toBeUndefined();
    r = await c('PATCH', `/Users/${userId}`, shape('okta', 'reactivateUser', vars));
    expect(r.body.active).toBe(true);
    expect((await membership(okta.tenant.id, userId))?.role).toBe('member');
  });

  it('groups: create, find, list, rename (id in the value), add and remove a member by filter, delete', async () => {
    const g = await c('POST', '/Groups', shape('okta', 'createGroup', vars));
    expect(g.status).toBe(201);
    groupId = g.body.id;
    vars.group = groupId;
    expect(g.body.members).toEqual([]);
    expect((await c('GET', shape('okta', 'getGroupByDisplayName', vars))).body.Resources.map((x: any) => x.id)).toEqual([groupId]);
    expect((await c('GET', shape('okta', 'listGroups', vars))).body.Resources.map((x: any) => x.id)).toContain(groupId);

    const renamed = await c('PATCH', `/Groups/${groupId}`, shape('okta', 'renameGroup', vars));
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: groupId, displayName: 'Test SCIMv2 renamed' });

    const added = await c('PATCH', `/Groups/${groupId}`, shape('okta', 'addMember', vars));
    expect(added.body.members).toEqual([{ value: userId, display: `test.user@${okta.domain}`, $ref: `${app.url}/scim/v2/Users/${userId}` }]);
    const removed = await c('PATCH', `/Groups/${groupId}`, shape('okta', 'removeMember', vars));
    expect(removed.body.members).toEqual([]);
    expect((await c('DELETE', `/Groups/${groupId}`)).status).toBe(204);
  });
});

describe('generic SCIM client', () => {
  let c: ScimClient;
  beforeAll(() => {
    c = generic.client;
  });

  it('discovery: ServiceProviderConfig, ResourceTypes, Schemas', async () => {
    const spc = await c('GET', '/ServiceProviderConfig');
    expect(spc.status).toBe(200);
    expectScimJson(spc);
    expect(spc.body).toMatchObject({ patch: { supported: true }, filter: { supported: true, maxResults: 200 }, bulk: { supported: false }, etag: { supported: false } });
    const types = await c('GET', '/ResourceTypes');
    expect(types.body.Resources.map((t: any) => t.endpoint)).toEqual(['/Users', '/Groups']);
    expect((await c('GET', '/ResourceTypes/User')).body.schema).toBe('urn:ietf:params:scim:schemas:core:2.0:User');
    const schemas = await c('GET', '/Schemas');
    expect(schemas.body.totalResults).toBe(3);
    const user = await c('GET', '/Schemas/urn:ietf:params:scim:schemas:core:2.0:User');
    expect(user.body.attributes.find((a: any) => a.name === 'userName')).toMatchObject({ required: true, uniqueness: 'server' });
    expectScimError(await c('GET', '/Schemas/urn:nope'), 404);
  });

  it('pagination: startIndex, count, totalResults, stable order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await c('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `p${i}@${generic.domain}`, active: true });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
    const filter = encodeURIComponent(`userName sw "p"`);
    const page = await c('GET', `/Users?filter=${filter}&startIndex=2&count=2`);
    expect(page.body).toMatchObject({ totalResults: 5, startIndex: 2, itemsPerPage: 2 });
    expect(page.body.Resources.map((u: any) => u.id)).toEqual([...ids].sort().slice(1, 3));
    const none = await c('GET', `/Users?filter=${filter}&count=0`);
    expect(none.body).toMatchObject({ totalResults: 5, itemsPerPage: 0, Resources: [] });
    const clamped = await c('GET', `/Users?filter=${filter}&startIndex=-3&count=100000`);
    expect(clamped.body).toMatchObject({ startIndex: 1, itemsPerPage: 5 });
  });

  it('attributes and excludedAttributes', async () => {
    const r = await c('GET', `/Users?filter=${encodeURIComponent(`userName eq "p0@${generic.domain}"`)}&attributes=userName`);
    expect(Object.keys(r.body.Resources[0]).sort()).toEqual(['id', 'schemas', 'userName']);
    const id = r.body.Resources[0].id;
    const ex = await c('GET', `/Users/${id}?excludedAttributes=groups,meta`);
    expect(ex.body.groups).toBeUndefined();
    expect(ex.body.meta).toBeUndefined();
    expect(ex.body.userName).toBe(`p0@${generic.domain}`);
  });

  it('e-mail filters: any case, and LIKE wildcards in the value match only themselves', async () => {
    for (const local of ['a_b', 'axb', 'a%b']) {
      expect((await c('POST', '/Users', { userName: `${local}@${generic.domain}`, emails: [{ value: `${local}@${generic.domain}`, type: 'work' }] })).status).toBe(201);
    }
    const find = async (f: string) => (await c('GET', `/Users?filter=${encodeURIComponent(f)}`)).body.Resources.map((u: any) => u.userName);
    expect(await find(`emails[type eq "work"].value eq "A_B@${generic.domain.toUpperCase()}"`)).toEqual([`a_b@${generic.domain}`]);
    expect(await find(`emails.value eq "a%b@${generic.domain}"`)).toEqual([`a%b@${generic.domain}`]);
    expect(await find(`emails.value eq "a@${generic.domain}"`)).toEqual([]);
  });

  it('plain application/json bodies are accepted too', async () => {
    const r = await c('POST', '/Users', { userName: `json@${generic.domain}` }, { 'content-type': 'application/json' });
    expect(r.status).toBe(201);
  });

  it('errors in the SCIM error schema: bad filter, unknown id, duplicate, bad JSON, bad value, unknown endpoint, too large', async () => {
    expectScimError(await c('GET', `/Users?filter=${encodeURIComponent('userName eq')}`), 400, 'invalidFilter');
    expectScimError(await c('GET', '/Users/usr_doesnotexist'), 404);
    expectScimError(await c('PATCH', '/Users/usr_doesnotexist', { Operations: [{ op: 'replace', path: 'active', value: false }] }), 404);
    expectScimError(await c('POST', '/Users', { userName: `P0@${generic.domain}` }), 409, 'uniqueness');
    expectScimError(await c('POST', '/Users', '{"userName": '), 400, 'invalidSyntax');
    expectScimError(await c('POST', '/Users', { name: { givenName: 'x' } }), 400, 'invalidValue');
    expectScimError(await c('POST', '/Users', { userName: 'no-email-anywhere' }), 400, 'invalidValue');
    const id = (await c('GET', `/Users?filter=${encodeURIComponent(`userName eq "p1@${generic.domain}"`)}`)).body.Resources[0].id;
    expectScimError(await c('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'active', value: 'maybe' }] }), 400, 'invalidValue');
    expectScimError(await c('PATCH', `/Users/${id}`, { Operations: 'nope' }), 400, 'invalidSyntax');
    expectScimError(await c('PATCH', `/Users/${id}`, { Operations: [{ op: 'remove', path: 'emails[type eq' }] }), 400, 'invalidPath');
    expectScimError(await c('GET', '/Nope'), 404);
    expectScimError(await c('POST', '/Users', { userName: `big@${generic.domain}`, title: 'x'.repeat(MAX_BODY) }), 413);
    expectScimError(await c('POST', '/Users', `${'['.repeat(100)}${']'.repeat(100)}`), 400, 'invalidSyntax');
    // Nothing half-done: the refused users do not exist.
    expect((await c('GET', `/Users?filter=${encodeURIComponent(`userName eq "big@${generic.domain}"`)}`)).body.totalResults).toBe(0);
  });
});
});
