import { sql } from 'drizzle-orm';
import { rawRows, rawRun } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { call } from '../helpers/identity.js';
import { scimTenant } from '../fixtures/scim/setup.js';

/**
 * Directory groups → tenant roles: with rules set (`enclave scim group-roles set`), a
 * provisioned user's role is the highest of their groups' rules, else member, following
 * every group change; owners are never changed; without rules SCIM changes no role.
 */
let app: TestApp;
let T: Awaited<ReturnType<typeof scimTenant>>;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted });
  T = await scimTenant(app, 'zeta');
  cliEnv = { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent' };
});
afterAll(async () => {
  await app.close();
});

const role = async (userId: string) => ((await rawRows(app.services.store, sql`SELECT role FROM memberships WHERE tenant_id = ${T.tenant.id} AND user_id = ${userId}`))[0] as { role: string } | undefined)?.role;
const user = async (local: string) => (await T.client('POST', '/Users', { userName: `${local}@${T.domain}` })).body.id as string;
const patchGroup = (id: string, ops: unknown[]) => T.client('PATCH', `/Groups/${id}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: ops });

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('SCIM group → role rules', { shuffle: false }, () => {
  it('without rules, groups change no role', async () => {
    const u = await user('una');
    await T.client('POST', '/Groups', { displayName: 'Enclave Admins', members: [{ value: u }] });
    expect(await role(u)).toBe('member');
  });

  it('set by the CLI: members of a mapped group get its role, the highest wins, leaving demotes, owners stay', async () => {
    const bad = await runCli(['scim', 'group-roles', 'set', '--tenant', 'zeta', '--map', 'Enclave Admins=owner'], cliEnv);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/admin, member, viewer/);
    await runCliOk(['scim', 'group-roles', 'set', '--tenant', 'zeta', '--map', 'enclave admins=admin', '--map', 'Readers=viewer'], cliEnv);
    expect(JSON.parse((await runCliOk(['scim', 'group-roles', 'show', '--tenant', 'zeta', '--json'], cliEnv)).stdout)).toEqual([
      { group: 'enclave admins', role: 'admin' },
      { group: 'Readers', role: 'viewer' },
    ]);
    // Applied at once to the existing group's members (case-insensitive names).
    const una = (await T.client('GET', `/Users?filter=${encodeURIComponent(`userName eq "una@${T.domain}"`)}`)).body.Resources[0].id;
    expect(await role(una)).toBe('admin');

    const vic = await user('vic');
    const readers = (await T.client('POST', '/Groups', { displayName: 'Readers', members: [{ value: vic }, { value: una }] })).body.id;
    expect(await role(vic)).toBe('viewer');
    expect(await role(una)).toBe('admin'); // the highest of admin and viewer
    const admins = (await T.client('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Enclave Admins"')}`)).body.Resources[0].id;
    await patchGroup(admins, [{ op: 'add', path: 'members', value: [{ value: vic }] }]);
    expect(await role(vic)).toBe('admin');
    // The role is real: a key of vic's acts as admin.
    const { secret } = await app.services.identity.keys.create(T.ctx, { name: 'vic', ownerUserId: vic });
    expect((await call(app.url, '/admin/api/me', { key: secret })).body.role).toBe('admin');
    await patchGroup(admins, [{ op: 'remove', path: `members[value eq "${vic}"]` }]);
    expect(await role(vic)).toBe('viewer');
    expect((await call(app.url, '/admin/api/me', { key: secret })).body.role).toBe('viewer');
    await T.client('DELETE', `/Groups/${readers}`);
    expect(await role(vic)).toBe('member');
  });

  it('a deprovisioned user keeps the role their groups map to for reactivation', async () => {
    const wes = await user('wes');
    const admins = (await T.client('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Enclave Admins"')}`)).body.Resources[0].id;
    await T.client('PATCH', `/Users/${wes}`, { Operations: [{ op: 'replace', path: 'active', value: false }] });
    await patchGroup(admins, [{ op: 'add', path: 'members', value: [{ value: wes }] }]);
    expect(await role(wes)).toBeUndefined(); // no membership while deprovisioned
    await T.client('PATCH', `/Users/${wes}`, { Operations: [{ op: 'replace', path: 'active', value: true }] });
    expect(await role(wes)).toBe('admin');
  });

  it('an owner of the tenant in a mapped group stays owner; clearing the rules changes nothing', async () => {
    const ownerId = T.users.owner!.id;
    // The seeded owner's address is in the seed domain, not the verified one: give it one of ours.
    await rawRun(app.services.store, sql`UPDATE users SET email = ${`owner@${T.domain}`} WHERE id = ${ownerId}`);
    const r = await T.client('POST', '/Users', { userName: `owner@${T.domain}` });
    expect(r.status).toBe(201);
    expect(r.body.id).toBe(ownerId);
    const readers = (await T.client('POST', '/Groups', { displayName: 'Readers', members: [{ value: ownerId }] })).body.id;
    expect(await role(ownerId)).toBe('owner');
    await runCliOk(['scim', 'group-roles', 'set', '--tenant', 'zeta', '--clear'], cliEnv);
    const una = (await T.client('GET', `/Users?filter=${encodeURIComponent(`userName eq "una@${T.domain}"`)}`)).body.Resources[0].id;
    await patchGroup(readers, [{ op: 'add', path: 'members', value: [{ value: una }] }]);
    expect(await role(una)).toBe('admin'); // unchanged: no rules
    const audit = { n: Number((await rawRows(app.services.store, sql`SELECT count(*) AS n FROM audit_log WHERE action = 'scim.user.role'`))[0]!.n) };
    expect(audit.n).toBeGreaterThanOrEqual(5);
  });
});
