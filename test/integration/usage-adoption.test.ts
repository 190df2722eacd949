import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, seedTenant, sys, type Session } from '../helpers/identity.js';
import { ScriptedUpstream } from '../e2e/support.js';

/**
 * Usage analytics' adoption view (issue 21): distinct people with AI calls per day and week,
 * and their share of the tenant's members, from the usage rollups; other tenants' calls never
 * count; admins only.
 */
let app: TestApp;
let upstream: ScriptedUpstream;
let A: Awaited<ReturnType<typeof seedTenant>>;
let B: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  upstream = await new ScriptedUpstream().start();
  app = await startTestApp({ entitlements: unrestricted });
  A = await seedTenant(app.services, 'adopt-a', ['owner', 'admin', 'member', 'viewer']);
  B = await seedTenant(app.services, 'adopt-b', ['owner', 'member']);
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['m-local'], options: { maxRetries: 0 } });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

async function chat(s: Session): Promise<void> {
  const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: s, body: {} })).body.id as string;
  const res = await fetch(`${app.url}/api/chat/conversations/${id}/completions`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify({ content: 'hi', model: 'm-local' }) });
  expect(res.status).toBe(200);
  await res.text();
}

describe('adoption', () => {
  it('counts people with calls per day and week and their share of the members; tenant-scoped; admins only', async () => {
    const member = await login(app.url, A.users.member!.email);
    const admin = await login(app.url, A.users.admin!.email);
    await chat(member);
    await chat(member);
    await chat(admin);
    await chat(await login(app.url, B.users.member!.email));

    const r = await call(app.url, `/admin/api/tenants/${A.tenant.id}/adoption?days=14`, { session: admin });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ object: 'adoption', members: 4, active_users: 2, share: 0.5 });
    expect(r.body.days).toHaveLength(14);
    expect(r.body.days.at(-1)).toMatchObject({ active_users: 2, share: 0.5 });
    expect(r.body.days.slice(0, -1).every((d: { active_users: number }) => d.active_users === 0)).toBe(true);
    expect(r.body.weeks.at(-1)).toMatchObject({ active_users: 2 });
    expect(r.body.weeks.length).toBeGreaterThanOrEqual(2);

    const b = await call(app.url, `/admin/api/tenants/${B.tenant.id}/adoption`, { session: await login(app.url, B.users.owner!.email) });
    expect(b.body).toMatchObject({ members: 2, active_users: 1, share: 0.5 });
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/adoption`, { session: admin })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/adoption`, { session: member })).status).toBe(403);
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/adoption?days=0`, { session: admin })).body.error.param).toBe('days');
  });
});
