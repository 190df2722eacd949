import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import type { UsageRow } from '../../server/db/repos/usage.js';
import type { Store } from '../../server/db/store.js';
import { closeAll, DIALECTS, rawRows } from '../helpers/stores.js';

/**
 * The Store's prepared insert (server/db/store.ts prepareInsert; the usage records' write path)
 * on SQLite and PostgreSQL: it stores exactly what drizzle's builder stores (every column type:
 * booleans, bigint counters, jsonb, timestamptz, NULLs, a static default for an absent key),
 * the rollup trigger sees its rows, a batch is all or none, and inside store.tx it joins the
 * transaction (rolled back with it).
 */

afterAll(closeAll);

const T0 = Date.UTC(2026, 11, 3, 10, 15, 30, 123);
let seq = 0;
function usage(tenantId: string, o: Partial<UsageRow> = {}): UsageRow {
  seq++;
  return {
    id: `use_p${seq}`,
    tenantId,
    requestId: `req_p${seq}`,
    userId: seq % 2 ? 'usr_a' : null,
    keyId: 'key_a',
    workflow: seq % 3 ? null : 'nightly/run:1',
    endpoint: 'chat',
    api: 'responses',
    alias: 'gpt-4o',
    deploymentId: 'prv_1',
    provider: 'openai',
    model: 'gpt-4o',
    boundary: 'public',
    classification: 'internal',
    policy: '{"decision":"allow","rules":{"email":2}}',
    promptTokens: 3_000_000_000 + seq, // past 2^31: a bigint on PostgreSQL
    completionTokens: 7,
    tokensEstimated: seq % 2 === 0,
    costMicros: 123_456,
    priceVersion: seq % 2 ? 3 : null,
    latencyMs: 42,
    ttftMs: seq % 2 ? 11 : null,
    stream: seq % 2 === 1,
    attempts: 2,
    status: 'ok',
    httpStatus: 200,
    errorCode: null,
    createdAt: T0 + seq,
    ...o,
  };
}

async function addTenant(s: Store, id: string): Promise<void> {
  await s.run(s.q.insert(s.t.tenants).values({ id, slug: id, name: id, createdAt: T0, updatedAt: T0 }));
}

const rowsOf = (s: Store, tenantId: string) => s.all(s.q.select().from(s.t.usageRecords).where(eq(s.t.usageRecords.tenantId, tenantId)).orderBy(asc(s.t.usageRecords.createdAt)));

describe.each(DIALECTS)('prepared insert on $name', (dialect) => {
  it('stores what the builder stores, feeds the rollup trigger, is all-or-none, and joins store.tx', async () => {
    const open = await dialect.fresh();
    const s = open();
    await addTenant(s, 'ten_p');
    await addTenant(s, 'ten_q');
    const ins = s.prepareInsert<UsageRow>(s.t.usageRecords, 'usage_records_test');

    // Same rows through both paths (ids differ), read back: equal column for column.
    const viaPrepared = [usage('ten_p'), usage('ten_p'), usage('ten_p')];
    const { api: _absent, ...noApi } = usage('ten_p'); // an absent key takes the column's default ('chat')
    viaPrepared.push(noApi as UsageRow);
    await ins.run(viaPrepared);
    const viaBuilder = viaPrepared.map((r) => ({ ...r, id: `${r.id}_b`, tenantId: 'ten_q' }));
    await s.run(s.q.insert(s.t.usageRecords).values(viaBuilder));
    const strip = (r: Record<string, unknown>) => ({ ...r, id: String(r.id).replace(/_b$/, ''), tenantId: '' });
    const p = await rowsOf(s, 'ten_p');
    const b = await rowsOf(s, 'ten_q');
    expect(p.map(strip)).toEqual(b.map(strip));
    expect(p[3]!.api).toBe('chat');
    expect(p[0]!.promptTokens).toBe(viaPrepared[0]!.promptTokens);
    expect(p.map((r) => r.createdAt)).toEqual(viaPrepared.map((r) => r.createdAt));

    // The rollup trigger ran for each prepared row.
    const rollups = await s.all(s.q.select().from(s.t.usageRollups).where(eq(s.t.usageRollups.tenantId, 'ten_p')));
    expect(rollups.reduce((n, r) => n + r.requests, 0)).toBe(4);

    // All or none: one row of an unknown tenant (foreign key) fails the batch; nothing of it is stored.
    await expect(ins.run([usage('ten_p'), usage('ten_missing')])).rejects.toThrow();
    expect(await rowsOf(s, 'ten_p')).toHaveLength(4);

    // Inside store.tx it is part of the transaction: rolled back with it, committed with it.
    await expect(
      s.tx(async () => {
        await ins.run([usage('ten_p')]);
        expect(await rowsOf(s, 'ten_p')).toHaveLength(5); // visible inside (same connection)
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await rowsOf(s, 'ten_p')).toHaveLength(4);
    await s.tx(() => ins.run([usage('ten_p'), usage('ten_p')]));
    expect(await rowsOf(s, 'ten_p')).toHaveLength(6);

    // A large batch (past the old 500-rows-per-statement split) in one call.
    await ins.run(Array.from({ length: 1200 }, () => usage('ten_q')));
    expect(await rowsOf(s, 'ten_q')).toHaveLength(1204);

    // asyncCommit (the usage records' path): committed and visible to another connection (a
    // second pool, as another replica) when it resolves; inside tx still part of the transaction;
    // the setting does not outlive the statement's transaction on its connection.
    const fast = s.prepareInsert<UsageRow>(s.t.usageRecords, 'usage_records_async_test', { asyncCommit: true });
    await fast.run([usage('ten_p'), usage('ten_p')]);
    const other = open();
    expect(await rowsOf(other, 'ten_p')).toHaveLength(8);
    await expect(
      s.tx(async () => {
        await fast.run([usage('ten_p')]);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await rowsOf(other, 'ten_p')).toHaveLength(8);
    if (s.dialect === 'postgres') {
      // The cluster's own value (the test cluster runs with it off; production's default is on).
      const configured = (await rawRows(s, sql`SELECT reset_val FROM pg_settings WHERE name = 'synchronous_commit'`))[0]!.reset_val;
      const settings = await s.tx(async () => {
        await fast.run([usage('ten_p')]); // joins the transaction: the plain statement, no set_config
        await rawRows(s, sql`SELECT set_config('synchronous_commit', 'remote_apply', true)`); // a marker the insert must not override
        await fast.run([usage('ten_p')]);
        return rawRows(s, sql`SHOW synchronous_commit`);
      });
      expect(settings[0]!.synchronous_commit).toBe('remote_apply');
      expect((await rawRows(s, sql`SHOW synchronous_commit`))[0]!.synchronous_commit).toBe(configured);
    }
  });
});
