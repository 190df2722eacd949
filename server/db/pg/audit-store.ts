import { asc, eq, gt, sql } from 'drizzle-orm';
import type { AuditRow } from '../../audit/log.js';
import { chainEntry, type AuditEntryInput, type AuditStore } from '../dialect-audit.js';
import type { PgDb } from './connection.js';
import { auditHead, auditLog } from './schema.js';

/** The advisory lock key that serialises audit appends across every replica: "enclaudt" as a 64-bit number. */
export const AUDIT_APPEND_LOCK_KEY = BigInt('0x656e636c61756474').toString();

/**
 * PostgreSQL: replicas append to one chain. Each append is a transaction that first takes a
 * transaction-scoped advisory lock (pg_advisory_xact_lock: released by COMMIT/ROLLBACK, so a
 * crashed appender never leaves it held), then reads the head, inserts the entry and moves the
 * head. An advisory lock rather than `SELECT … FOR UPDATE` on audit_head: the first append has
 * no head row to lock, and two first appends would both see an empty chain.
 *
 * READ COMMITTED on purpose: each statement sees what committed before it started, so the head
 * read after the lock is the previous appender's. Under REPEATABLE READ the snapshot would be
 * taken by the lock statement itself — before the previous holder committed — and the chain
 * would fork.
 */
export class PgAuditStore implements AuditStore {
  constructor(private readonly db: PgDb) {}

  append(row: AuditEntryInput): Promise<AuditRow> {
    return this.db.transaction(
      async (tx) => {
        await tx.execute(sql`SELECT pg_advisory_xact_lock(${AUDIT_APPEND_LOCK_KEY}::bigint)`);
        const head = (await tx.select({ seq: auditHead.seq, hash: auditHead.hash }).from(auditHead).where(eq(auditHead.id, 1)))[0];
        const stored = chainEntry(head, row);
        await tx.insert(auditLog).values(stored);
        await tx
          .insert(auditHead)
          .values({ id: 1, seq: stored.seq, hash: stored.hash })
          .onConflictDoUpdate({ target: auditHead.id, set: { seq: stored.seq, hash: stored.hash } });
        return stored;
      },
      { isolationLevel: 'read committed' },
    );
  }

  page(afterSeq: number, limit: number): Promise<AuditRow[]> {
    return this.db.select().from(auditLog).where(gt(auditLog.seq, afterSeq)).orderBy(asc(auditLog.seq)).limit(limit);
  }

  async head(): Promise<{ seq: number; hash: string } | undefined> {
    return (await this.db.select({ seq: auditHead.seq, hash: auditHead.hash }).from(auditHead).where(eq(auditHead.id, 1)))[0];
  }
}
