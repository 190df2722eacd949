import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, seedTenant, sys } from '../helpers/identity.js';
import { ScriptedUpstream } from './support.js';

/**
 * What the chat stores when a turn is not answered (issue 21, issue 16): a refused or failed
 * send is kept as `not_sent` (never as a normal turn, never sent as history), the refused
 * classification and model are not saved on the conversation, a refused regenerate keeps
 * the previous answer, a retry replaces the not-sent turn; viewers store nothing.
 */
let app: TestApp;
let upstream: ScriptedUpstream;
let t: Awaited<ReturnType<typeof seedTenant>>;
const FAST = { connectMs: 500, firstTokenMs: 2000, idleMs: 2000, totalMs: 5000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };

beforeAll(async () => {
  upstream = await new ScriptedUpstream().start();
  app = await startTestApp({ entitlements: unrestricted });
  t = await seedTenant(app.services, 'turns', ['member', 'viewer']);
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'local-ok', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['m-local'], options: FAST });
  await s.gateway.deployments.create(sys(s), { name: 'cloud', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['m-public'], options: FAST });
  // Nothing listens on port 9 of loopback: every call fails before the first byte.
  await s.gateway.deployments.create(sys(s), { name: 'down', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', boundary: 'local', models: ['m-down'], options: FAST });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

type Session = Awaited<ReturnType<typeof login>>;
async function send(s: Session, id: string, body: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${app.url}/api/chat/conversations/${id}/completions`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}
async function messages(s: Session, id: string) {
  const got = await call(app.url, `/api/chat/conversations/${id}`, { session: s });
  return { conv: got.body, msgs: (got.body.messages as { id: string; role: string; content: string; status: string; error_code: string | null }[]).map((m) => ({ id: m.id, role: m.role, content: m.content, status: m.status, error_code: m.error_code })) };
}

describe('search', () => {
  it('finds conversations by what was said in them (FTS5), only the caller\'s, with operators taken as text', async () => {
    const s = app.services;
    const other = await seedTenant(s, 'turns-other', ['member']);
    const m = await login(app.url, t.users.member!.email);
    const o = await login(app.url, other.users.member!.email);
    const v = await login(app.url, t.users.viewer!.email);
    upstream.reply = 'Bake it at 180 degrees.';
    const mine = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    expect((await send(m, mine, { content: 'My grandmother\'s Pineapple upside-down cake', model: 'm-local' })).status).toBe(200);
    await call(app.url, `/api/chat/conversations/${mine}`, { method: 'PATCH', session: m, body: { title: 'Baking' } });
    const theirs = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: o, body: {} })).body.id as string;
    expect((await send(o, theirs, { content: 'pineapple pizza', model: 'm-local' })).status).toBe(200);

    const find = async (who: Session, q: string) => ((await call(app.url, `/api/chat/conversations?q=${encodeURIComponent(q)}`, { session: who })).body.data as { id: string }[]).map((c) => c.id);
    expect(await find(m, 'pineap')).toEqual([mine]); // prefix of the last word, case-insensitive
    expect(await find(m, 'upside cake')).toEqual([mine]);
    expect(await find(m, 'degrees')).toEqual([mine]); // the answer is searched too
    expect(await find(m, 'baking')).toEqual([mine]); // titles still match
    expect(await find(m, 'pizza')).toEqual([]); // another tenant's words
    expect(await find(o, 'grandmother')).toEqual([]);
    expect(await find(v, 'pineapple')).toEqual([]); // another user of the same tenant
    for (const q of ['"', 'NEAR(', 'cake OR', '*', 'a:b']) {
      const r = await call(app.url, `/api/chat/conversations?q=${encodeURIComponent(q)}`, { session: m });
      expect(r.status, q).toBe(200);
    }
    // Deleted conversations leave the index with their messages.
    await call(app.url, `/api/chat/conversations/${mine}`, { method: 'DELETE', session: m });
    expect(await find(m, 'pineapple')).toEqual([]);
    expect((s.sqlite!.$client.prepare("SELECT count(*) AS n FROM chat_fts WHERE chat_fts MATCH 'grandmother'").get() as { n: number }).n).toBe(0);
  });
});

describe('answer versions', () => {
  it('regenerate keeps earlier answers as superseded versions, never sent as history', async () => {
    const m = await login(app.url, t.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    for (const [i, reply] of ['v1', 'v2', 'v3'].entries()) {
      upstream.reply = reply;
      expect((await send(m, id, i === 0 ? { content: 'question', model: 'm-local' } : { mode: 'regenerate', model: 'm-local' })).status).toBe(200);
    }
    expect(upstream.calls.at(-1)!.messages).toEqual([{ role: 'user', content: 'question' }]);
    upstream.reply = 'next';
    expect((await send(m, id, { content: 'follow-up', model: 'm-local' })).status).toBe(200);
    expect(upstream.calls.at(-1)!.messages).toEqual([
      { role: 'user', content: 'question' },
      { role: 'assistant', content: 'v3' },
      { role: 'user', content: 'follow-up' },
    ]);
    expect((await messages(m, id)).msgs.map((x) => [x.content, x.status])).toEqual([
      ['question', 'complete'],
      ['v1', 'superseded'],
      ['v2', 'superseded'],
      ['v3', 'complete'],
      ['follow-up', 'complete'],
      ['next', 'complete'],
    ]);
  });
});

describe('chat turns that are not answered', () => {
  it('a policy refusal is stored as not sent, without its classification; a retry replaces it', async () => {
    const m = await login(app.url, t.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    upstream.reply = 'fine';
    expect((await send(m, id, { content: 'hello', model: 'm-local', classification: 'internal' })).status).toBe(200);

    const calls = upstream.calls.length;
    const refused = await send(m, id, { content: 'quarterly numbers', model: 'm-public', classification: 'confidential' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.text).error.code).toBe('policy_boundary_denied');
    expect(upstream.calls.length).toBe(calls);
    let got = await messages(m, id);
    expect(got.conv.classification).toBe('internal');
    expect(got.conv.model).toBe('m-local');
    expect(got.msgs.map((x) => [x.role, x.content, x.status, x.error_code])).toEqual([
      ['user', 'hello', 'complete', null],
      ['assistant', 'fine', 'complete', null],
      ['user', 'quarterly numbers', 'not_sent', 'policy_boundary_denied'],
    ]);

    // Refused again: still one not-sent turn (updated), not two.
    const notSent = got.msgs[2]!.id;
    expect((await send(m, id, { content: 'quarterly numbers', model: 'm-public', classification: 'confidential', retry_of: notSent })).status).toBe(403);
    expect((await messages(m, id)).msgs.filter((x) => x.status === 'not_sent')).toHaveLength(1);

    // The next ordinary send does not carry the not-sent turn as history.
    upstream.reply = 'second';
    expect((await send(m, id, { content: 'another question', model: 'm-local', classification: 'internal' })).status).toBe(200);
    expect(upstream.calls.at(-1)!.messages).toEqual([
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'fine' },
      { role: 'user', content: 'another question' },
    ]);

    // Retry to a local model: the not-sent turn becomes a sent one (at the end), answered.
    upstream.reply = 'numbers answered';
    expect((await send(m, id, { content: 'quarterly numbers', model: 'm-local', classification: 'confidential', retry_of: notSent })).status).toBe(200);
    got = await messages(m, id);
    expect(got.conv.classification).toBe('confidential');
    expect(got.msgs.map((x) => [x.role, x.content, x.status])).toEqual([
      ['user', 'hello', 'complete'],
      ['assistant', 'fine', 'complete'],
      ['user', 'another question', 'complete'],
      ['assistant', 'second', 'complete'],
      ['user', 'quarterly numbers', 'complete'],
      ['assistant', 'numbers answered', 'complete'],
    ]);
    // retry_of names only a not-sent user turn of this conversation.
    expect((await send(m, id, { content: 'x', model: 'm-local', retry_of: got.msgs[0]!.id })).status).toBe(409);
  });

  it('a provider failure before the answer is stored as not sent; a refused regenerate keeps the answer', async () => {
    const m = await login(app.url, t.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    const failed = await send(m, id, { content: 'are you there', model: 'm-down' });
    expect(failed.status).toBeGreaterThanOrEqual(500);
    let got = await messages(m, id);
    expect(got.msgs.map((x) => [x.role, x.status])).toEqual([['user', 'not_sent']]);
    expect(got.msgs[0]!.error_code).toMatch(/^provider_/);
    expect(got.conv.model).toBeNull();

    upstream.reply = 'kept answer';
    expect((await send(m, id, { content: 'are you there', model: 'm-local', retry_of: got.msgs[0]!.id })).status).toBe(200);
    expect((await send(m, id, { mode: 'regenerate', model: 'm-public', classification: 'restricted' })).status).toBe(403);
    got = await messages(m, id);
    expect(got.msgs.map((x) => [x.role, x.content, x.status])).toEqual([
      ['user', 'are you there', 'complete'],
      ['assistant', 'kept answer', 'complete'],
    ]);
    expect(got.conv.classification).not.toBe('restricted');
  });

  it('a viewer may not start conversations or store messages', async () => {
    const s = app.services;
    const v = await login(app.url, t.users.viewer!.email);
    const created = await call(app.url, '/api/chat/conversations', { method: 'POST', session: v, body: {} });
    expect(created.status).toBe(403);
    expect((await call(app.url, '/api/chat/models', { session: v })).body.can_chat).toBe(false);

    // A member demoted to viewer keeps reading an old conversation but cannot add to it.
    const m = await login(app.url, t.users.member!.email);
    expect((await call(app.url, '/api/chat/models', { session: m })).body.can_chat).toBe(true);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    await s.identity.users.grant(t.ctx, t.users.member!.id, 'viewer');
    try {
      const m2 = await login(app.url, t.users.member!.email);
      const r = await send(m2, id, { content: 'still here?', model: 'm-local' });
      expect(r.status).toBe(403);
      expect((await messages(m2, id)).msgs).toEqual([]);
    } finally {
      await s.identity.users.grant(t.ctx, t.users.member!.id, 'member');
    }
  });
});
