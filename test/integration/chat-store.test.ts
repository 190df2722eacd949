import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../server/clock.js';
import { createContext, type RequestContext } from '../../server/context.js';
import { AdoptionRepo } from '../../server/db/repos/adoption.js';
import { ChatFeaturesRepo } from '../../server/db/repos/chat-features.js';
import { ChatRepo } from '../../server/db/repos/chat.js';
import { ContentLogRepo, type ContentRow } from '../../server/db/repos/content-log.js';
import { StoredResponsesRepo } from '../../server/db/repos/stored-responses.js';
import type { Store } from '../../server/db/store.js';
import { createTenantStore } from '../../server/db/tenant-store.js';
import { createLogger } from '../../server/logger.js';
import { tzOffset } from '../../server/metering/limits.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The chat vertical's repositories (issue 22) on SQLite and on a real PostgreSQL, with the
 * same expectations: conversations and messages, tenant isolation, search over message
 * contents (FTS5 / tsvector: the same hits for the same data), adoption per day and week in a
 * tenant's time zone (strftime / to_char), prompt versions under concurrent edits, feedback
 * counts, the content log's batched insert / retention, and stored responses.
 */

afterAll(closeAll);

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const HOUR = 3600_000;
const DAY = 24 * HOUR;
const log = createLogger('silent');

function ctxOf(tenant: string): RequestContext {
  return createContext({ requestId: `req_${tenant}`, log, clock: systemClock, tenant: { id: tenant, slug: tenant } });
}

async function seed(s: Store): Promise<void> {
  for (const id of ['ten_a', 'ten_b']) await s.run(s.q.insert(s.t.tenants).values({ id, slug: id, name: id, createdAt: T0, updatedAt: T0 }));
  for (const id of ['usr_1', 'usr_2', 'usr_3', 'usr_4', 'usr_5']) {
    await s.run(s.q.insert(s.t.users).values({ id, email: `${id}@example.com`, name: id, status: id === 'usr_4' ? 'deactivated' : 'active', createdAt: T0, updatedAt: T0 }));
  }
  for (const [tenantId, userId] of [
    ['ten_a', 'usr_1'],
    ['ten_a', 'usr_2'],
    ['ten_a', 'usr_3'],
    ['ten_a', 'usr_4'],
    ['ten_b', 'usr_5'],
  ] as const) {
    await s.run(s.q.insert(s.t.memberships).values({ tenantId, userId, role: 'member', createdAt: T0, updatedAt: T0 }));
  }
}

async function open(dialect: (typeof DIALECTS)[number]) {
  const s = (await dialect.fresh())();
  await seed(s);
  const data = createTenantStore(s);
  return { s, data, chat: new ChatRepo(s, data), features: new ChatFeaturesRepo(s, data), A: ctxOf('ten_a'), B: ctxOf('ten_b') };
}

