import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../server/clock.js';
import { createContext } from '../../server/context.js';
import { JobsRepo } from '../../server/db/repos/jobs.js';
import { MeteringRepo } from '../../server/db/repos/metering.js';
import { UsageRepo, type UsageRow } from '../../server/db/repos/usage.js';
import type { Store } from '../../server/db/store.js';
import { createTenantStore } from '../../server/db/tenant-store.js';
import { monthById, tzOffset } from '../../server/metering/limits.js';
import { UsageWriter } from '../../server/metering/usage.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The metering repositories' contract (server/db/repos/metering.ts, usage.ts and the batched
 * usage writer), run on SQLite and on a real PostgreSQL with the same expectations: usage
 * written in multi-row batches and rolled up per hour by each dialect's trigger, reports and
 * ledger sums (day buckets in a non-UTC tenant time zone: strftime vs to_char), limits,
 * notifications once per threshold when writers race, prices, plans and tenant isolation;
 * and the batch repository (server/db/repos/jobs.ts): files, batches and lines per tenant,
 * a line's result, usage record and counters in one transaction, counters under concurrency.
 */

afterAll(closeAll);

const log = pino({ level: 'silent' });
const HOUR = 3_600_000;
// 2026-03-31 22:30 UTC = 2026-04-01 00:30 in Europe/Berlin (CEST, +2 h): the day and the month differ by zone.
const T0 = Date.UTC(2026, 2, 31, 22, 30);

async function addTenant(s: Store, id: string): Promise<void> {
  await s.run(s.q.insert(s.t.tenants).values({ id, slug: id, name: id, createdAt: T0, updatedAt: T0 }));
}

let seq = 0;
function usage(tenantId: string, o: Partial<UsageRow> = {}): UsageRow {
  seq++;
  return {
    id: `use_${seq}`,
    tenantId,
    requestId: `req_${seq}`,
    userId: 'usr_a',
    keyId: 'key_a',
    workflow: null,
    endpoint: 'chat',
    alias: 'gpt-4o',
    deploymentId: 'prv_1',
    provider: 'openai',
    model: 'gpt-4o',
    boundary: 'public',
    classification: 'internal',
    policy: '{}',
    promptTokens: 10,
    completionTokens: 5,
    tokensEstimated: false,
    costMicros: 100,
    priceVersion: 1,
    latencyMs: 12,
    ttftMs: null,
    stream: false,
    attempts: 1,
    status: 'ok',
    httpStatus: 200,
    errorCode: null,
    createdAt: T0,
    ...o,
  };
}

/** The same workload on both dialects: two tenants, two models, a user and a key, an error, spread over the Berlin day boundary. */
function workload(): UsageRow[] {
  const rows: UsageRow[] = [];
  for (let i = 0; i < 60; i++) {
    rows.push(
      usage('ten_a', {
        createdAt: T0 - 2 * HOUR + i * 5 * 60_000, // 20:30 UTC … 01:25 UTC next day
        model: i % 3 === 0 ? 'gpt-4o-mini' : 'gpt-4o',
        userId: i % 2 ? 'usr_a' : 'usr_b',
        keyId: i % 4 ? 'key_a' : null,
        promptTokens: i,
        completionTokens: 2 * i,
        costMicros: 10 * i,
        status: i % 10 === 9 ? 'error' : 'ok',
      }),
    );
  }
  rows.push(usage('ten_b', { promptTokens: 1000, completionTokens: 1000, costMicros: 5000 }));
  return rows;
}

