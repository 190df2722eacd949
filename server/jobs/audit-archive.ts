import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { asc, eq, gt } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import { entryHash, GENESIS, type AuditRow } from '../audit/log.js';

/**
 * Audit archive (schedule `audit-archive`, daily, when ENCLAVE_AUDIT_ARCHIVE_DAYS is set):
 * entries older than that many days are exported to `<dataDir>/audit-archive/` as JSON
 * lines, one file per run (`audit-<first seq>-<last seq>.jsonl`, at most 100,000 entries
 * each), oldest first, each line the stored row with its `prev_hash` and `hash`. A run
 * continues after the last archived entry, so the files form one chain from entry 1.
 *
 * Export only: the entries stay in the database. `enclave audit verify` walks the chain from
 * the genesis hash, so deleting old entries would make every later entry look tampered with.
 * verifyArchive() checks the archive on its own (every hash recomputed, every link) and that
 * its last entry is the database's entry of that seq (same hash).
 */
export const ARCHIVE_DIR = 'audit-archive';
const MAX_PER_FILE = 100_000;
const PAGE = 1000;
const FILE_RE = /^audit-(\d{12})-(\d{12})\.jsonl$/;

/** An archived entry: the audit_log row under its column names. */
export interface ArchivedEntry {
  seq: number;
  id: string;
  at: number;
  tenant_ref: string | null;
  actor_type: AuditRow['actorType'];
  actor_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: AuditRow['outcome'];
  reason: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

/** The audit_log columns under their SQL names (the archive's line format), on either dialect. */
function columns(store: Store) {
  const a = store.t.auditLog;
  return {
    seq: a.seq,
    id: a.id,
    at: a.at,
    tenant_ref: a.tenantRef,
    actor_type: a.actorType,
    actor_id: a.actorId,
    action: a.action,
    target_type: a.targetType,
    target_id: a.targetId,
    outcome: a.outcome,
    reason: a.reason,
    ip: a.ip,
    user_agent: a.userAgent,
    request_id: a.requestId,
    details: a.details,
    prev_hash: a.prevHash,
    hash: a.hash,
  };
}

/** The stored hash of entry `seq` (undefined: no such entry). */
async function hashOf(store: Store, seq: number): Promise<string | undefined> {
  const a = store.t.auditLog;
  return (await store.one(store.q.select({ hash: a.hash }).from(a).where(eq(a.seq, seq))))?.hash;
}

function toRow(e: ArchivedEntry): AuditRow {
  return {
    seq: e.seq,
    id: e.id,
    at: e.at,
    tenantRef: e.tenant_ref,
    actorType: e.actor_type,
    actorId: e.actor_id,
    action: e.action,
    targetType: e.target_type,
    targetId: e.target_id,
    outcome: e.outcome,
    reason: e.reason,
    ip: e.ip,
    userAgent: e.user_agent,
    requestId: e.request_id,
    details: e.details,
    prevHash: e.prev_hash,
    hash: e.hash,
  };
}

const pad = (n: number): string => String(n).padStart(12, '0');

/** The archive files, oldest first. */
export function archiveFiles(dataDir: string): { file: string; from: number; to: number }[] {
  const dir = path.join(dataDir, ARCHIVE_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => ({ f, m: FILE_RE.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null)
    .map(({ f, m }) => ({ file: path.join(dir, f), from: Number(m[1]), to: Number(m[2]) }))
    .sort((a, b) => a.from - b.from);
}

function lastLine(file: string): ArchivedEntry {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  return JSON.parse(lines.at(-1)!) as ArchivedEntry;
}

export interface ArchiveResult {
  readonly archived: number;
  readonly files: string[];
  /** The newest archived entry (after this run). */
  readonly through: number;
}

/** Exports entries with `at < before` that are not archived yet. Idempotent; safe to re-run after a crash. */
export async function archiveAudit(store: Store, dataDir: string, before: number): Promise<ArchiveResult> {
  const dir = path.join(dataDir, ARCHIVE_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of readdirSync(dir)) if (f.endsWith('.tmp')) rmSync(path.join(dir, f), { force: true });
  const existing = archiveFiles(dataDir);
  let after = 0;
  let prevHash = GENESIS;
  const last = existing.at(-1);
  if (last) {
    const tail = lastLine(last.file);
    const hash = await hashOf(store, tail.seq);
    if (hash !== tail.hash) {
      throw new Error(
        `audit_archive_mismatch: ${path.basename(last.file)} ends with entry ${tail.seq}, which ${hash ? 'differs from' : 'is not in'} this database's audit log; move ${dir} aside (it belongs to another database) and the next run starts a new archive`,
      );
    }
    after = tail.seq;
    prevHash = tail.hash;
  }
  // In chain order, up to the first entry at or after `before` (seq order is the chain's order).
  const a = store.t.auditLog;
  const next = async (): Promise<ArchivedEntry[]> => {
    const rows: ArchivedEntry[] = await store.all(store.q.select(columns(store)).from(a).where(gt(a.seq, after)).orderBy(asc(a.seq)).limit(PAGE));
    const stop = rows.findIndex((r) => r.at >= before);
    return stop < 0 ? rows : rows.slice(0, stop);
  };
  const files: string[] = [];
  let archived = 0;
  let rows = await next();
  while (rows.length) {
    const first = rows[0]!.seq;
    const tmp = path.join(dir, `audit-${pad(first)}.tmp`);
    const fd = openSync(tmp, 'w', 0o600);
    let n = 0;
    try {
      while (rows.length && n < MAX_PER_FILE) {
        const chunk: string[] = [];
        for (const r of rows) {
          if (r.prev_hash !== prevHash) throw new Error(`audit_chain_broken: entry ${r.seq} does not link to entry ${after}; run enclave audit verify`);
          chunk.push(JSON.stringify(r));
          prevHash = r.hash;
          after = r.seq;
          n++;
        }
        writeSync(fd, chunk.join('\n') + '\n');
        rows = await next();
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const final = path.join(dir, `audit-${pad(first)}-${pad(after)}.jsonl`);
    renameSync(tmp, final);
    files.push(final);
    archived += n;
  }
  return { archived, files, through: after };
}

export type ArchiveVerifyResult =
  | { ok: true; entries: number; through: number }
  | { ok: false; entries: number; problem: string };

/** Walks the archive: consecutive seqs from 1, every hash recomputed, every link, and the tail matches the database. */
export async function verifyArchive(dataDir: string, store?: Store): Promise<ArchiveVerifyResult> {
  let prevHash = GENESIS;
  let expect = 1;
  let entries = 0;
  for (const f of archiveFiles(dataDir)) {
    const lines = readFileSync(f.file, 'utf8').trimEnd().split('\n');
    for (const line of lines) {
      const e = JSON.parse(line) as ArchivedEntry;
      const bad = (problem: string): ArchiveVerifyResult => ({ ok: false, entries, problem: `${path.basename(f.file)}: entry ${e.seq}: ${problem}` });
      if (e.seq !== expect) return bad(`expected entry ${expect}`);
      if (e.prev_hash !== prevHash) return bad('does not link to the entry before it');
      const { hash: _h, prevHash: _p, ...fields } = toRow(e);
      if (entryHash(prevHash, fields) !== e.hash) return bad('its content does not match its hash');
      prevHash = e.hash;
      expect++;
      entries++;
    }
  }
  if (store && entries) {
    if ((await hashOf(store, expect - 1)) !== prevHash) return { ok: false, entries, problem: `the archive's last entry ${expect - 1} is not the database's entry ${expect - 1}` };
  }
  return { ok: true, entries, through: expect - 1 };
}
