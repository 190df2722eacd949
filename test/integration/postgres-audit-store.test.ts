import { afterAll, describe, expect, it } from 'vitest';
import { AuditLog, GENESIS, verifyChain } from '../../server/audit/log.js';
import { systemClock } from '../../server/clock.js';
import { databaseFile, openDatabase, type Db } from '../../server/db/connection.js';
import { SqliteAuditStore, verifyAuditStore, type AuditEntryInput, type AuditStore } from '../../server/db/dialect-audit.js';
import { migrate } from '../../server/db/migrator.js';
import { PgAuditStore } from '../../server/db/pg/audit-store.js';
import { openPostgres, type PgDb } from '../../server/db/pg/connection.js';
import { migratePostgres } from '../../server/db/pg/migrator.js';
import { tempDir } from '../helpers/app.js';
import { freshDatabase } from '../helpers/postgres.js';

/**
 * The audit chain's repository on both dialects (server/db/dialect-audit.ts): the same cases
 * run on SQLite and on a real PostgreSQL, including appends from two connection pools at once
 * (two replicas) that must give one valid chain.
 */

interface Dialect {
  readonly name: string;
  /** Two independent connections (pools / database handles) to one fresh, migrated database. */
  pair(): Promise<[AuditStore, AuditStore]>;
  /** Edits entry `seq` behind the store's back (as an attacker with database access would). */
  tamper(seq: number): Promise<void>;
}

const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

function sqliteDialect(): Dialect {
  let first: Db | undefined;
  return {
    name: 'SQLite',
    async pair() {
      const file = databaseFile(tempDir('enclave-audit-store-'));
      const a = openDatabase(file);
      migrate(a.$client);
      const b = openDatabase(file);
      first = a;
      closers.push(
        () => void a.$client.close(),
        () => void b.$client.close(),
      );
      return [new SqliteAuditStore(a), new SqliteAuditStore(b)];
    },
    async tamper(seq) {
      first!.$client.prepare("UPDATE audit_log SET action = 'tampered' WHERE seq = ?").run(seq);
    },
  };
}

function postgresDialect(): Dialect {
  let first: PgDb | undefined;
  return {
    name: 'PostgreSQL',
    async pair() {
      const url = await freshDatabase('audit');
      const a = openPostgres({ url, poolMax: 4, applicationName: 'replica-a' });
      const b = openPostgres({ url, poolMax: 4, applicationName: 'replica-b' });
      closers.push(() => a.$client.end(), () => b.$client.end());
      await migratePostgres(a.$client);
      first = a;
      return [new PgAuditStore(a), new PgAuditStore(b)];
    },
    async tamper(seq) {
      await first!.$client.query("UPDATE audit_log SET action = 'tampered' WHERE seq = $1", [seq]);
    },
  };
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

for (const dialect of [sqliteDialect(), postgresDialect()]) {
  describe(`audit store contract: ${dialect.name}`, () => {
    it('appends link into one chain from the genesis hash; the chain verifies; the head names the newest', async () => {
      const [store] = await dialect.pair();
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
      const [a, b] = await dialect.pair();
      const appends = Array.from({ length: 60 }, (_, i) => [a.append(entry(`replica.a.${i}`)), b.append(entry(`replica.b.${i}`))]).flat();
      const rows = await Promise.all(appends);
      expect(rows.map((r) => r.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
      const result = await verifyAuditStore(b, 50); // paged walk, through the other replica
      expect(result).toMatchObject({ ok: true, checked: 120, head: { seq: 120 } });
    });

    it('an edited entry is found by the same verification', async () => {
      const [store] = await dialect.pair();
      for (let i = 0; i < 5; i++) await store.append(entry(`e.${i}`));
      await dialect.tamper(3);
      expect(await verifyAuditStore(store)).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, problem: 'entry 3 was modified: its content does not match its hash' } });
    });
  });
}

describe('audit store: SQLite compatibility with the running AuditLog', () => {
  it('entries written by AuditLog (server/audit/log.ts) and by the store form one chain that both verifications accept', async () => {
    const dataDir = tempDir('enclave-audit-compat-');
    const db = openDatabase(databaseFile(dataDir));
    closers.push(() => void db.$client.close());
    migrate(db.$client);
    const log = new AuditLog(db, systemClock);
    log.record(undefined, { action: 'tenants.create', details: { slug: 'x' } });
    const store = new SqliteAuditStore(db);
    await store.append(entry('keys.create'));
    log.record(undefined, { action: 'keys.revoke' });
    expect(verifyChain(db)).toMatchObject({ ok: true, checked: 3 });
    expect(await verifyAuditStore(store)).toMatchObject({ ok: true, checked: 3 });
  });
});
