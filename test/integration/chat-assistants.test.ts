import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, seedTenant, sys, type Session } from '../helpers/identity.js';
import { ScriptedUpstream } from '../e2e/support.js';

/**
 * Issue 21's chat features on the server: assistants (presets: shared per tenant, private
 * per user; the gateway still decides model and classification), feedback on answers (one
 * per user per message, per model for admins), the prompt library (versions with author).
 * Real app, real SQLite, a scripted OpenAI-compatible upstream.
 */
let app: TestApp;
let upstream: ScriptedUpstream;
let A: Awaited<ReturnType<typeof seedTenant>>;
let B: Awaited<ReturnType<typeof seedTenant>>;
const FAST = { connectMs: 500, firstTokenMs: 2000, idleMs: 2000, totalMs: 5000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };

beforeAll(async () => {
  upstream = await new ScriptedUpstream().start();
  app = await startTestApp({ entitlements: unrestricted });
  A = await seedTenant(app.services, 'asst-a', ['owner', 'admin', 'member', 'viewer']);
  B = await seedTenant(app.services, 'asst-b', ['admin', 'member']);
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['m-local'], options: FAST });
  await s.gateway.deployments.create(sys(s), { name: 'cloud', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['m-public'], options: FAST });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

async function send(s: Session, id: string, body: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${app.url}/api/chat/conversations/${id}/completions`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}
const newConv = async (s: Session, body: Record<string, unknown> = {}) => call(app.url, '/api/chat/conversations', { method: 'POST', session: s, body });
const conv = async (s: Session, id: string) => (await call(app.url, `/api/chat/conversations/${id}`, { session: s })).body as { assistant_id: string | null; messages: { id: string; role: string; content: string; model: string | null; feedback?: { rating: string; comment: string | null } | null }[] };

describe('assistants', () => {
  it('shared by admins, private per user, tenant-scoped; instructions go first; their classification only makes a call stricter', async () => {
    const admin = await login(app.url, A.users.admin!.email);
    const member = await login(app.url, A.users.member!.email);
    const viewer = await login(app.url, A.users.viewer!.email);
    const base = `/admin/api/tenants/${A.tenant.id}/assistants`;
    const shared = await call(app.url, base, { method: 'POST', session: admin, body: { name: 'Contracts', instructions: 'You review contracts. Answer in bullet points.', model: 'm-local', classification: 'confidential', starters: ['Summarise this clause', '  '] } });
    expect(shared.status).toBe(201);
    expect(shared.body).toMatchObject({ object: 'assistant', scope: 'tenant', name: 'Contracts', model: 'm-local', classification: 'confidential', starters: ['Summarise this clause'] });
    const sid = shared.body.id as string;

    // Members use shared ones but may not manage them (neither path).
    expect((await call(app.url, base, { method: 'POST', session: member, body: { name: 'x', instructions: 'y' } })).status).toBe(403);
    expect((await call(app.url, `${base}/${sid}`, { method: 'PATCH', session: member, body: { name: 'pwned' } })).status).toBe(403);
    expect((await call(app.url, `/api/chat/assistants/${sid}`, { method: 'PATCH', session: member, body: { name: 'pwned' } })).status).toBe(404);
    expect((await call(app.url, `/api/chat/assistants/${sid}`, { method: 'DELETE', session: member })).status).toBe(404);

    // A private one: only its owner sees, uses, edits it.
    const mine = await call(app.url, '/api/chat/assistants', { method: 'POST', session: member, body: { name: 'Poet', instructions: 'Answer in rhyme.' } });
    expect(mine.status).toBe(201);
    expect(mine.body.scope).toBe('private');
    // Only this test's assistants: the file's other tests add shared ones to the same tenant and
    // may run first (--sequence.shuffle).
    const ours = (data: { name: string }[]) => data.map((a) => a.name).filter((n) => n === 'Contracts' || n === 'Poet');
    const names = async (s: Session) => ours((await call(app.url, '/api/chat/assistants', { session: s })).body.data);
    expect(await names(member)).toEqual(['Contracts', 'Poet']);
    expect(await names(viewer)).toEqual(['Contracts']);
    expect(ours((await call(app.url, base, { session: admin })).body.data)).toEqual(['Contracts']);
    const owner = await login(app.url, A.users.owner!.email);
    expect((await newConv(owner, { assistant_id: mine.body.id })).status).toBe(404);
    expect((await call(app.url, `/api/chat/assistants/${mine.body.id}`, { method: 'PATCH', session: owner, body: { name: 'x' } })).status).toBe(404);
    expect((await call(app.url, `/api/chat/assistants/${mine.body.id}`, { method: 'PATCH', session: member, body: { name: 'Poet 2' } })).body.name).toBe('Poet 2');

    // Bad input: a clear 400 naming the field.
    const bad = await call(app.url, '/api/chat/assistants', { method: 'POST', session: member, body: { name: ' ', instructions: 'x' } });
    expect([bad.status, bad.body.error.param]).toEqual([400, 'name']);
    const unknownModel = await call(app.url, '/api/chat/assistants', { method: 'POST', session: member, body: { name: 'x', instructions: 'x', model: 'not-a-model' } });
    expect([unknownModel.status, unknownModel.body.error.param]).toEqual([400, 'model']);

    // A conversation with the assistant: its instructions are the first message, sent first.
    const c = await newConv(member, { assistant_id: sid });
    expect(c.status).toBe(201);
    expect(c.body.assistant_id).toBe(sid);
    upstream.reply = 'Noted.';
    const before = upstream.calls.length;
    expect((await send(member, c.body.id, { content: 'Clause 4 says…', model: 'm-local', classification: 'confidential' })).status).toBe(200);
    expect(upstream.calls[before]!.messages).toEqual([
      { role: 'system', content: 'You review contracts. Answer in bullet points.' },
      { role: 'user', content: 'Clause 4 says…' },
    ]);
    // Asking for a lower classification than the assistant's is raised to it: a public model is refused, nothing sent.
    const lowered = await send(member, c.body.id, { content: 'Send this to the cloud', model: 'm-public', classification: 'public' });
    expect(lowered.status).toBe(403);
    expect(JSON.parse(lowered.text).error.code).toBe('policy_boundary_denied');
    expect(upstream.calls.length).toBe(before + 1);
  });

  it('a preset cannot lift the tenant floor or use a model the user may not use', async () => {
    const admin = await login(app.url, A.users.admin!.email);
    const member = await login(app.url, A.users.member!.email);
    const cloud = await call(app.url, `/admin/api/tenants/${A.tenant.id}/assistants`, { method: 'POST', session: admin, body: { name: 'Cloud helper', instructions: 'Be brief.', model: 'm-public', classification: 'public' } });
    expect(cloud.status).toBe(201);
    // Later the tenant's default (the floor of every call) becomes confidential: the preset's public does not undercut it.
    const owner = await login(app.url, A.users.owner!.email);
    const setDefault = async (c: string) => expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}`, { method: 'PATCH', session: owner, body: { default_classification: c } })).status).toBe(200);
    await setDefault('confidential');
    try {
      const c = await newConv(member, { assistant_id: cloud.body.id });
      const before = upstream.calls.length;
      const r = await send(member, c.body.id, { content: 'hello', model: 'm-public', classification: 'public' });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.text).error.code).toBe('policy_boundary_denied');
      expect(upstream.calls.length).toBe(before);
      // Nor may anyone now save a preset with that model: it is not offered to them.
      const again = await call(app.url, `/admin/api/tenants/${A.tenant.id}/assistants/${cloud.body.id}`, { method: 'PATCH', session: admin, body: { model: 'm-public' } });
      expect([again.status, again.body.error?.param]).toEqual([400, 'model']);
    } finally {
      await setDefault('internal');
    }
  });

  it("another tenant's assistants do not exist for B", async () => {
    const aAdmin = await login(app.url, A.users.admin!.email);
    const bAdmin = await login(app.url, B.users.admin!.email);
    const bMember = await login(app.url, B.users.member!.email);
    const a = await call(app.url, `/admin/api/tenants/${A.tenant.id}/assistants`, { method: 'POST', session: aAdmin, body: { name: 'A only', instructions: 'secret instructions of A' } });
    const id = a.body.id as string;
    expect((await newConv(bMember, { assistant_id: id })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/assistants/${id}`, { method: 'PATCH', session: bAdmin, body: { name: 'pwned' } })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/assistants/${id}`, { method: 'DELETE', session: bAdmin })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/assistants`, { session: bAdmin })).status).toBe(404);
    expect(JSON.stringify((await call(app.url, '/api/chat/assistants', { session: bMember })).body)).not.toContain('secret instructions');
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/assistants`, { session: aAdmin })).body.data.some((x: { name: string }) => x.name === 'A only')).toBe(true);
  });
});