describe.each(DIALECTS)('chat repositories on $name', (dialect) => {
  it('conversations and messages: CRUD, order, usage added in one statement, cascade, retention; another tenant or user sees nothing', async () => {
    const { s, chat, A, B } = await open(dialect);
    const c1 = await chat.insertConversation(A, { id: 'cnv_1', userId: 'usr_1', title: 'First', createdAt: T0, updatedAt: T0 });
    expect(c1).toMatchObject({ id: 'cnv_1', tenantId: 'ten_a', userId: 'usr_1', promptTokens: 0, assistantId: null });
    await chat.insertConversation(A, { id: 'cnv_2', userId: 'usr_1', title: 'Second 100%_done', createdAt: T0 + 1, updatedAt: T0 + 1000 });
    await chat.insertConversation(A, { id: 'cnv_3', userId: 'usr_2', title: 'Not yours', createdAt: T0, updatedAt: T0 });
    await chat.insertConversation(B, { id: 'cnv_b', userId: 'usr_5', title: 'First', createdAt: T0, updatedAt: T0 });

    expect((await chat.listConversations(A, 'usr_1', { limit: 10 })).map((c) => c.id)).toEqual(['cnv_2', 'cnv_1']);
    expect((await chat.listConversations(A, 'usr_1', { limit: 1 })).map((c) => c.id)).toEqual(['cnv_2']);
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, before: T0 + 1000 })).map((c) => c.id)).toEqual(['cnv_1']);
    // Title search: case-insensitive (ASCII) on both, LIKE wildcards in the query are literal.
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, q: 'FIRST' })).map((c) => c.id)).toEqual(['cnv_1']);
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, q: '100%_' })).map((c) => c.id)).toEqual(['cnv_2']);
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, q: '_' })).map((c) => c.id)).toEqual(['cnv_2']);
    expect(await chat.conversation(A, 'usr_2', 'cnv_1')).toBeUndefined();
    expect(await chat.conversation(B, 'usr_1', 'cnv_1')).toBeUndefined();

    await chat.insertMessage(A, { id: 'msg_2', conversationId: 'cnv_1', role: 'assistant', content: 'hello', parentId: 'msg_1', createdAt: T0 + 5 });
    await chat.insertMessage(A, { id: 'msg_1', conversationId: 'cnv_1', role: 'user', content: 'hi', parentId: null, createdAt: T0 + 5 });
    await chat.insertMessage(A, { id: 'msg_0', conversationId: 'cnv_1', role: 'system', content: 'be brief', parentId: null, createdAt: T0 });
    expect((await chat.messages(A, 'cnv_1')).map((m) => m.id)).toEqual(['msg_0', 'msg_1', 'msg_2']);
    expect(await chat.messages(B, 'cnv_1')).toEqual([]);
    expect(await chat.message(B, 'msg_1')).toBeUndefined();
    expect(await chat.updateMessage(B, 'msg_2', { status: 'superseded' })).toBe(0);
    expect(await chat.updateMessage(A, 'msg_2', { status: 'superseded' })).toBe(1);
    expect((await chat.message(A, 'msg_2'))!.status).toBe('superseded');

    // Two answers' usage at once: each adds in one statement, nothing is lost.
    await Promise.all([chat.addUsage(A, 'usr_1', 'cnv_1', { promptTokens: 10, completionTokens: 20, costMicros: 300 }, T0 + 10), chat.addUsage(A, 'usr_1', 'cnv_1', { promptTokens: 1, completionTokens: 2, costMicros: 3 }, T0 + 11)]);
    expect(await chat.addUsage(A, 'usr_2', 'cnv_1', { promptTokens: 1000, completionTokens: 0, costMicros: 0 }, T0 + 12)).toBe(0);
    expect(await chat.conversation(A, 'usr_1', 'cnv_1')).toMatchObject({ promptTokens: 11, completionTokens: 22, costMicros: 303 });
    expect(await chat.updateConversation(A, 'usr_1', 'cnv_1', { title: 'Renamed', updatedAt: T0 + 20 })).toBe(1);
    expect(await chat.updateConversation(A, 'usr_2', 'cnv_1', { title: 'Stolen' })).toBe(0);

    expect(await chat.deleteMessages(A, [])).toBe(0);
    expect(await chat.deleteMessages(B, ['msg_0'])).toBe(0);
    expect(await chat.deleteMessages(A, ['msg_0'])).toBe(1);

    // Retention: settings are read across tenants (the job), deletes stay in the context's tenant.
    await chat.setRetentionDays(A, 30, T0);
    await chat.setRetentionDays(B, 7, T0);
    await chat.setRetentionDays(B, 5, T0);
    expect(await chat.retentionDays(A)).toBe(30);
    expect((await chat.retentionSettings()).sort((x, y) => x.tenantId.localeCompare(y.tenantId))).toEqual([
      { tenantId: 'ten_a', days: 30 },
      { tenantId: 'ten_b', days: 5 },
    ]);
    await chat.setRetentionDays(B, null, T0);
    expect(await chat.retentionDays(B)).toBeNull();
    expect(await chat.deleteConversationsBefore(A, T0 + 1)).toBe(1); // cnv_3 (cnv_1 was updated at T0+20)
    expect(await chat.deleteConversation(B, 'usr_1', 'cnv_1')).toBe(0);
    expect(await chat.deleteConversation(A, 'usr_1', 'cnv_1')).toBe(1);
    // Messages go with their conversation.
    expect(await s.all(s.q.select().from(s.t.chatMessages))).toEqual([]);
    expect(await chat.deleteAllConversations(A, 'usr_1')).toBe(1);
    expect((await chat.listConversations(B, 'usr_5', { limit: 10 })).map((c) => c.id)).toEqual(['cnv_b']);
  });

  it('a transaction writes a turn whole or not at all', async () => {
    const { chat, A } = await open(dialect);
    await chat.insertConversation(A, { id: 'cnv_1', userId: 'usr_1', title: 'T', createdAt: T0, updatedAt: T0 });
    await expect(
      chat.tx(async () => {
        await chat.insertMessage(A, { id: 'msg_1', conversationId: 'cnv_1', role: 'user', content: 'q', parentId: null, createdAt: T0 });
        await chat.insertMessage(A, { id: 'msg_1', conversationId: 'cnv_1', role: 'user', content: 'duplicate id', parentId: null, createdAt: T0 });
      }),
    ).rejects.toThrow();
    expect(await chat.messages(A, 'cnv_1')).toEqual([]);
  });

  it('search over message contents: every word, the last as a prefix, case-insensitive, operators as plain words, newest first, per tenant', async () => {
    const { chat, A, B } = await open(dialect);
    const conv = async (ctx: RequestContext, id: string, user: string, at: number, ...contents: string[]) => {
      await chat.insertConversation(ctx, { id, userId: user, title: `Conversation ${id}`, createdAt: at, updatedAt: at });
      let i = 0;
      for (const content of contents) await chat.insertMessage(ctx, { id: `msg_${id}_${i}`, conversationId: id, role: i % 2 ? 'assistant' : 'user', content, parentId: null, createdAt: at + i++ });
    };
    await conv(A, 'cnv_a', 'usr_1', T0, 'The quarterly budget review is due Friday.', 'Noted: review on Friday.');
    await conv(A, 'cnv_b', 'usr_1', T0 + 10_000, 'Budgeting tips for small teams?');
    await conv(A, 'cnv_c', 'usr_2', T0 + 20_000, 'Nothing relevant here, or is there?');
    await conv(B, 'cnv_x', 'usr_5', T0 + 30_000, 'budget secret of another tenant');
    const hits = (ctx: RequestContext, q: string) => chat.conversationsMatching(ctx, q);

    expect(await hits(A, 'budget')).toEqual(['cnv_b', 'cnv_a']);
    expect(await hits(A, 'BUDGET')).toEqual(['cnv_b', 'cnv_a']);
    expect(await hits(A, 'budg')).toEqual(['cnv_b', 'cnv_a']);
    expect(await hits(A, 'quarterly budget')).toEqual(['cnv_a']);
    expect(await hits(A, 'budget quarterly')).toEqual(['cnv_a']);
    expect(await hits(A, 'budget friday')).toEqual(['cnv_a']);
    expect(await hits(A, 'budgeting')).toEqual(['cnv_b']);
    // Earlier words are whole words, not prefixes.
    expect(await hits(A, 'budg tips')).toEqual([]);
    expect(await hits(A, 'tips budget')).toEqual(['cnv_b']);
    // Search syntax of either engine is plain text: quotes, OR/AND/NOT, -, *, :, &, |.
    expect(await hits(A, '"budget" OR secret')).toEqual([]);
    expect(await hits(A, 'relevant or')).toEqual(['cnv_c']);
    expect(await hits(A, 'tips or quarterly budget')).toEqual([]);
    expect(await hits(A, 'tips and budgeting')).toEqual([]);
    expect(await hits(A, 'is there or')).toEqual(['cnv_c']);
    expect(await hits(A, 'NOT budget')).toEqual([]);
    expect(await hits(A, '-budget tips')).toEqual([]);
    expect(await hits(A, 'tips -budget')).toEqual(['cnv_b']);
    expect(await hits(A, 'budget* & | ! : ( )')).toEqual(['cnv_b', 'cnv_a']);
    expect(await hits(A, '!!!')).toEqual([]);
    expect(await hits(A, 'secret')).toEqual([]);
    expect(await hits(B, 'budget')).toEqual(['cnv_x']);
    expect(await hits(createContext({ requestId: 'r', log, clock: systemClock }), 'budget')).toEqual([]);

    // The user's list: titles or contents, only the caller's conversations.
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, q: 'friday' })).map((c) => c.id)).toEqual(['cnv_a']);
    expect((await chat.listConversations(A, 'usr_2', { limit: 10, q: 'budget' })).map((c) => c.id)).toEqual([]);
    expect((await chat.listConversations(A, 'usr_1', { limit: 10, q: 'cnv_b' })).map((c) => c.id)).toEqual(['cnv_b']);

    // Edits and deletes are followed by the index.
    await chat.updateMessage(A, 'msg_cnv_b_0', { content: 'Gardening tips' });
    expect(await hits(A, 'budget')).toEqual(['cnv_a']);
    expect(await hits(A, 'gardening')).toEqual(['cnv_b']);
    await chat.deleteMessages(A, ['msg_cnv_a_0']);
    expect(await hits(A, 'budget')).toEqual([]);
    expect(await hits(A, 'review')).toEqual(['cnv_a']);
  });

  it('a message far larger than a tsvector holds (1 MB) is stored and found by its start', async () => {
    const { chat, A } = await open(dialect);
    await chat.insertConversation(A, { id: 'cnv_big', userId: 'usr_1', title: 'Big', createdAt: T0, updatedAt: T0 });
    // ~1.6 MB of distinct words: without the indexed prefix PostgreSQL refuses the row.
    const words = Array.from({ length: 200_000 }, (_, i) => `w${i.toString(36)}x`);
    const content = `zebrafinch ${words.join(' ')}`;
    expect(content.length).toBeGreaterThan(1_048_576);
    await chat.insertMessage(A, { id: 'msg_big', conversationId: 'cnv_big', role: 'user', content, parentId: null, createdAt: T0 });
    expect((await chat.message(A, 'msg_big'))!.content.length).toBe(content.length);
    expect(await chat.conversationsMatching(A, 'zebrafinch')).toEqual(['cnv_big']);
    expect(await chat.conversationsMatching(A, 'w1x')).toEqual(['cnv_big']);
  }, 60_000);

  it('adoption: distinct people per day and per week in the tenant time zone, the same numbers on both dialects', async () => {
    const { s, A, B } = await open(dialect);
    const adoption = new AdoptionRepo(s);
    const at = (iso: string) => Date.parse(iso);
    const rollup = (tenantId: string, hour: string, userId: string, requests = 1, model = 'm') =>
      s.run(s.q.insert(s.t.usageRollups).values({ tenantId, hour: at(hour), userId, model, requests }));
    // 2026-12-07 is a Monday.
    await rollup('ten_a', '2026-12-06T20:00:00Z', 'usr_1');
    await rollup('ten_a', '2026-12-06T05:00:00Z', 'usr_2');
    await rollup('ten_a', '2026-12-07T09:00:00Z', 'usr_1');
    await rollup('ten_a', '2026-12-07T09:00:00Z', 'usr_1', 3, 'other-model');
    await rollup('ten_a', '2026-12-07T19:00:00Z', 'usr_3');
    await rollup('ten_a', '2026-12-07T10:00:00Z', ''); // a key without an owner: nobody
    await rollup('ten_a', '2026-12-07T11:00:00Z', 'usr_4', 0); // no requests (errors only would still count; zero rows do not)
    await rollup('ten_b', '2026-12-07T11:00:00Z', 'usr_5');
    await rollup('ten_a', '2026-11-20T11:00:00Z', 'usr_4'); // before the period
    const from = at('2026-11-29T00:00:00Z');
    const to = at('2026-12-10T00:00:00Z');

    const view = async (tz: string) => {
      const off = tzOffset(to, tz);
      return {
        days: await adoption.activeByDay(A, from, to, off),
        weeks: await adoption.activeByWeek(A, from, to, off),
      };
    };
    expect(await view('UTC')).toEqual({
      days: [
        { day: '2026-12-06', users: 2 },
        { day: '2026-12-07', users: 2 },
      ],
      weeks: [
        { week: '2026-11-30', users: 2 },
        { week: '2026-12-07', users: 2 },
      ],
    });
    // +05:30: the Sunday 20:00 UTC call is Monday 01:30 there, Monday 19:00 UTC is Tuesday.
    expect(await view('Asia/Kolkata')).toEqual({
      days: [
        { day: '2026-12-06', users: 1 },
        { day: '2026-12-07', users: 1 },
        { day: '2026-12-08', users: 1 },
      ],
      weeks: [
        { week: '2026-11-30', users: 1 },
        { week: '2026-12-07', users: 2 },
      ],
    });
    // -08:00: Sunday 05:00 UTC is Saturday evening there.
    expect(await view('America/Los_Angeles')).toEqual({
      days: [
        { day: '2026-12-05', users: 1 },
        { day: '2026-12-06', users: 1 },
        { day: '2026-12-07', users: 2 },
      ],
      weeks: [
        { week: '2026-11-30', users: 2 },
        { week: '2026-12-07', users: 2 },
      ],
    });
    expect(await adoption.activeIn(A, from, to)).toBe(3);
    expect(await adoption.activeIn(A, at('2026-12-07T00:00:00Z'), to)).toBe(2);
    expect(await adoption.activeIn(B, from, to)).toBe(1);
    expect(await adoption.members(A)).toBe(3); // usr_4 is deactivated
    expect(await adoption.members(B)).toBe(1);
  });

  it('adoption from usage records (rolled up per UTC hour by the database) agrees on both dialects, in UTC and in the tenant zone', async () => {
    const { s, A } = await open(dialect);
    const adoption = new AdoptionRepo(s);
    let n = 0;
    const call = (iso: string, userId: string | null, status = 'ok') =>
      s.run(s.q.insert(s.t.usageRecords).values({ id: `use_${n++}`, tenantId: 'ten_a', requestId: `req_${n}`, userId, keyId: 'key_1', endpoint: 'chat', model: 'm', latencyMs: 5, status, httpStatus: status === 'ok' ? 200 : 502, createdAt: Date.parse(iso) }));
    await call('2026-12-06T18:45:00Z', 'usr_1');
    await call('2026-12-06T18:15:00Z', 'usr_2');
    await call('2026-12-07T02:10:00Z', 'usr_1');
    await call('2026-12-07T03:00:00Z', 'usr_3', 'provider_error'); // a failed call is still use
    await call('2026-12-07T04:00:00Z', null); // a key without an owner
    const from = Date.parse('2026-11-29T00:00:00Z');
    const to = Date.parse('2026-12-10T00:00:00Z');
    const days = async (tz: string) => adoption.activeByDay(A, from, to, tzOffset(to, tz));
    expect(await days('UTC')).toEqual([
      { day: '2026-12-06', users: 2 },
      { day: '2026-12-07', users: 2 },
    ]);
    expect(await days('America/Los_Angeles')).toEqual([{ day: '2026-12-06', users: 3 }]);
    expect(await adoption.activeByWeek(A, from, to, tzOffset(to, 'America/Los_Angeles'))).toEqual([{ week: '2026-11-30', users: 3 }]);
    expect(await adoption.activeIn(A, from, to)).toBe(3);
  });

  it('prompt versions: two edits at once get consecutive versions; feedback: one per user and message, counts per model', async () => {
    const { features, chat, A, B } = await open(dialect);
    const write = (ctx: RequestContext, versionId: string, create: boolean, title = versionId) => features.writeVersion(ctx, { promptId: 'prm_1', versionId, title, body: 'b', authorId: 'usr_1', now: T0, create });
    expect(await write(A, 'prv_1', true, 'Alpha')).toBe(1);
    const both = await Promise.all([write(A, 'prv_2', false), write(A, 'prv_3', false)]);
    expect(both.sort()).toEqual([2, 3]);
    expect(await write(B, 'prv_x', false)).toBe(0); // another tenant's prompt: not found, nothing written
    expect((await features.versions(A, 'prm_1')).map((v) => v.version)).toEqual([3, 2, 1]);
    expect(await features.versions(B, 'prm_1')).toEqual([]);
    const list = await features.prompts(A);
    expect(list).toHaveLength(1);
    expect(list[0]!.prompt.version).toBe(3);
    expect(list[0]!.current.version).toBe(3);
    expect(await features.prompts(B)).toEqual([]);
    expect(await features.deletePrompt(B, 'prm_1')).toBe(0);
    expect(await features.deletePrompt(A, 'prm_1')).toBe(1);
    expect(await features.versions(A, 'prm_1')).toEqual([]);

    await chat.insertConversation(A, { id: 'cnv_1', userId: 'usr_1', title: 'T', createdAt: T0, updatedAt: T0 });
    for (const id of ['msg_1', 'msg_2']) await chat.insertMessage(A, { id, conversationId: 'cnv_1', role: 'assistant', content: 'a', parentId: null, createdAt: T0 });
    const rate = (id: string, messageId: string, userId: string, model: string, rating: 'up' | 'down', comment: string | null, at: number) =>
      features.upsertFeedback(A, { id, messageId, userId, model, rating, comment, createdAt: at, updatedAt: at });
    await rate('fbk_1', 'msg_1', 'usr_1', 'm1', 'down', 'wrong', T0);
    await rate('fbk_2', 'msg_1', 'usr_1', 'm1', 'up', 'better now', T0 + 2); // replaces fbk_1
    await rate('fbk_3', 'msg_1', 'usr_2', 'm1', 'down', '', T0 + 3);
    await rate('fbk_4', 'msg_2', 'usr_1', 'm2', 'down', null, T0 + 4);
    expect((await features.feedbackOf(A, 'usr_1', ['msg_1', 'msg_2'])).map((f) => [f.messageId, f.rating]).sort()).toEqual([
      ['msg_1', 'up'],
      ['msg_2', 'down'],
    ]);
    expect(await features.feedbackOf(B, 'usr_1', ['msg_1'])).toEqual([]);
    expect(await features.feedbackCounts(A, T0)).toEqual([
      { model: 'm1', up: 1, down: 1 },
      { model: 'm2', up: 0, down: 1 },
    ]);
    expect(await features.feedbackCounts(A, T0 + 4)).toHaveLength(1);
    expect(await features.feedbackCounts(B, 0)).toEqual([]);
    expect((await features.recentComments(A, { since: 0, limit: 10 })).map((f) => f.comment)).toEqual(['better now']);
    expect(await features.recentComments(A, { since: 0, limit: 10, model: 'm2' })).toEqual([]);
    expect(await features.deleteFeedback(A, 'usr_2', 'msg_1')).toBe(1);
  });

  it('content log: one multi-row insert for several tenants, reads per tenant and unexpired, shorter retention, purge in slices', async () => {
    const { s, data, A, B } = await open(dialect);
    const repo = new ContentLogRepo(s, data);
    const row = (i: number, tenantId: string, createdAt: number, keepMs: number): ContentRow => ({
      id: `cnt_${String(i).padStart(5, '0')}`,
      tenantId,
      requestId: `req_${i}`,
      usageId: i % 2 ? `use_${i}` : null,
      endpoint: 'chat',
      content: `sealed-${i}`,
      createdAt,
      expiresAt: createdAt + keepMs,
    });
    await repo.insertMany([row(1, 'ten_a', T0, 30 * DAY), row(2, 'ten_a', T0 + 1, 30 * DAY), row(3, 'ten_b', T0, 30 * DAY)]);
    await repo.insertMany([]);
    expect(await repo.byRequest(A, 'req_1', T0)).toMatchObject([{ id: 'cnt_00001', tenantId: 'ten_a', usageId: 'use_1', content: 'sealed-1', createdAt: T0, expiresAt: T0 + 30 * DAY }]);
    expect(await repo.byRequest(B, 'req_1', T0)).toEqual([]);
    expect(await repo.byRequest(A, 'req_1', T0 + 30 * DAY)).toEqual([]); // expired
    const page = await repo.page(A, { limit: 10, now: T0 });
    expect(page.map((r) => r.id)).toEqual(['cnt_00002', 'cnt_00001']);
    expect(page[0]).not.toHaveProperty('content');
    expect((await repo.page(A, { limit: 10, now: T0, beforeId: 'cnt_00002' })).map((r) => r.id)).toEqual(['cnt_00001']);

    // Retention shortened to 7 days: this tenant's rows only, to created_at + 7 days.
    expect(await repo.shortenRetention(A, 7 * DAY)).toBe(2);
    expect(await repo.shortenRetention(A, 10 * DAY)).toBe(0); // a longer one does not lengthen
    expect((await repo.byRequest(A, 'req_2', T0))[0]!.expiresAt).toBe(T0 + 1 + 7 * DAY);
    expect((await repo.byRequest(B, 'req_3', T0))[0]!.expiresAt).toBe(T0 + 30 * DAY);

    // More expired rows than one purge slice (500), across tenants.
    const old = Array.from({ length: 620 }, (_, i) => row(100 + i, i % 2 ? 'ten_a' : 'ten_b', T0 - 40 * DAY, DAY));
    for (let i = 0; i < old.length; i += 100) await repo.insertMany(old.slice(i, i + 100));
    expect(await repo.purgeExpired(T0)).toBe(620);
    expect(await repo.purgeExpired(T0 + 8 * DAY)).toBe(2);
    expect((await repo.page(B, { limit: 10, now: T0 })).map((r) => r.id)).toEqual(['cnt_00003']);
  });

  it('stored responses: per tenant and owner, removed by their owner, purged after expiry', async () => {
    const { s, data, A, B } = await open(dialect);
    const repo = new StoredResponsesRepo(s, data);
    await repo.insert(A, { id: 'resp_1', ownerId: 'key_1', model: 'm', content: 'sealed', createdAt: T0, expiresAt: T0 + DAY });
    await repo.insert(B, { id: 'resp_2', ownerId: 'key_1', model: 'm', content: 'sealed-b', createdAt: T0, expiresAt: T0 + 2 * DAY });
    expect(await repo.get(A, 'resp_1', 'key_1')).toEqual({ id: 'resp_1', tenantId: 'ten_a', ownerId: 'key_1', model: 'm', content: 'sealed', createdAt: T0, expiresAt: T0 + DAY });
    expect(await repo.get(A, 'resp_1', 'key_2')).toBeUndefined();
    expect(await repo.get(B, 'resp_1', 'key_1')).toBeUndefined();
    expect(await repo.remove(B, 'resp_1', 'key_1')).toBe(0);
    expect(await repo.remove(A, 'resp_1', 'key_2')).toBe(0);
    expect(await repo.purgeExpired(T0 + DAY + 1)).toBe(1);
    expect(await repo.get(A, 'resp_1', 'key_1')).toBeUndefined();
    expect(await repo.remove(B, 'resp_2', 'key_1')).toBe(1);
  });
});
