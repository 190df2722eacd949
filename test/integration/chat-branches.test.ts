import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, seedTenant, sys, type Session } from '../helpers/identity.js';
import { ScriptedUpstream } from '../e2e/support.js';

/**
 * Editing any user turn branches the conversation (issue 21): the old turn and everything
 * after it stay reachable; the model is sent the path of the branch it answers; a send can
 * continue any branch (parent_id); ids of other conversations are not found.
 */
let app: TestApp;
let upstream: ScriptedUpstream;
let t: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  upstream = await new ScriptedUpstream().start();
  app = await startTestApp({ entitlements: unrestricted });
  t = await seedTenant(app.services, 'branches', ['member', 'viewer']);
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['m-local'], options: { maxRetries: 0 } });
  await s.gateway.deployments.create(sys(s), { name: 'cloud', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['m-public'], options: { maxRetries: 0 } });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

type Msg = { id: string; role: string; content: string; status: string; parent_id: string | null };
async function turn(s: Session, id: string, body: Record<string, unknown>, reply = 'ok'): Promise<number> {
  upstream.reply = reply;
  const res = await fetch(`${app.url}/api/chat/conversations/${id}/completions`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm-local', ...body }) });
  await res.text();
  return res.status;
}
const messages = async (s: Session, id: string) => (await call(app.url, `/api/chat/conversations/${id}`, { session: s })).body.messages as Msg[];
const sent = () => (upstream.calls.at(-1)!.messages as { content: string }[]).map((m) => m.content);

describe('branches', () => {
  it('editing an earlier turn keeps the old branch; each branch is answered with its own history', async () => {
    const m = await login(app.url, t.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    for (const [q, a] of [['q1', 'a1'], ['q2', 'a2'], ['q3', 'a3']]) expect(await turn(m, id, { content: q }, a)).toBe(200);
    let ms = await messages(m, id);
    const q2 = ms.find((x) => x.content === 'q2')!;
    const a3 = ms.find((x) => x.content === 'a3')!;

    // Edit q2 (not the last turn): the model sees q1, a1 and the new q2 only.
    expect(await turn(m, id, { mode: 'edit', edit_of: q2.id, content: 'q2 edited' }, 'b2')).toBe(200);
    expect(sent()).toEqual(['q1', 'a1', 'q2 edited']);
    ms = await messages(m, id);
    const edited = ms.find((x) => x.content === 'q2 edited')!;
    expect(edited.parent_id).toBe(q2.parent_id); // a sibling of q2: a branch
    expect(ms.filter((x) => ['q2', 'a2', 'q3', 'a3'].includes(x.content)).map((x) => x.status)).toEqual(['complete', 'complete', 'complete', 'complete']);

    // A plain send continues the newest branch.
    expect(await turn(m, id, { content: 'q3 on the new branch' }, 'b3')).toBe(200);
    expect(sent()).toEqual(['q1', 'a1', 'q2 edited', 'b2', 'q3 on the new branch']);
    // A send after a3 continues the old branch, with its own history.
    expect(await turn(m, id, { content: 'q4 on the old branch', parent_id: a3.id }, 'a4')).toBe(200);
    expect(sent()).toEqual(['q1', 'a1', 'q2', 'a2', 'q3', 'a3', 'q4 on the old branch']);
    // Regenerating a turn of the old branch answers it with its own history too.
    expect(await turn(m, id, { mode: 'regenerate', parent_id: q2.id }, 'a2 again')).toBe(200);
    expect(sent()).toEqual(['q1', 'a1', 'q2']);
    ms = await messages(m, id);
    expect(ms.filter((x) => x.parent_id === q2.id).map((x) => [x.content, x.status])).toEqual([
      ['a2', 'superseded'],
      ['a2 again', 'complete'],
    ]);
  });

  it('a refused edit stores nothing; ids of other conversations or unsent turns are refused', async () => {
    const m = await login(app.url, t.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    const other = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    expect(await turn(m, id, { content: 'hello' })).toBe(200);
    expect(await turn(m, other, { content: 'elsewhere' })).toBe(200);
    const [hello] = await messages(m, id);
    const [elsewhere] = await messages(m, other);
    const before = (await messages(m, id)).length;
    expect(await turn(m, id, { mode: 'edit', edit_of: hello!.id, content: 'secret', model: 'm-public', classification: 'confidential' })).toBe(403);
    expect((await messages(m, id)).length).toBe(before);

    expect(await turn(m, id, { mode: 'edit', edit_of: elsewhere!.id, content: 'x' })).toBe(404);
    expect(await turn(m, id, { content: 'x', parent_id: elsewhere!.id })).toBe(404);
    expect(await turn(m, id, { mode: 'regenerate', parent_id: elsewhere!.id })).toBe(404);
    // A refused send is a not_sent turn: it is retried, not edited.
    expect(await turn(m, id, { content: 'confidential numbers', model: 'm-public', classification: 'confidential' })).toBe(403);
    const notSent = (await messages(m, id)).find((x) => x.status === 'not_sent')!;
    expect(await turn(m, id, { mode: 'edit', edit_of: notSent.id, content: 'x' })).toBe(409);
    // Another user's conversation does not exist.
    const v = await login(app.url, t.users.viewer!.email);
    expect(await turn(v, id, { content: 'x' })).toBe(403);
  });
});
