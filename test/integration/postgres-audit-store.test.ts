import { eq } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog, GENESIS, verifyChain } from '../../server/audit/log.js';
import { systemClock } from '../../server/clock.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { verifyAuditStore, type AuditEntryInput } from '../../server/db/dialect-audit.js';
import { migrate } from '../../server/db/migrator.js';
import { sqliteStore, type Store } from '../../server/db/store.js';
import { tempDir } from '../helpers/app.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The audit chain's repository on both dialects: AuditLog (server/audit/log.ts) over the Store,
 * one implementation; the same cases run on SQLite and on a real PostgreSQL, including appends
 * from two connections at once (two processes / replicas) that must give one valid chain.
 */

const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  await closeAll();
});

/** Edits entry `seq` behind the log's back (as an attacker with database access would). */
async function tamper(s: Store, seq: number): Promise<void> {
  await s.run(s.q.update(s.t.auditLog).set({ action: 'tampered' }).where(eq(s.t.auditLog.seq, seq)));
}

let n = 0;
function entry(action: string, details: Record<string, unknown> = {}): AuditEntryInput {
  n++;
  return {
    id: `aud_test_${n.toString().padStart(6, '0')}`,
    at: Date.UTC(2026, 11, 3, 12, 0, 0, n),
    tenantRef: n % 2 ? 'ten_a' : null,
    actorType: 'system',
    actorId: null,
    action,
    targetType: 'key',
    targetId: `key_${n}`,
    outcome: 'allowed',
    reason: null,
    ip: '127.0.0.1',
    userAgent: 'test',
    requestId: `req_${n}`,
    details: JSON.stringify(details),
  };
}

describe.each(DIALECTS)('audit store contract: $name', (dialect) => {
  {
    it('appends link into one chain from the genesis hash; the chain verifies; the head names the newest', async () => {
      const store = new AuditLog((await dialect.fresh())(), systemClock);
      expect(await store.head()).toBeUndefined();
      const a = await store.append(entry('keys.create', { name: 'ci', b: 1, a: [1, 2] }));
      const b = await store.append(entry('keys.revoke'));
      const c = await store.append(entry('tenants.create', { slug: 'ü' }));
      expect([a.seq, b.seq, c.seq]).toEqual([1, 2, 3]);
      expect(a.prevHash).toBe(GENESIS);
      expect(b.prevHash).toBe(a.hash);
      expect(c.prevHash).toBe(b.hash);
      expect(await store.head()).toEqual({ seq: 3, hash: c.hash });
      expect(await store.page(0, 10)).toEqual([a, b, c]); // read back exactly as written (details bytes too)
      expect(await verifyAuditStore(store)).toEqual({ ok: true, checked: 3, head: { seq: 3, hash: c.hash } });
    });

    it('two replicas appending at once (two pools, 2 × 60 appends) produce one valid chain without gaps', async () => {
      const open = await dialect.fresh();
      // PostgreSQL: two pools, as two replicas. SQLite: two logs over one connection, as the
      // concurrent requests of one process (the store's gate serialises them); two connections
      // in ONE process would block each other's thread in busy_timeout — across processes
      // BEGIN IMMEDIATE serialises them (test/integration/audit.test.ts, CLI beside a server).
      const first = open();
      const [a, b] = [new AuditLog(first, systemClock), new AuditLog(dialect.name === 'SQLite' ? first : open(), systemClock)];
      const appends = Array.from({ length: 60 }, (_, i) => [a.append(entry(`replica.a.${i}`)), b.append(entry(`replica.b.${i}`))]).flat();
      const rows = await Promise.all(appends);
      expect(rows.map((r) => r.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
      const result = await verifyAuditStore(b, 50); // paged walk, through the other replica
      expect(result).toMatchObject({ ok: true, checked: 120, head: { seq: 120 } });
    });

    it('an edited entry is found by the same verification', async () => {
      const s = (await dialect.fresh())();
      const store = new AuditLog(s, systemClock);
      for (let i = 0; i < 5; i++) await store.append(entry(`e.${i}`));
      await tamper(s, 3);
      expect(await verifyAuditStore(store)).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, problem: 'entry 3 was modified: its content does not match its hash' } });
    });
  }
});

describe('audit store: SQLite file check', () => {
  it('the direct SQLite check of migrate-to-postgres (verifyChain) and AuditLog.verify agree on one chain', async () => {
    const dataDir = tempDir('enclave-audit-compat-');
    const db = openDatabase(databaseFile(dataDir));
    closers.push(() => void db.$client.close());
    migrate(db.$client);
    const log = new AuditLog(sqliteStore(db), systemClock);
    await log.record(undefined, { action: 'tenants.create', details: { slug: 'x' } });
    await log.append(entry('keys.create'));
    await log.record(undefined, { action: 'keys.revoke' });
    expect(verifyChain(db)).toMatchObject({ ok: true, checked: 3 });
    expect(await log.verify()).toMatchObject({ ok: true, checked: 3 });
    db.$client.prepare("UPDATE audit_log SET action = 'tampered' WHERE seq = 2").run();
    expect(verifyChain(db)).toMatchObject({ ok: false, broken: { seq: 2 } });
    expect(await log.verify()).toMatchObject({ ok: false, broken: { seq: 2 } });
  });
});
