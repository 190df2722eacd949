import { hostname as osHostname } from 'node:os';
import type { AuditRow } from '../audit/log.js';

/**
 * What a SIEM receives for one audit entry: the stored row under its column names — the same
 * shape as an audit archive line (server/jobs/audit-archive.ts) — plus `type` and an ISO `time`.
 * `details` stays the stored JSON text, byte for byte, so a receiver can recompute the chain:
 *
 *   hash = sha256(prev_hash + "\n" + JSON.stringify([seq, id, at, tenant_ref, actor_type, actor_id,
 *          action, target_type, target_id, outcome, reason, ip, user_agent, request_id, details]))
 *
 * and check that each event's prev_hash is the hash of the event before it (seq − 1). Audit
 * entries never carry prompts, completions or secrets (server/audit/log.ts scrubs details), and
 * nothing else is added here.
 */
export interface SiemEvent {
  readonly type: 'enclave.audit';
  readonly time: string;
  readonly seq: number;
  readonly id: string;
  readonly at: number;
  readonly tenant_ref: string | null;
  readonly actor_type: string;
  readonly actor_id: string | null;
  readonly action: string;
  readonly target_type: string | null;
  readonly target_id: string | null;
  readonly outcome: string;
  readonly reason: string | null;
  readonly ip: string | null;
  readonly user_agent: string | null;
  readonly request_id: string | null;
  readonly details: string;
  readonly prev_hash: string;
  readonly hash: string;
}

export function toEvent(r: AuditRow): SiemEvent {
  return {
    type: 'enclave.audit',
    time: new Date(r.at).toISOString(),
    seq: r.seq,
    id: r.id,
    at: r.at,
    tenant_ref: r.tenantRef,
    actor_type: r.actorType,
    actor_id: r.actorId,
    action: r.action,
    target_type: r.targetType,
    target_id: r.targetId,
    outcome: r.outcome,
    reason: r.reason,
    ip: r.ip,
    user_agent: r.userAgent,
    request_id: r.requestId,
    details: r.details,
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

/** RFC 5424 facility 13 ("log audit"); severity 6 (informational) for allowed, 5 (notice) for denied. */
const FACILITY_LOG_AUDIT = 13;
/** SD-ID of our structured data. 32473 is the documentation enterprise number (RFC 5612). */
export const SD_ID = 'enclave@32473';

/** PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]`. */
function sdValue(v: string): string {
  return v.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** HOSTNAME / APP-NAME / MSGID: printable US-ASCII without spaces, bounded, `-` when empty. */
function token(v: string | null | undefined, max: number): string {
  const t = (v ?? '').replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return t || '-';
}

export function defaultSyslogHostname(): string {
  return token(osHostname(), 255);
}

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME enclave - MSGID [enclave@32473 seq= id= hash=
 * prev_hash= outcome= tenant=] BOM<event JSON>`. MSGID is the audit action.
 */
export function syslogMessage(e: SiemEvent, hostname: string): string {
  const pri = FACILITY_LOG_AUDIT * 8 + (e.outcome === 'denied' ? 5 : 6);
  const sd = [`seq="${e.seq}"`, `id="${sdValue(e.id)}"`, `hash="${e.hash}"`, `prev_hash="${e.prev_hash}"`, `outcome="${sdValue(e.outcome)}"`];
  if (e.tenant_ref) sd.push(`tenant="${sdValue(e.tenant_ref)}"`);
  return `<${pri}>1 ${e.time} ${token(hostname, 255)} enclave - ${token(e.action, 32)} [${SD_ID} ${sd.join(' ')}] \uFEFF${JSON.stringify(e)}`;
}

/** Octet-counting framing (RFC 5425 §4.3, RFC 6587 §3.4.1): `MSG-LEN SP SYSLOG-MSG`, the length in bytes. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
