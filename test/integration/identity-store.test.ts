import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Entitlements } from '../../server/access/entitlements.js';
import { unrestricted } from '../../server/access/entitlements.js';
import { systemClock } from '../../server/clock.js';
import { createContext, type RequestContext } from '../../server/context.js';
import { AuthorityRepo } from '../../server/db/repos/authority.js';
import { IdentityRepo } from '../../server/db/repos/identity.js';
import type { Store } from '../../server/db/store.js';
import { createTenantStore } from '../../server/db/tenant-store.js';
import { AppError } from '../../server/errors.js';
import { createIdentity, systemContext, type Identity } from '../../server/identity/index.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The identity repositories and services on the async Store (issue 22), run on SQLite and on a
 * real PostgreSQL: the main queries, tenant isolation, and the sequences that were atomic for
 * free in the synchronous code and now hold through a transaction (last owner, invitation
 * acceptance, seat/tenant growth, the audit chain from two connections).
 */

afterAll(closeAll);

const log = pino({ level: 'silent' });
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

function identityOver(store: Store, entitlements: Entitlements = unrestricted): Identity {
  return createIdentity({ store, tenantStore: createTenantStore(store), clock: systemClock, log, entitlements: () => entitlements, passwordLogN: 10 });
}

function ctxIn(tenant: { id: string; slug: string }): RequestContext {
  return { ...systemContext(log, systemClock, 'test'), tenant: { id: tenant.id, slug: tenant.slug } };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof AppError) return e.code;
    throw e;
  }
}

