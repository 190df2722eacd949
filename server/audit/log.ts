import { and, asc, desc, eq, gt, gte, lt, lte, sql, type SQL } from 'drizzle-orm';
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { Db } from '../db/connection.js';
import { auditHead, auditLog } from '../db/schema.js';
import { newId } from '../ids.js';
import { auditCategory } from '../metrics/known-series.js';
import type { Metrics } from '../metrics/registry.js';

/**
 * The hash-chained audit log. Each entry stores the hash of the previous entry and its
 * own hash over a canonical serialization of its fields (a JSON array in a fixed order,
 * so no key-ordering ambiguity): `hash = sha256(prev_hash + "\n" + canonical)`. Appends
 * run in an IMMEDIATE transaction (the SQLite write lock), so concurrent processes extend
 * one chain. `audit_head` records the newest entry, so deleting entries at the end of the
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

export class AuditLog {
  private readonly append: (row: Omit<AuditRow, 'seq' | 'hash' | 'prevHash'>) => AuditRow;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    /** Counts appended entries (enclave_audit_events_total{category,outcome}); absent in the CLI. */
    private readonly metrics?: Metrics,
  ) {
    const sqlite = db.$client;
    const headStmt = sqlite.prepare('SELECT seq, hash FROM audit_head WHERE id = 1');
    const insert = sqlite.prepare(
      `INSERT INTO audit_log (seq, id, at, tenant_ref, actor_type, actor_id, action, target_type, target_id, outcome, reason, ip, user_agent, request_id, details, prev_hash, hash)
       VALUES (@seq, @id, @at, @tenantRef, @actorType, @actorId, @action, @targetType, @targetId, @outcome, @reason, @ip, @userAgent, @requestId, @details, @prevHash, @hash)`,
    );
    const setHead = sqlite.prepare(
      'INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash',
    );
    const tx = sqlite.transaction((row: Omit<AuditRow, 'seq' | 'hash' | 'prevHash'>): AuditRow => {
      const head = headStmt.get() as { seq: number; hash: string } | undefined;
      const seq = (head?.seq ?? 0) + 1;
      const prevHash = head?.hash ?? GENESIS;
      const full = { ...row, seq };
      const hash = entryHash(prevHash, full);
      const stored = { ...full, prevHash, hash };
      insert.run(stored);
      setHead.run(seq, hash);
      return stored;
    });
    this.append = (row) => tx.immediate(row);
  }

  /** Appends one entry; the actor, tenant, client address and request id come from ctx. */
  record(ctx: RequestContext | undefined, input: AuditInput): AuditRow {
    const p = ctx?.principal;
    const actor = input.actor ?? (p ? { type: p.kind as ActorType, id: p.id } : { type: 'anonymous' as const, id: null });
    const row = this.append({
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

  private where(q: AuditQuery): SQL | undefined {
    return and(
      q.tenantId !== undefined ? eq(auditLog.tenantRef, q.tenantId) : undefined,
      q.action ? eq(auditLog.action, q.action) : undefined,
      q.actorId ? eq(auditLog.actorId, q.actorId) : undefined,
      q.outcome ? eq(auditLog.outcome, q.outcome) : undefined,
      q.since !== undefined ? gte(auditLog.at, q.since) : undefined,
      q.until !== undefined ? lte(auditLog.at, q.until) : undefined,
      q.beforeSeq !== undefined ? lt(auditLog.seq, q.beforeSeq) : undefined,
    );
  }

  /** Newest first. */
  list(q: AuditQuery): AuditRow[] {
    return this.db
      .select()
      .from(auditLog)
      .where(this.where(q))
      .orderBy(desc(auditLog.seq))
      .limit(Math.min(q.limit ?? 50, 1000))
      .all();
  }

  /** Oldest first, streamed (for export). */
  *iterate(q: AuditQuery): Generator<AuditRow> {
    let after = 0;
    for (;;) {
      const page = this.db
        .select()
        .from(auditLog)
        .where(and(this.where(q), gt(auditLog.seq, after)))
        .orderBy(asc(auditLog.seq))
        .limit(500)
        .all();
      yield* page;
      if (page.length < 500) return;
      after = page.at(-1)!.seq;
    }
  }

  /** All entries, or (given a query) the entries matching it, e.g. one tenant's. */
  count(q: AuditQuery = {}): number {
    return this.db.select({ n: sql<number>`count(*)` }).from(auditLog).where(this.where(q)).get()!.n;
  }

  /** Walks the whole chain and names the first broken entry. */
  verify(): VerifyResult {
    return verifyChain(this.db);
  }
}

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
  return walker.finish(db.select().from(auditHead).where(eq(auditHead.id, 1)).get());
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
