import { and, asc, count, desc, eq, gt, gte, lt, lte, type SQL } from 'drizzle-orm';
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { Db } from '../db/connection.js';
import { chainEntry, verifyAuditStore, type AuditEntryInput, type AuditStore } from '../db/dialect-audit.js';
import type { auditLog } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { newId } from '../ids.js';
import { auditCategory } from '../metrics/known-series.js';
import type { Metrics } from '../metrics/registry.js';

/**
 * The hash-chained audit log. Each entry stores the hash of the previous entry and its
 * own hash over a canonical serialization of its fields (a JSON array in a fixed order,
 * so no key-ordering ambiguity): `hash = sha256(prev_hash + "\n" + canonical)`. Appends
 * are serialised by a transaction's write lock (AuditLog.append), so concurrent processes
 * and replicas extend one chain. `audit_head` records the newest entry, so deleting entries at the end of the
 * chain is detected as well. Entries never contain secrets: details are scrubbed of any
 * key that looks like one.
 */
export type AuditRow = typeof auditLog.$inferSelect;
export type ActorType = AuditRow['actorType'];

export interface AuditInput {
  readonly action: string;
  readonly outcome?: 'allowed' | 'denied';
  readonly reason?: string;
  readonly target?: { readonly type: string; readonly id?: string | null };
  /** The tenant the entry belongs to; defaults to the context's tenant. null = platform-wide. */
  readonly tenantId?: string | null;
  readonly details?: Record<string, unknown>;
  /** Actor override (e.g. a failed login names no principal yet). */
  readonly actor?: { readonly type: ActorType; readonly id: string | null };
}

export const GENESIS = '0'.repeat(64);
const SECRETISH = /pass(word)?|secret|token|key_?hash|authorization|cookie|credential/i;

export function canonical(e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  return JSON.stringify([
    e.seq,
    e.id,
    e.at,
    e.tenantRef,
    e.actorType,
    e.actorId,
    e.action,
    e.targetType,
    e.targetId,
    e.outcome,
    e.reason,
    e.ip,
    e.userAgent,
    e.requestId,
    e.details,
  ]);
}

export function entryHash(prevHash: string, e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonical(e)).digest('hex');
}

function scrub(value: unknown, depth = 0): unknown {
  if (depth > 4) return '[truncated]';
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => scrub(v, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRETISH.test(k) ? '[redacted]' : scrub(v, depth + 1);
    return out;
  }
  if (typeof value === 'string' && /enk_[0-9A-Za-z]{20,}/.test(value)) return '[redacted]';
  return value;
}

export interface AuditQuery {
  /** Only this tenant's entries (tenant admins); undefined = every entry (platform admins). */
  readonly tenantId?: string;
  readonly action?: string;
  readonly actorId?: string;
  readonly outcome?: 'allowed' | 'denied';
  readonly since?: number;
  readonly until?: number;
  /** Entries with seq below this (newest first paging). */
  readonly beforeSeq?: number;
  readonly limit?: number;
}

export type VerifyResult =
  | { ok: true; checked: number; head: { seq: number; hash: string } | null }
  | { ok: false; checked: number; broken: { seq: number; id: string | null; problem: string } };

/**
 * The audit log over the async Store (issue 22): one implementation on both dialects. An append
 * is a `store.tx` that reads the head, inserts the entry and moves the head; what serialises
 * concurrent appenders (other flows, other processes, other replicas) is the transaction's
 * write lock: on SQLite `store.tx` is BEGIN IMMEDIATE (the database's write lock, taken before
 * the head is read); on PostgreSQL the transaction first takes a transaction-scoped advisory
 * lock (see AUDIT_APPEND_LOCK). It is also the chain's repository (AuditStore), so
 * verifyAuditStore walks it through the same rules as every other copy of the chain.
 */