describe('feedback', () => {
  it('one rating per user per answer, changeable; only on own answers; admins see it per model', async () => {
    const member = await login(app.url, A.users.member!.email);
    const viewer = await login(app.url, A.users.viewer!.email);
    const bMember = await login(app.url, B.users.member!.email);
    const admin = await login(app.url, A.users.admin!.email);
    const c = (await newConv(member)).body.id as string;
    upstream.reply = 'Paris.';
    expect((await send(member, c, { content: 'Capital of France?', model: 'm-local' })).status).toBe(200);
    const [question, answer] = (await conv(member, c)).messages;
    const fb = (id: string, s: Session, body?: unknown) => call(app.url, `/api/chat/messages/${id}/feedback`, body === undefined ? { method: 'DELETE', session: s } : { method: 'PUT', session: s, body });

    expect((await fb(answer!.id, member, { rating: 'up' })).status).toBe(200);
    expect((await conv(member, c)).messages[1]!.feedback).toMatchObject({ rating: 'up', comment: null });
    expect((await fb(answer!.id, member, { rating: 'down', comment: 'Too short, no source.' })).status).toBe(200);
    expect((await conv(member, c)).messages[1]!.feedback).toMatchObject({ rating: 'down', comment: 'Too short, no source.' });
    expect(Number(((await rawRows(app.services.store, sql`SELECT count(*) AS n FROM message_feedback WHERE message_id = ${answer!.id}`)) as { n: number | string }[])[0]!.n)).toBe(1);

    expect((await fb(question!.id, member, { rating: 'up' })).status).toBe(400); // not an answer
    expect((await fb(answer!.id, member, { rating: 'meh' })).status).toBe(400);
    expect((await fb(answer!.id, viewer, { rating: 'up' })).status).toBe(404); // another user's conversation
    expect((await fb(answer!.id, bMember, { rating: 'up' })).status).toBe(404); // another tenant

    const summary = await call(app.url, `/admin/api/tenants/${A.tenant.id}/feedback`, { session: admin });
    expect(summary.status).toBe(200);
    const local = (summary.body.models as { model: string; up: number; down: number; recent_comments: { comment: string }[] }[]).find((m) => m.model === 'm-local');
    expect(local).toMatchObject({ up: 0, down: 1, recent_comments: [{ rating: 'down', comment: 'Too short, no source.' }] });
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/feedback`, { session: member })).status).toBe(403);
    expect((await call(app.url, `/admin/api/tenants/${A.tenant.id}/feedback`, { session: await login(app.url, B.users.admin!.email) })).status).toBe(404);

    expect((await fb(answer!.id, member)).status).toBe(200);
    expect((await conv(member, c)).messages[1]!.feedback).toBeNull();
  });
});

describe('prompt library', () => {
  it('admins write versions (who and when); members read the current one; other tenants see nothing', async () => {
    const admin = await login(app.url, A.users.admin!.email);
    const owner = await login(app.url, A.users.owner!.email);
    const member = await login(app.url, A.users.member!.email);
    const bAdmin = await login(app.url, B.users.admin!.email);
    const base = `/admin/api/tenants/${A.tenant.id}/prompts`;
    const p = await call(app.url, base, { method: 'POST', session: admin, body: { title: 'Meeting summary', body: 'Summarise the meeting notes below in five bullets.' } });
    expect(p.status).toBe(201);
    expect(p.body).toMatchObject({ version: 1, title: 'Meeting summary', updated_by: { id: A.users.admin!.id } });
    const edited = await call(app.url, `${base}/${p.body.id}`, { method: 'PUT', session: owner, body: { title: 'Meeting summary', body: 'Summarise the notes below in five bullets, with owners and dates.' } });
    expect(edited.body).toMatchObject({ version: 2, updated_by: { id: A.users.owner!.id } });
    const hist = (await call(app.url, `${base}/${p.body.id}`, { session: admin })).body;
    expect(hist.versions.map((v: { version: number; author: { id: string } }) => [v.version, v.author.id])).toEqual([
      [2, A.users.owner!.id],
      [1, A.users.admin!.id],
    ]);
    expect(hist.versions[1].body).toBe('Summarise the meeting notes below in five bullets.');

    const forChat = (await call(app.url, '/api/chat/prompts', { session: member })).body.data as { id: string; version: number; body: string }[];
    expect(forChat.find((x) => x.id === p.body.id)).toMatchObject({ version: 2, body: 'Summarise the notes below in five bullets, with owners and dates.' });
    expect((await call(app.url, base, { method: 'POST', session: member, body: { title: 'x', body: 'y' } })).status).toBe(403);
    expect((await call(app.url, `${base}/${p.body.id}`, { method: 'PUT', session: member, body: { title: 'x', body: 'y' } })).status).toBe(403);
    expect((await call(app.url, base, { method: 'POST', session: admin, body: { title: 'x', body: '  ' } })).body.error.param).toBe('body');

    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/prompts/${p.body.id}`, { session: bAdmin })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/prompts/${p.body.id}`, { method: 'PUT', session: bAdmin, body: { title: 'x', body: 'pwned' } })).status).toBe(404);
    expect((await call(app.url, `/admin/api/tenants/${B.tenant.id}/prompts/${p.body.id}`, { method: 'DELETE', session: bAdmin })).status).toBe(404);
    expect((await call(app.url, '/api/chat/prompts', { session: await login(app.url, B.users.member!.email) })).body.data).toEqual([]);
    expect((await call(app.url, `${base}/${p.body.id}`, { method: 'DELETE', session: admin })).status).toBe(200);
    expect((await call(app.url, `${base}/${p.body.id}`, { session: admin })).status).toBe(404);
  });
});
