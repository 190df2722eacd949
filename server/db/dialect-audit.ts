import { ChainWalker, entryHash, GENESIS, type AuditRow, type VerifyResult } from '../audit/log.js';

/**
 * The audit chain behind one async interface on both dialects (issue 22). AuditLog
 * (server/audit/log.ts) implements it over the Store, one implementation for SQLite and
 * PostgreSQL.
 *
 * The contract (test/integration/postgres-audit-store.test.ts runs the same cases on each
 * dialect): appends from any number of processes or connections extend ONE chain —
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