export class AuditLog implements AuditStore {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    /** Counts appended entries (enclave_audit_events_total{category,outcome}); absent in the CLI. */
    private readonly metrics?: Metrics,
  ) {}

  /** Appends one entry at the head of the chain, serialised against every other appender. */
  append(row: AuditEntryInput): Promise<AuditRow> {
    const s = this.store;
    return s.tx(async () => {
      // Transaction-scoped (released by COMMIT/ROLLBACK, so a crashed appender never leaves it
      // held). A lock rather than `SELECT … FOR UPDATE` on audit_head: the first append has no
      // head row to lock. READ COMMITTED (store.tx's level): the head read after the lock sees
      // the previous appender's commit; a REPEATABLE READ snapshot taken by the lock statement
      // would not, and the chain would fork.
      await s.lock(AUDIT_APPEND_LOCK);
      const stored = chainEntry(await this.head(), row);
      await s.run(s.q.insert(s.t.auditLog).values(stored));
      await s.run(
        s.q
          .insert(s.t.auditHead)
          .values({ id: 1, seq: stored.seq, hash: stored.hash })
          .onConflictDoUpdate({ target: s.t.auditHead.id, set: { seq: stored.seq, hash: stored.hash } }),
      );
      return stored;
    });
  }

  /** Entries with seq > afterSeq, oldest first. */
  page(afterSeq: number, limit: number): Promise<AuditRow[]> {
    const { q, t } = this.store;
    return this.store.all(q.select().from(t.auditLog).where(gt(t.auditLog.seq, afterSeq)).orderBy(asc(t.auditLog.seq)).limit(limit));
  }

  /** audit_head row 1, if any entry was ever appended. */
  head(): Promise<{ seq: number; hash: string } | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select({ seq: t.auditHead.seq, hash: t.auditHead.hash }).from(t.auditHead).where(eq(t.auditHead.id, 1)));
  }

  /** Appends one entry; the actor, tenant, client address and request id come from ctx. */
  async record(ctx: RequestContext | undefined, input: AuditInput): Promise<AuditRow> {
    const p = ctx?.principal;
    const actor = input.actor ?? (p ? { type: p.kind as ActorType, id: p.id } : { type: 'anonymous' as const, id: null });
    const row = await this.append({
      id: newId('aud', this.clock.now()),
      at: this.clock.now(),
      tenantRef: input.tenantId !== undefined ? input.tenantId : (ctx?.tenant?.id ?? null),
      actorType: actor.type,
      actorId: actor.id,
      action: input.action,
      targetType: input.target?.type ?? null,
      targetId: input.target?.id ?? null,
      outcome: input.outcome ?? 'allowed',
      reason: input.reason ?? null,
      ip: ctx?.client?.ip ?? null,
      userAgent: ctx?.client?.userAgent?.slice(0, 256) ?? null,
      requestId: ctx?.requestId ?? null,
      details: JSON.stringify(scrub(input.details ?? {})),
    });
    this.metrics?.auditEvents.labels(auditCategory(row.action), row.outcome).inc();
    return row;
  }

  private where(f: AuditQuery): SQL | undefined {
    const a = this.store.t.auditLog;
    return and(
      f.tenantId !== undefined ? eq(a.tenantRef, f.tenantId) : undefined,
      f.action ? eq(a.action, f.action) : undefined,
      f.actorId ? eq(a.actorId, f.actorId) : undefined,
      f.outcome ? eq(a.outcome, f.outcome) : undefined,
      f.since !== undefined ? gte(a.at, f.since) : undefined,
      f.until !== undefined ? lte(a.at, f.until) : undefined,
      f.beforeSeq !== undefined ? lt(a.seq, f.beforeSeq) : undefined,
    );
  }

  /** Newest first. */
  list(f: AuditQuery): Promise<AuditRow[]> {
    const { q, t } = this.store;
    return this.store.all(
      q
        .select()
        .from(t.auditLog)
        .where(this.where(f))
        .orderBy(desc(t.auditLog.seq))
        .limit(Math.min(f.limit ?? 50, 1000)),
    );
  }

  /** Oldest first, read in pages (for export). */
  async *iterate(f: AuditQuery): AsyncGenerator<AuditRow> {
    const { q, t } = this.store;
    let after = 0;
    for (;;) {
      const page = await this.store.all(
        q
          .select()
          .from(t.auditLog)
          .where(and(this.where(f), gt(t.auditLog.seq, after)))
          .orderBy(asc(t.auditLog.seq))
          .limit(500),
      );
      yield* page;
      if (page.length < 500) return;
      after = page.at(-1)!.seq;
    }
  }

  /** All entries, or (given a query) the entries matching it, e.g. one tenant's. */
  async count(f: AuditQuery = {}): Promise<number> {
    const { q, t } = this.store;
    return (await this.store.one(q.select({ n: count() }).from(t.auditLog).where(this.where(f))))?.n ?? 0;
  }

  /** Walks the whole chain and names the first broken entry. */
  verify(): Promise<VerifyResult> {
    return verifyAuditStore(this);
  }
}

