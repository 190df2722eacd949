import { asc, eq, gt } from 'drizzle-orm';
import { ChainWalker, entryHash, GENESIS, type AuditRow, type VerifyResult } from '../audit/log.js';
import type { Db } from './connection.js';
import { auditHead, auditLog } from './schema.js';

/**
 * The audit chain behind one async interface on both dialects (issue 22): the pattern the other
 * verticals follow when the services move to the async repository layer (docs/postgres.md). Not
 * wired into the running server yet: AuditLog (server/audit/log.ts) still appends through SQLite
 * directly; when it is rewired, it builds the row and calls `append`, and this SQLite
 * implementation replaces the transaction in its constructor.
 *
 * The contract both implementations keep (test/integration/postgres-audit-store.test.ts runs the
 * same cases on each): appends from any number of processes or connections extend ONE chain —
 * seq 1, 2, 3 … without gaps, each entry's prev_hash the previous entry's hash, hash =
 * entryHash(prev_hash, entry) (the audit module's function), audit_head naming the newest.
 */
export type AuditEntryInput = Omit<AuditRow, 'seq' | 'hash' | 'prevHash'>;

export interface AuditStore {
  /** Appends one entry at the head of the chain, serialised against every other appender. */
  append(row: AuditEntryInput): Promise<AuditRow>;
  /** Entries with seq > afterSeq, oldest first. */
  page(afterSeq: number, limit: number): Promise<AuditRow[]>;
  /** audit_head row 1, if any entry was ever appended. */
  head(): Promise<{ seq: number; hash: string } | undefined>;
}

/** Builds the next entry from the current head: the one place the chain's link is made. */
export function chainEntry(head: { seq: number; hash: string } | undefined, row: AuditEntryInput): AuditRow {
  const seq = (head?.seq ?? 0) + 1;
  const prevHash = head?.hash ?? GENESIS;
  const full = { ...row, seq };
  return { ...full, prevHash, hash: entryHash(prevHash, full) };
}

/** Walks a store's whole chain through the audit module's own rules (ChainWalker). */
export async function verifyAuditStore(store: AuditStore, pageSize = 1000): Promise<VerifyResult> {
  const walker = new ChainWalker();
  let after = 0;
  for (;;) {
    const page = await store.page(after, pageSize);
    for (const row of page) {
      const broken = walker.next(row);
      if (broken) return broken;
    }
    if (page.length < pageSize) break;
    after = page.at(-1)!.seq;
  }
  return walker.finish(await store.head());
}

/**
 * SQLite: the append is one IMMEDIATE transaction (takes the database's write lock before it
 * reads the head), so processes sharing the file serialise, as AuditLog does today.
 */
export class SqliteAuditStore implements AuditStore {
  private readonly appendTx: (row: AuditEntryInput) => AuditRow;

  constructor(private readonly db: Db) {
    const tx = db.$client.transaction((row: AuditEntryInput): AuditRow => {
      const head = db.select({ seq: auditHead.seq, hash: auditHead.hash }).from(auditHead).where(eq(auditHead.id, 1)).get();
      const stored = chainEntry(head, row);
      db.insert(auditLog).values(stored).run();
      db.insert(auditHead)
        .values({ id: 1, seq: stored.seq, hash: stored.hash })
        .onConflictDoUpdate({ target: auditHead.id, set: { seq: stored.seq, hash: stored.hash } })
        .run();
      return stored;
    });
    this.appendTx = (row) => tx.immediate(row);
  }

  async append(row: AuditEntryInput): Promise<AuditRow> {
    return this.appendTx(row);
  }

  async page(afterSeq: number, limit: number): Promise<AuditRow[]> {
    return this.db.select().from(auditLog).where(gt(auditLog.seq, afterSeq)).orderBy(asc(auditLog.seq)).limit(limit).all();
  }

  async head(): Promise<{ seq: number; hash: string } | undefined> {
    return this.db.select({ seq: auditHead.seq, hash: auditHead.hash }).from(auditHead).where(eq(auditHead.id, 1)).get();
  }
}