describe.each(DIALECTS)('identity store on $name', (dialect) => {
  it('users, tenants and memberships: the main queries read back what was written', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const t = await id.tenants.create(sys, { slug: 'acme', name: 'Acme' });
    expect(await id.tenants.resolve('acme')).toMatchObject({ id: t.id, name: 'Acme', status: 'active' });
    expect(await id.tenants.resolve(t.id)).toMatchObject({ slug: 'acme' });
    const u = await id.users.create(sys, { email: 'Ann@Example.com', name: 'Ann' });
    expect(u.email).toBe('ann@example.com');
    expect(await id.users.byEmail('ANN@example.com')).toMatchObject({ id: u.id, platformAdmin: false });
    const ctx = ctxIn(t);
    await id.users.grant(ctx, u.id, 'admin');
    expect(await id.sessions.memberships(u.id)).toEqual([{ tenantId: t.id, slug: 'acme', name: 'Acme', status: 'active', role: 'admin' }]);
    const members = await id.users.members(ctx, { limit: 10 });
    expect(members.data.map((m) => [m.email, m.role])).toEqual([['ann@example.com', 'admin']]);
    expect(await id.users.countPlatformAdmins()).toBe(0);
    const page1 = await id.tenants.list(sys, { limit: 1 });
    expect(page1.data.map((x) => x.slug)).toEqual(['acme']);
    const suspended = await id.tenants.setStatus(sys, t.id, 'suspended');
    expect(suspended.status).toBe('suspended');
  });

  it('sessions: created, authenticated by token, ended; login throttling counts', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const u = await id.users.create(sys, { email: 'bob@example.com', password: 'a long enough password 1' });
    const { token, session } = await id.sessions.createSession(sys, u, null);
    const auth = await id.sessions.authenticate(token);
    expect(auth.ok && auth.auth.user.id).toBe(u.id);
    expect(await id.sessions.activeCount()).toBe(1);
    await id.sessions.logout(sys, session.id);
    expect((await id.sessions.authenticate(token)).ok).toBe(false);
    const bad = createContext({ requestId: 'r', log, clock: systemClock });
    bad.client = { ip: '192.0.2.1' };
    for (let i = 0; i < 5; i++) expect(await codeOf(id.sessions.login(bad, { email: 'bob@example.com', password: 'wrong' }))).toBe('auth_invalid_credentials');
    expect(await codeOf(id.sessions.login(bad, { email: 'bob@example.com', password: 'a long enough password 1' }))).toBe('auth_locked');
    await id.sessions.unlock(sys, 'bob@example.com');
    expect((await id.sessions.login(bad, { email: 'bob@example.com', password: 'a long enough password 1' })).auth.user.id).toBe(u.id);
  });

  it('API keys: created, found by prefix (cache miss), listed per tenant, revoked; other tenants see none of them', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const a = ctxIn(await id.tenants.create(sys, { slug: 'a' }));
    const b = ctxIn(await id.tenants.create(sys, { slug: 'b' }));
    const { key, secret } = await id.keys.create(a, { name: 'ci' });
    expect((await id.keys.verify(secret)).tenant.id).toBe(a.tenant!.id);
    expect((await id.keys.list(a, { limit: 10 })).data.map((k) => k.id)).toEqual([key.id]);
    expect((await id.keys.list(b, { limit: 10 })).data).toEqual([]);
    expect(await codeOf(id.keys.get(b, key.id))).toBe('not_found');
    expect(await id.keys.tenantOf(key.id)).toEqual({ id: a.tenant!.id, slug: 'a' });
    const repo = new IdentityRepo(s, createTenantStore(s));
    expect(await repo.countActiveKeys(Date.now())).toBe(1);
    await repo.touchKeys([{ id: key.id, at: T0, ip: '192.0.2.9' }]);
    await repo.touchKeys([{ id: key.id, at: T0 - 1000, ip: 'older' }]); // never moves back
    expect(await repo.key(a, key.id)).toMatchObject({ lastUsedAt: T0, lastUsedIp: '192.0.2.9' });
    expect(await repo.key(b, key.id)).toBeUndefined();
    await id.keys.revoke(a, key.id);
    expect(await codeOf(id.keys.verify(secret))).toBe('auth_key_revoked');
  });

  it('the last two owners removed at once: exactly one removal is refused (last_owner)', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const ctx = ctxIn(await id.tenants.create(sys, { slug: 'own' }));
    const x = await id.users.create(sys, { email: 'x@example.com' });
    const y = await id.users.create(sys, { email: 'y@example.com' });
    await id.users.grant(ctx, x.id, 'owner');
    await id.users.grant(ctx, y.id, 'owner');
    const codes = await Promise.all([codeOf(id.users.removeMember(ctx, x.id)), codeOf(id.users.removeMember(ctx, y.id))]);
    expect(codes.sort()).toEqual(['last_owner', 'ok']);
    expect(await new IdentityRepo(s, createTenantStore(s)).countOwners(ctx)).toBe(1);
    // Demotions race the same way.
    const z = await id.users.create(sys, { email: 'z@example.com' });
    await id.users.grant(ctx, z.id, 'owner');
    const remaining = (await id.users.members(ctx, { limit: 10 })).data.filter((m) => m.role === 'owner').map((m) => m.id);
    const demotions = await Promise.all(remaining.map((uid) => codeOf(id.users.grant(ctx, uid, 'member'))));
    expect(demotions.sort()).toEqual(['last_owner', 'ok']);
  });

  it('an invitation accepted twice at once joins once; a declined one cannot be accepted', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const ctx = ctxIn(await id.tenants.create(sys, { slug: 'inv' }));
    const u = await id.users.create(sys, { email: 'inv@example.com' });
    const { invitation } = await id.invitations.invite(ctx, { email: 'inv@example.com', role: 'member' });
    const asUser: RequestContext = { ...createContext({ requestId: 'r', log, clock: systemClock }), principal: { kind: 'user', id: u.id, userId: u.id, platformAdmin: false } };
    const codes = await Promise.all([codeOf(id.invitations.accept(asUser, invitation.id)), codeOf(id.invitations.accept(asUser, invitation.id))]);
    expect(codes.sort()).toEqual(['invitation_invalid', 'ok']);
    const accepted = (await id.audit.list({ action: 'invitation.accept' })).length;
    expect(accepted).toBe(1);
    // Cross-tenant lookups by the invitee's address; tenant-scoped ones see only their tenant.
    const authority = new AuthorityRepo(s, createTenantStore(s));
    expect(await authority.pendingForEmail('inv@example.com', Date.now())).toEqual([]);
    const other = ctxIn(await id.tenants.create(sys, { slug: 'other' }));
    expect(await authority.invitation(other, invitation.id)).toBeUndefined();
    expect(await authority.invitation(ctx, invitation.id)).toMatchObject({ status: 'accepted', acceptedUserId: u.id });
  });

  it('a verified domain belongs to one tenant, also when two tenants verify it at once', async () => {
    const s = (await dialect.fresh())();
    const id = identityOver(s);
    const sys = systemContext(log, systemClock, 'test');
    const a = ctxIn(await id.tenants.create(sys, { slug: 'da' }));
    const b = ctxIn(await id.tenants.create(sys, { slug: 'db' }));
    await id.domains.add(a, 'example.org');
    await id.domains.add(b, 'example.org');
    const codes = await Promise.all([codeOf(id.domains.verify(a, 'example.org')), codeOf(id.domains.verify(b, 'example.org'))]);
    expect(codes.sort()).toEqual(['domain_verified_elsewhere', 'ok']);
    expect([a.tenant!.id, b.tenant!.id]).toContain(await id.domains.ownerOf('someone@example.org'));
  });

  it('growth limits hold under concurrent creation: seats and tenants', async () => {
    const s = (await dialect.fresh())();
    const limited: Entitlements = {
      ...unrestricted,
      checkGrowth: (what, current) => (current >= 2 ? new AppError(403, `${what === 'seats' ? 'seat' : what}_limit`, `${what} full`) : undefined),
    };
    const id = identityOver(s, limited);
    const sys = systemContext(log, systemClock, 'test');
    const users = await Promise.all(['a', 'b', 'c', 'd'].map((n) => codeOf(id.users.create(sys, { email: `${n}@example.com` }))));
    expect(users.filter((c) => c === 'ok')).toHaveLength(2);
    const tenants = await Promise.all(['t1', 't2', 't3'].map((slug) => codeOf(id.tenants.create(sys, { slug }))));
    expect(tenants.filter((c) => c === 'ok')).toHaveLength(2);
    // The refusals are audited (outside the rolled-back transaction).
    expect((await id.audit.list({ action: 'user.create', outcome: 'denied' })).length).toBe(2);
    expect((await id.audit.list({ action: 'tenant.create', outcome: 'denied' })).length).toBe(1);
  });

  it('audit appends from two connections at once form one chain; list, count and tenant filters read it back', async () => {
    const open = await dialect.fresh();
    const first = open();
    // SQLite: two flows of one process share its connection (two connections in one process
    // would block each other's thread in busy_timeout); PostgreSQL: two pools.
    const second = dialect.name === 'SQLite' ? first : open();
    const [x, y] = [identityOver(first), identityOver(second)];
    const sys = systemContext(log, systemClock, 'test');
    await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? x : y).audit.record({ ...sys, tenant: { id: 'ten_a', slug: 'a' } }, { action: `race.${i}` })));
    expect(await x.audit.verify()).toMatchObject({ ok: true, checked: 40 });
    expect(await y.audit.count()).toBe(40);
    expect(await y.audit.count({ tenantId: 'ten_a' })).toBe(40);
    expect(await y.audit.count({ tenantId: 'ten_b' })).toBe(0);
    const newest = await x.audit.list({ limit: 2 });
    expect(newest.map((e) => e.seq)).toEqual([40, 39]);
    const all: number[] = [];
    for await (const e of y.audit.iterate({})) all.push(e.seq);
    expect(all).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });
});
