import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { workerSchedules } from '../../server/jobs/runtime.js';
import { ChatService } from '../../server/chat/service.js';
import { ChatRepo } from '../../server/db/repos/chat.js';
import { ScriptedUpstream } from './support.js';

/**
 * The UI-facing chat API without a browser: ownership and tenancy (another user's or
 * tenant's conversation is 404), session-only with CSRF, search, the stored answer and
 * usage record with workflow `chat`, edit and regenerate.
 */
let app: TestApp;
let upstream: ScriptedUpstream;
let a: Awaited<ReturnType<typeof seedTenant>>;
let b: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  upstream = await new ScriptedUpstream().start();
  app = await startTestApp({ entitlements: unrestricted });
  a = await seedTenant(app.services, 'alpha', ['owner', 'member']);
  b = await seedTenant(app.services, 'beta', ['member']);
  await app.services.gateway.deployments.create(sys(app.services), { name: 'scripted', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['m-local'] });
});
afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

async function sse(url: string, cookie: string, csrf: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

describe('chat API', () => {
  it('keeps conversations per user and tenant, needs a session and CSRF, stores the answer and meters it as workflow chat', async () => {
    const m = await login(app.url, a.users.member!.email);
    const o = await login(app.url, a.users.owner!.email);
    const other = await login(app.url, b.users.member!.email);

    const models = await call(app.url, '/api/chat/models', { session: m });
    expect(models.status).toBe(200);
    expect(models.body.data).toEqual([{ id: 'm-local', boundaries: ['local'], vision: false }]);
    expect(models.body.policy.restricted).toEqual(['local']);

    const noCsrf = await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, noCsrf: true, body: {} });
    expect(noCsrf.status).toBe(403);
    const created = await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: { model: 'm-local' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    upstream.reply = 'A secret-free answer.';
    const r = await sse(`${app.url}/api/chat/conversations/${id}/completions`, m.cookie, m.csrf, { mode: 'send', content: 'PRIVATE-PROMPT-TEXT about apples', model: 'm-local', classification: 'restricted' });
    expect(r.status).toBe(200);
    expect(r.text).toContain('event: enclave');
    expect(r.text.trim().endsWith('data: [DONE]')).toBe(true);

    const got = await call(app.url, `/api/chat/conversations/${id}`, { session: m });
    expect(got.body.title).toBe('PRIVATE-PROMPT-TEXT about apples');
    expect(got.body.messages.map((x: { role: string; content: string }) => [x.role, x.content])).toEqual([
      ['user', 'PRIVATE-PROMPT-TEXT about apples'],
      ['assistant', 'A secret-free answer.'],
    ]);
    expect(got.body.usage.completion_tokens).toBeGreaterThan(0);

    // Search by title.
    expect((await call(app.url, '/api/chat/conversations?q=apples', { session: m })).body.data).toHaveLength(1);
    expect((await call(app.url, '/api/chat/conversations?q=pears', { session: m })).body.data).toHaveLength(0);
    expect((await call(app.url, '/api/chat/conversations?q=%25', { session: m })).body.data).toHaveLength(0);

    // Another user of the same tenant, and a user of another tenant, see nothing.
    for (const s of [o, other]) {
      expect((await call(app.url, `/api/chat/conversations/${id}`, { session: s })).status).toBe(404);
      expect((await call(app.url, `/api/chat/conversations/${id}`, { method: 'DELETE', session: s })).status).toBe(404);
      expect((await call(app.url, '/api/chat/conversations', { session: s })).body.data).toHaveLength(0);
      expect((await sse(`${app.url}/api/chat/conversations/${id}/completions`, s.cookie, s.csrf, { content: 'x', model: 'm-local' })).status).toBe(404);
    }

    // API keys are for /v1, not the chat UI's API.
    const { secret } = await app.services.identity.keys.create(a.ctx, { name: 'k', ownerUserId: a.users.member!.id });
    expect((await call(app.url, '/api/chat/conversations', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);

    // Metered through the gateway with workflow `chat`.
    await app.services.gateway.usage.flush();
    const usage = (await app.services.tenantStore.usageRecords.list(a.ctx)) as { workflow: string | null; userId: string | null; classification: string | null }[];
    expect(usage.some((u) => u.workflow === 'chat' && u.userId === a.users.member!.id && u.classification === 'restricted')).toBe(true);

    // Rename, then delete all.
    expect((await call(app.url, `/api/chat/conversations/${id}`, { method: 'PATCH', session: m, body: { title: 'Renamed' } })).body.title).toBe('Renamed');
    expect((await call(app.url, '/api/chat/conversations', { method: 'DELETE', session: m })).body.deleted).toBe(1);
    expect((await call(app.url, `/api/chat/conversations/${id}`, { session: m })).status).toBe(404);
  });

  it('stores the metered cost of each answer: the usage record\'s cost (priced by metering), per message and per conversation', async () => {
    const s = app.services;
    await s.identity.users.create(sys(s), { email: 'root@chat.test', password: PASSWORD, platformAdmin: true });
    const root = await login(app.url, 'root@chat.test');
    const m = await login(app.url, a.users.member!.email);
    // Prices are the platform's: a member may not set one; the platform admin does (metering admin API).
    const body = { model: 'm-local', input_micros_per_mtok: 2_000_000, output_micros_per_mtok: 8_000_000, request_micros: 1_000 };
    expect((await call(app.url, '/admin/api/prices', { method: 'PUT', session: m, body })).status).toBe(403);
    const price = await call(app.url, '/admin/api/prices', { method: 'PUT', session: root, body });
    expect(price.status).toBe(200);

    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    const turn = async (content: string) => {
      upstream.reply = `Priced answer to ${content}.`;
      const res = await fetch(`${app.url}/api/chat/conversations/${id}/completions`, {
        method: 'POST',
        headers: { cookie: m.cookie, 'x-csrf-token': m.csrf, 'content-type': 'application/json' },
        body: JSON.stringify({ content, model: 'm-local' }),
      });
      const text = await res.text();
      const block = text.split('\n\n').find((b) => b.startsWith('event: enclave'))!;
      const event = JSON.parse(block.slice(block.indexOf('data:') + 5)) as { request_id: string; message: { usage: { prompt_tokens: number; completion_tokens: number; cost_micros: number } }; conversation: { usage: { cost_micros: number } } };
      expect(event.request_id).toBe(res.headers.get('x-request-id'));
      // The usage writer batches; the test flushes to read the record (the chat itself did not need to).
      await s.gateway.usage.flush();
      const rec = ((await s.tenantStore.usageRecords.list(a.ctx)) as { requestId: string; workflow: string | null; costMicros: number; priceVersion: number | null; promptTokens: number; completionTokens: number }[]).find((u) => u.requestId === event.request_id)!;
      expect(rec.workflow).toBe('chat');
      expect(rec.priceVersion).toBe(price.body.version);
      return { event, rec };
    };

    const one = await turn('one');
    expect(one.rec.costMicros).toBeGreaterThan(0);
    expect(one.event.message.usage).toEqual({ prompt_tokens: one.rec.promptTokens, completion_tokens: one.rec.completionTokens, cost_micros: one.rec.costMicros });
    const two = await turn('two');
    expect(two.event.message.usage.cost_micros).toBe(two.rec.costMicros);

    // Stored: each answer carries its record's cost; the conversation sums them.
    const got = await call(app.url, `/api/chat/conversations/${id}`, { session: m });
    const answers = (got.body.messages as { role: string; usage: { cost_micros: number } }[]).filter((x) => x.role === 'assistant');
    expect(answers.map((x) => x.usage.cost_micros)).toEqual([one.rec.costMicros, two.rec.costMicros]);
    expect(got.body.usage.cost_micros).toBe(one.rec.costMicros + two.rec.costMicros);
    expect(got.body.usage.prompt_tokens + got.body.usage.completion_tokens).toBe(one.rec.promptTokens + one.rec.completionTokens + two.rec.promptTokens + two.rec.completionTokens);
    expect(two.event.conversation.usage.cost_micros).toBe(got.body.usage.cost_micros);
  });

  it('edit branches from the last user message (the old turn stays) and regenerate keeps the last answer as a version', async () => {
    const m = await login(app.url, a.users.member!.email);
    const id = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    upstream.reply = 'one';
    await sse(`${app.url}/api/chat/conversations/${id}/completions`, m.cookie, m.csrf, { content: 'first', model: 'm-local' });
    upstream.reply = 'two';
    await sse(`${app.url}/api/chat/conversations/${id}/completions`, m.cookie, m.csrf, { mode: 'edit', content: 'first, edited', model: 'm-local' });
    upstream.reply = 'three';
    await sse(`${app.url}/api/chat/conversations/${id}/completions`, m.cookie, m.csrf, { mode: 'regenerate', model: 'm-local' });
    const got = await call(app.url, `/api/chat/conversations/${id}`, { session: m });
    // The edit is a sibling of the old question (a branch: both stay); the regenerate kept 'two' as an earlier version.
    const ms = got.body.messages as { id: string; content: string; status: string; parent_id: string | null }[];
    const byContent = (c: string) => ms.find((x) => x.content === c)!;
    expect(ms.map((x) => [x.content, x.status])).toEqual([
      ['first', 'complete'],
      ['one', 'complete'],
      ['first, edited', 'complete'],
      ['two', 'superseded'],
      ['three', 'complete'],
    ]);
    expect(ms.map((x) => x.parent_id)).toEqual([null, byContent('first').id, null, byContent('first, edited').id, byContent('first, edited').id]);
    expect(upstream.calls.at(-1)!.messages).toEqual([{ role: 'user', content: 'first, edited' }]);
    const empty = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: {} })).body.id as string;
    expect((await sse(`${app.url}/api/chat/conversations/${empty}/completions`, m.cookie, m.csrf, { mode: 'regenerate', model: 'm-local' })).status).toBe(409);
  });

  it('retention: admins set days per tenant, members may not, and the job deletes old conversations of that tenant only', async () => {
    const o = await login(app.url, a.users.owner!.email);
    const m = await login(app.url, a.users.member!.email);
    const other = await login(app.url, b.users.member!.email);
    expect((await call(app.url, '/api/chat/retention', { method: 'PUT', session: m, body: { days: 1 } })).status).toBe(403);
    expect((await call(app.url, '/api/chat/retention', { method: 'PUT', session: o, body: { days: 0 } })).status).toBe(400);
    const put = await call(app.url, '/api/chat/retention', { method: 'PUT', session: o, body: { days: 30 } });
    expect(put.body.days).toBe(30);
    expect((await call(app.url, '/api/chat/retention', { session: o })).body.days).toBe(30);
    const mine = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: m, body: { title: 'old' } })).body.id as string;
    const theirs = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: other, body: { title: 'kept' } })).body.id as string;
    const chat = new ChatService(new ChatRepo(app.services.store, app.services.tenantStore));
    const ctx = sys(app.services);
    expect(await chat.purgeExpired(ctx, Date.now() + 29 * 86_400_000)).toBe(0);
    expect(await chat.purgeExpired(ctx, Date.now() + 31 * 86_400_000)).toBeGreaterThanOrEqual(1);
    expect((await call(app.url, `/api/chat/conversations/${mine}`, { session: m })).status).toBe(404);
    expect((await call(app.url, `/api/chat/conversations/${theirs}`, { session: other })).status).toBe(200);
    // The worker's daily retention schedule runs the same purge (nothing else is old enough now).
    const retention = workerSchedules(app.services).find((x) => x.id === 'retention')!;
    expect(await retention.run({} as never, {} as never)).toMatchObject({ chatConversations: 0 });
    const audit = await app.services.identity.audit.list({ limit: 50, action: 'chat.retention.update' });
    expect(audit.length).toBe(1);
  });
});