/** The lock (store.lock) that serialises audit appends across every process and replica. */
export const AUDIT_APPEND_LOCK = 'enclave:audit:append';

/**
 * The chain of an SQLite file read directly, without a Store (enclave migrate-to-postgres checks
 * its source inside its own read transaction). Everything else verifies through AuditLog.verify().
 */
export function verifyChain(db: Db): VerifyResult {
  const walker = new ChainWalker();
  const rows = db.$client
    .prepare(
      `SELECT seq, id, at, tenant_ref AS tenantRef, actor_type AS actorType, actor_id AS actorId, action,
              target_type AS targetType, target_id AS targetId, outcome, reason, ip, user_agent AS userAgent,
              request_id AS requestId, details, prev_hash AS prevHash, hash
       FROM audit_log ORDER BY seq`,
    )
    .iterate() as IterableIterator<AuditRow>;
  for (const row of rows) {
    const broken = walker.next(row);
    if (broken) return broken;
  }
  return walker.finish(db.$client.prepare('SELECT seq, hash FROM audit_head WHERE id = 1').get() as { seq: number; hash: string } | undefined);
}

/**
 * The chain check, fed one entry at a time in seq order: verifyChain (SQLite) and the check of a
 * copy to PostgreSQL (server/ops/db-migrate) walk their rows through the same rules.
 */
export class ChainWalker {
  private prevHash = GENESIS;
  private expectSeq = 1;
  private checked = 0;

  /** undefined while the chain holds; the failure at the first broken entry. */
  next(row: AuditRow): VerifyResult | undefined {
    const checked = this.checked;
    const expectSeq = this.expectSeq;
    const broken = (problem: string): VerifyResult => ({ ok: false, checked, broken: { seq: row.seq, id: row.id, problem } });
    if (row.seq !== expectSeq) {
      return broken(`entry ${row.seq} follows entry ${expectSeq - 1}: ${row.seq - expectSeq} entr${row.seq - expectSeq === 1 ? 'y was' : 'ies were'} deleted before it`);
    }
    if (row.prevHash !== this.prevHash) {
      return broken(`entry ${row.seq} does not link to the entry before it (an entry was deleted, reordered or edited before it)`);
    }
    const { hash: _h, prevHash: _p, ...fields } = row;
    if (entryHash(this.prevHash, fields) !== row.hash) {
      return broken(`entry ${row.seq} was modified: its content does not match its hash`);
    }
    this.prevHash = row.hash;
    this.expectSeq++;
    this.checked++;
    return undefined;
  }

  /** After the last entry: the head (audit_head row 1, if any) must name it. */
  finish(head: { seq: number; hash: string } | undefined): VerifyResult {
    const { checked, expectSeq, prevHash } = this;
    if (head && (head.seq !== expectSeq - 1 || head.hash !== prevHash)) {
      return {
        ok: false,
        checked,
        broken: {
          seq: expectSeq,
          id: null,
          problem: `the chain ends at entry ${expectSeq - 1} but the head records entry ${head.seq}: entries at the end were deleted`,
        },
      };
    }
    return { ok: true, checked, head: head ? { seq: head.seq, hash: head.hash } : null };
  }
}