describe.each(DIALECTS)('metering store on $name', (dialect) => {
  it('usage batches roll up per hour; ledger sums, reports (also by day in Europe/Berlin) and raw counts match the records', async () => {
    const s = (await dialect.fresh())();
    await addTenant(s, 'ten_a');
    await addTenant(s, 'ten_b');
    const repo = new MeteringRepo(s);
    const rows = workload();
    await new UsageRepo(s).insertMany(rows);

    const a = rows.filter((r) => r.tenantId === 'ten_a');
    const sum = (xs: UsageRow[], f: (r: UsageRow) => number) => xs.reduce((n, r) => n + f(r), 0);
    const from = T0 - 3 * HOUR;
    const to = T0 + 6 * HOUR;

    // The rollups (one row per hour × dimensions, by each dialect's trigger) hold exactly the records.
    const rollupRows = await s.all(s.q.select().from(s.t.usageRollups).where(eq(s.t.usageRollups.tenantId, 'ten_a')));
    expect(rollupRows.every((r) => r.hour % HOUR === 0)).toBe(true);
    expect(rollupRows.reduce((n, r) => n + r.requests, 0)).toBe(a.length);
    expect(rollupRows.reduce((n, r) => n + r.errors, 0)).toBe(a.filter((r) => r.status !== 'ok').length);

    expect(await repo.usageSince('ten_a', from, to)).toEqual({ tokens: sum(a, (r) => r.promptTokens + r.completionTokens), cost: sum(a, (r) => r.costMicros), requests: a.length });
    const byUser = a.filter((r) => r.userId === 'usr_a');
    expect(await repo.usageSince('ten_a', from, to, { type: 'user', id: 'usr_a' })).toEqual({ tokens: sum(byUser, (r) => r.promptTokens + r.completionTokens), cost: sum(byUser, (r) => r.costMicros), requests: byUser.length });
    const byKey = a.filter((r) => r.keyId === 'key_a');
    expect((await repo.usageSince('ten_a', from, to, { type: 'key', id: 'key_a' })).requests).toBe(byKey.length);
    expect(await repo.usageSince('ten_a', to, to + HOUR)).toEqual({ tokens: 0, cost: 0, requests: 0 });
    expect(await repo.installationTokens(from, to)).toBe(sum(rows, (r) => r.promptTokens + r.completionTokens));
    expect(await repo.rawCount('ten_a', from, to)).toBe(a.length);
    expect(await new UsageRepo(s).tokensSince(from)).toBe(sum(rows, (r) => r.promptTokens + r.completionTokens));

    // Reports: by model, by user, none (and an empty 'none' report keeps its null row, which Reports drops).
    const byModel = await repo.report({ tenantId: 'ten_a', from, to, by: 'model' });
    expect(byModel.map((r) => r.group)).toEqual(['gpt-4o', 'gpt-4o-mini']);
    const mini = a.filter((r) => r.model === 'gpt-4o-mini');
    expect(byModel[1]).toEqual({ group: 'gpt-4o-mini', requests: mini.length, errors: mini.filter((r) => r.status !== 'ok').length, promptTokens: sum(mini, (r) => r.promptTokens), completionTokens: sum(mini, (r) => r.completionTokens), costMicros: sum(mini, (r) => r.costMicros) });
    expect(await repo.report({ tenantId: 'ten_a', from, to, by: 'none' })).toEqual([
      { group: null, requests: a.length, errors: a.filter((r) => r.status !== 'ok').length, promptTokens: sum(a, (r) => r.promptTokens), completionTokens: sum(a, (r) => r.completionTokens), costMicros: sum(a, (r) => r.costMicros) },
    ]);
    expect(await repo.report({ tenantId: 'ten_a', from: to, to: to + HOUR, by: 'none' })).toEqual([{ group: null, requests: null, errors: null, promptTokens: null, completionTokens: null, costMicros: null }]);
    expect((await repo.report({ tenantId: 'ten_a', from, to, by: 'user', model: 'gpt-4o-mini' })).map((r) => r.group)).toEqual(['usr_a', 'usr_b']);

    // Days in the tenant's zone: Berlin is UTC+2 here, so 22:00 UTC starts the next day.
    const off = tzOffset(from, 'Europe/Berlin');
    expect(off).toBe(2 * HOUR);
    const days = await repo.report({ tenantId: 'ten_a', from, to, by: 'day', tzOffsetMs: off });
    const dayOf = (t: number) => new Date(Math.floor(t / HOUR) * HOUR + off).toISOString().slice(0, 10);
    const expected = new Map<string, number>();
    for (const r of a) expected.set(dayOf(r.createdAt), (expected.get(dayOf(r.createdAt)) ?? 0) + 1);
    expect(days.map((d) => [d.group, d.requests])).toEqual([...expected.entries()].sort());
    expect(days.map((d) => d.group)).toEqual(['2026-03-31', '2026-04-01']);
    // The Berlin month of April starts at 2026-03-31 22:00 UTC: the same window on both dialects.
    const april = monthById('2026-04', 'Europe/Berlin');
    expect(april.start).toBe(Date.UTC(2026, 2, 31, 22));
    expect((await repo.usageSince('ten_a', april.start, april.end)).requests).toBe(a.filter((r) => r.createdAt >= april.start).length);

    // Tenant isolation: ten_b's usage is not in ten_a's sums, reports or purge.
    expect((await repo.usageSince('ten_b', from, to)).requests).toBe(1);
    expect(await repo.purgeRaw('ten_b', to)).toBe(1);
    expect(await repo.rawCount('ten_a', from, to)).toBe(a.length);
    expect((await repo.usageSince('ten_b', from, to)).requests).toBe(1); // rollups stay when raw records go
  });

  it('the batched writer: one multi-row INSERT per flush, rows written before flush() resolves, a month ledger read at start', async () => {
    const open = await dialect.fresh();
    const s = open();
    await addTenant(s, 'ten_a');
    const clock: Clock = { now: () => T0 };
    const w = new UsageWriter(s, clock, log, { intervalMs: 60_000, maxBatch: 10_000 });
    for (let i = 0; i < 700; i++) w.record(usage('ten_a', { promptTokens: 1, completionTokens: 1 })); // > 500 rows: two statements, one transaction
    expect(w.tokensThisMonth()).toBe(0); // the ledger is read at start (loadMonth); until then only this process's calls count
    await w.flush();
    expect(w.written).toBe(700);
    const other = open(); // another connection (a second process or replica) sees them
    expect((await new MeteringRepo(other).usageSince('ten_a', T0 - HOUR, T0 + HOUR)).requests).toBe(700);
    const fresh = new UsageWriter(other, clock, log);
    await fresh.loadMonth();
    fresh.record(usage('ten_a', { promptTokens: 3, completionTokens: 0 }));
    expect(fresh.tokensThisMonth()).toBe(1403);
    await fresh.flush();
  });

  it('limits, settings and plans: upserts, per-tenant reads, deletes', async () => {
    const s = (await dialect.fresh())();
    await addTenant(s, 'ten_a');
    await addTenant(s, 'ten_b');
    const repo = new MeteringRepo(s);
    await repo.setLimits('ten_a', 'user', 'usr_1', '{"monthly_tokens":5}', T0);
    await repo.setLimits('ten_a', 'user', 'usr_1', '{"monthly_tokens":7}', T0 + 1);
    await repo.setLimits('ten_a', 'key', 'key_1', '{"requests_per_minute":2}', T0);
    await repo.setLimits('ten_b', 'user', 'usr_1', '{"monthly_tokens":99}', T0);
    // JSON columns are JSON text on both dialects (PostgreSQL's jsonb normalises the spacing): compare parsed.
    expect(JSON.parse((await repo.limits('ten_a', 'user', 'usr_1'))!)).toEqual({ monthly_tokens: 7 });
    expect((await repo.listLimits('ten_a')).map((l) => ({ ...l, limits: JSON.parse(l.limits) }))).toEqual([
      { subjectType: 'key', subjectId: 'key_1', limits: { requests_per_minute: 2 }, updatedAt: T0 },
      { subjectType: 'user', subjectId: 'usr_1', limits: { monthly_tokens: 7 }, updatedAt: T0 + 1 },
    ]);
    expect(await repo.deleteLimits('ten_a', 'user', 'usr_1')).toBe(1);
    expect(await repo.deleteLimits('ten_a', 'user', 'usr_1')).toBe(0);
    expect(JSON.parse((await repo.limits('ten_b', 'user', 'usr_1'))!)).toEqual({ monthly_tokens: 99 });

    await repo.upsertSettings({ tenantId: 'ten_a', timezone: 'Europe/Berlin', rawRetentionDays: 30, alertThresholds: '[50]', webhookUrl: 'https://example.com/h', updatedAt: T0 });
    expect(await repo.tenant('ten_a')).toMatchObject({ id: 'ten_a', slug: 'ten_a', plan: null, timezone: 'Europe/Berlin', rawRetentionDays: 30, webhookUrl: 'https://example.com/h' });
    expect(JSON.parse((await repo.tenant('ten_a'))!.alertThresholds!)).toEqual([50]);
    expect(await repo.tenant('ten_b')).toMatchObject({ id: 'ten_b', timezone: null, webhookUrl: null });
    expect(await repo.retentionPolicies()).toEqual([{ tenantId: 'ten_a', days: 30 }]);
    await repo.setWebhookSecret('ten_a', 'cipher');
    expect(await repo.webhookSecret('ten_a')).toBe('cipher');
    expect(await repo.webhookSecret('ten_b')).toBeNull();
    expect(await repo.tenantId('ten_b')).toBe('ten_b');

    await repo.upsertPlan({ name: 'gold', description: 'g', capabilities: '["batch_api"]', limits: '{}', allowedModels: null, createdAt: T0, updatedAt: T0 });
    await repo.upsertPlan({ name: 'gold', description: 'g2', capabilities: '[]', limits: '{"monthly_tokens":1}', allowedModels: '["m"]', createdAt: T0 + 5, updatedAt: T0 + 5 });
    const gold = (await repo.plan('gold'))!;
    expect({ ...gold, capabilities: JSON.parse(gold.capabilities), limits: JSON.parse(gold.limits), allowedModels: JSON.parse(gold.allowedModels!) }).toEqual({
      name: 'gold',
      description: 'g2',
      capabilities: [],
      limits: { monthly_tokens: 1 },
      allowedModels: ['m'],
      createdAt: T0, // kept by the upsert
      updatedAt: T0 + 5,
    });
    await repo.setTenantPlan('ten_a', 'gold', T0);
    expect(await repo.tenantsOnPlan('gold')).toBe(1);
    expect(await repo.lockPlan('gold')).toBe(1);
    expect(await repo.lockPlan('nope')).toBe(0);
    expect((await repo.allTenants()).map((t) => [t.id, t.plan])).toEqual(expect.arrayContaining([['ten_a', 'gold'], ['ten_b', null]]));
  });

  it('prices: versions increase; the newest version of each model and deployment is current; two writers racing get distinct versions', async () => {
    const open = await dialect.fresh();
    const s = open();
    const repo = new MeteringRepo(s);
    const p = { deploymentId: '', inputMicrosPerMTok: 1, outputMicrosPerMTok: 2, requestMicros: 0, currency: 'USD', source: 'admin', createdBy: null, createdAt: T0 };
    expect(await repo.insertPrice({ ...p, model: 'a' })).toBe(1);
    expect(await repo.insertPrice({ ...p, model: 'a', inputMicrosPerMTok: 5 })).toBe(2);
    expect(await repo.insertPrice({ ...p, model: 'a', deploymentId: 'prv_1' })).toBe(3);
    const repo2 = new MeteringRepo(open());
    const raced = await Promise.all([repo.insertPrice({ ...p, model: 'b' }), repo2.insertPrice({ ...p, model: 'b', inputMicrosPerMTok: 9 }), repo.insertPrice({ ...p, model: 'c' })]);
    expect(new Set(raced).size).toBe(3);
    expect((await repo.currentPrices()).map((r) => [r.model, r.deploymentId, r.version])).toEqual([
      ['a', '', 2],
      ['a', 'prv_1', 3],
      ['b', '', Math.max(raced[0]!, raced[1]!)],
      ['c', '', raced[2]],
    ]);
    expect((await repo.priceHistory('a')).map((r) => r.version)).toEqual([1, 2, 3]);
    expect(await repo.priceCount()).toBe(6);
  });

  it('a soft-limit notification is recorded once when several writers cross the threshold together; dismiss and delivery are once too', async () => {
    const open = await dialect.fresh();
    const s = open();
    await addTenant(s, 'ten_a');
    await addTenant(s, 'ten_b');
    const repos = [new MeteringRepo(s), new MeteringRepo(open()), new MeteringRepo(open())];
    const n = (id: string, tenantId = 'ten_a') => ({ id, tenantId, window: '2026-04', limitName: 'monthly_tokens', threshold: 80, used: 81, limitValue: 100, createdAt: T0 });
    const won = await Promise.all(repos.flatMap((r, i) => [r.insertNotification(n(`ntf_${i}a`)), r.insertNotification(n(`ntf_${i}b`))]));
    expect(won.filter(Boolean)).toHaveLength(1);
    expect(await repos[0]!.insertNotification(n('ntf_b', 'ten_b'))).toBe(true); // another tenant's own
    const [mine] = await repos[0]!.notifications('ten_a', true);
    expect(mine).toMatchObject({ tenantId: 'ten_a', window: '2026-04', threshold: 80, dismissedAt: null, webhookDeliveredAt: null });
    expect(await repos[0]!.notifications('ten_b', false)).toHaveLength(1);
    // Cross-tenant access by id is refused: ten_b cannot read or dismiss ten_a's notification.
    expect(await repos[0]!.notification('ten_b', mine!.id)).toBeUndefined();
    expect(await repos[0]!.dismissNotification('ten_b', mine!.id, T0)).toBe(0);

    await repos[0]!.upsertSettings({ tenantId: 'ten_a', timezone: 'UTC', rawRetentionDays: null, alertThresholds: '[80]', webhookUrl: 'https://example.com/h', updatedAt: T0 });
    expect(await repos[0]!.undeliveredWebhooks(T0 - 1)).toEqual([{ tenantId: 'ten_a', id: mine!.id }]); // ten_b has no webhook URL
    const delivered = await Promise.all(repos.map((r) => r.markWebhookDelivered('ten_a', mine!.id, T0 + 1)));
    expect(delivered.filter(Boolean)).toHaveLength(1);
    expect(await repos[0]!.undeliveredWebhooks(T0 - 1)).toEqual([]);
    const dismissed = await Promise.all(repos.map((r) => r.dismissNotification('ten_a', mine!.id, T0 + 2)));
    expect(dismissed.reduce((x, y) => x + y, 0)).toBe(1);
    expect(await repos[0]!.notifications('ten_a', true)).toEqual([]);
    expect(await repos[0]!.notifications('ten_a', false)).toHaveLength(1);
  });

  it('a plan cannot be deleted while an assignment to it commits: the delete sees the tenant and refuses', async () => {
    // One store: on PostgreSQL each transaction takes its own pooled connection; on SQLite the store's gate orders them.
    const s = (await dialect.fresh())();
    await addTenant(s, 'ten_a');
    const a = new MeteringRepo(s);
    const b = new MeteringRepo(s);
    await a.upsertPlan({ name: 'gold', description: '', capabilities: '[]', limits: '{}', allowedModels: null, createdAt: T0, updatedAt: T0 });
    // The same steps PlanService.assign and PlanService.remove take, started together.
    let assigned!: () => void;
    const gate = new Promise<void>((r) => (assigned = r));
    const assign = a.tx(async () => {
      if (!(await a.lockPlan('gold'))) throw new Error('no plan');
      await a.setTenantPlan('ten_a', 'gold', T0);
      assigned();
      await new Promise((r) => setTimeout(r, 50)); // hold the transaction open while the delete starts
    });
    await gate;
    const remove = b.tx(async () => {
      await b.lockPlan('gold');
      if (await b.tenantsOnPlan('gold')) return 'in use';
      return (await b.deletePlan('gold')) ? 'deleted' : 'missing';
    });
    await assign;
    expect(await remove).toBe('in use');
    expect(await a.plan('gold')).toBeDefined();
  });

  describe('batches and files', () => {
    const ctxOf = (id: string) => createContext({ requestId: `req_${id}`, log, clock: { now: () => T0 }, tenant: { id, slug: id } });
    const A = ctxOf('ten_a');
    const B = ctxOf('ten_b');
    const file = (id: string) => ({ id, purpose: 'batch' as const, filename: `${id}.jsonl`, bytes: 10, lineCount: 3, path: `files/${id}.jsonl`, keyId: 'key_a', createdAt: T0, expiresAt: null });
    const batch = (id: string, inputFileId: string) => ({ id, keyId: 'key_a', keyPrefix: 'sk-x', userId: null, endpoint: '/v1/chat/completions', inputFileId, completionWindow: '24h', status: 'validating', total: 3, createdAt: T0, expiresAt: T0 + 86_400_000, enqueues: 1 });

    async function setup(): Promise<{ s: Store; repo: JobsRepo; open: () => Store }> {
      const open = await dialect.fresh();
      const s = open();
      await addTenant(s, 'ten_a');
      await addTenant(s, 'ten_b');
      return { s, repo: new JobsRepo(s, createTenantStore(s)), open };
    }

    it('files and batches per tenant: another tenant neither sees, lists, changes nor deletes them; a file an open batch reads is not deleted', async () => {
      const { repo } = await setup();
      await repo.insertFile(A, file('file_1'));
      await repo.insertFile(A, file('file_2'));
      await repo.insertFile(B, file('file_b'));
      expect((await repo.listFiles(A, { limit: 10 })).map((f) => f.id)).toEqual(['file_2', 'file_1']);
      expect((await repo.listFiles(A, { limit: 10, after: 'file_2' })).map((f) => f.id)).toEqual(['file_1']);
      expect(await repo.file(B, 'file_1')).toBeUndefined();
      expect(await repo.deleteFile(B, 'file_1')).toBe(0);

      await repo.insertBatch(A, batch('batch_1', 'file_1'));
      expect(await repo.batch(A, 'batch_1')).toMatchObject({ tenantId: 'ten_a', status: 'validating', completed: 0, failed: 0 });
      expect(await repo.batch(B, 'batch_1')).toBeUndefined();
      expect(await repo.listBatches(B, { limit: 10 })).toEqual([]);
      expect(await repo.updateBatch(B, 'batch_1', { status: 'cancelling' })).toBe(0);
      expect(await repo.batchTenant('batch_1')).toEqual({ id: 'ten_a', slug: 'ten_a' });
      expect((await repo.openBatches()).map((b) => b.id)).toEqual(['batch_1']);

      // The state check and the change are one statement: only a validating batch starts.
      expect(await repo.updateBatch(A, 'batch_1', { status: 'in_progress', inProgressAt: T0 }, ['validating'])).toBe(1);
      expect(await repo.updateBatch(A, 'batch_1', { status: 'in_progress', inProgressAt: T0 }, ['validating'])).toBe(0);

      expect(await repo.deleteFileIfUnused(A, 'file_1')).toBe(false);
      expect(await repo.deleteFileIfUnused(A, 'file_2')).toBe(true);
      expect(await repo.file(A, 'file_2')).toBeUndefined();
      await Promise.all([repo.bumpEnqueues('batch_1'), repo.bumpEnqueues('batch_1')]);
      expect((await repo.batch(A, 'batch_1'))!.enqueues).toBe(3);
    });

    it("a line's result, usage record and counters commit together; lines finishing at once all count; a crash's running lines fail once", async () => {
      const { s, repo } = await setup();
      await repo.insertFile(A, file('file_1'));
      await repo.insertBatch(A, batch('batch_1', 'file_1'));
      for (let line = 1; line <= 6; line++) await repo.startLine(A, 'batch_1', line, `c${line}`, `req_l${line}`, T0);
      expect([...(await repo.startedLines(A, 'batch_1')).keys()]).toEqual([1, 2, 3, 4, 5, 6]);
      expect((await repo.startedLines(B, 'batch_1')).size).toBe(0);

      const { tenantId: _t, ...u } = usage('ten_a', { promptTokens: 7, completionTokens: 3 });
      // Four lines finish at once (on PostgreSQL in four transactions on pooled connections).
      await Promise.all([1, 2, 3, 4].map((line) => repo.finishLine(A, 'batch_1', line, { status: line === 4 ? 'failed' : 'completed', statusCode: 200, body: '{}', error: null, now: T0 + line }, line === 1 ? u : undefined)));
      expect(await repo.batch(A, 'batch_1')).toMatchObject({ completed: 3, failed: 1 });
      expect((await new MeteringRepo(s).usageSince('ten_a', T0 - HOUR, T0 + HOUR)).tokens).toBe(10); // rolled up in the same transaction

      // A line whose usage record cannot be written (a duplicate id) leaves neither the result nor the counters.
      await expect(repo.finishLine(A, 'batch_1', 5, { status: 'completed', statusCode: 200, body: '{}', error: null, now: T0 }, u)).rejects.toThrow();
      expect(await repo.batch(A, 'batch_1')).toMatchObject({ completed: 3, failed: 1 });
      expect((await repo.finishedLines(A, 'batch_1')).map((l) => l.line)).toEqual([1, 2, 3, 4]);
      expect((await repo.finishedLines(A, 'batch_1'))[0]).toMatchObject({ usageId: u.id, status: 'completed' });

      expect(await repo.interruptRunning(B, 'batch_1', '{"code":"interrupted"}', T0)).toBe(0);
      expect(await repo.interruptRunning(A, 'batch_1', '{"code":"interrupted"}', T0)).toBe(2);
      expect(await repo.interruptRunning(A, 'batch_1', '{"code":"interrupted"}', T0)).toBe(0);
      expect(await repo.batch(A, 'batch_1')).toMatchObject({ completed: 3, failed: 3 });
      await repo.clearLineBodies(A, 'batch_1');
      expect((await repo.finishedLines(A, 'batch_1')).every((l) => l.body === null)).toBe(true);

      await repo.updateBatch(A, 'batch_1', { status: 'completed', completedAt: T0 });
      expect(await repo.purgeBatchLines(T0 + 1)).toBe(6);
      expect(await repo.lineCount(A, 'batch_1')).toBe(0);
      expect(await repo.openBatches()).toEqual([]);
    });

    it('retention: expired files across tenants, by id', async () => {
      const { repo } = await setup();
      await repo.insertFile(A, { ...file('file_1'), expiresAt: T0 - 1 });
      await repo.insertFile(B, { ...file('file_2'), expiresAt: T0 - 1 });
      await repo.insertFile(B, { ...file('file_3'), expiresAt: T0 + 1 });
      expect((await repo.expiredFiles(T0)).map((f) => f.id).sort()).toEqual(['file_1', 'file_2']);
      await repo.deleteFileById('file_2');
      expect((await repo.expiredFiles(T0)).map((f) => f.id)).toEqual(['file_1']);
    });
  });
});
