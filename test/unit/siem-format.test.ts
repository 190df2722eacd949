import { describe, expect, it } from 'vitest';
import type { AuditRow } from '../../server/audit/log.js';
import { backoffMs } from '../../server/siem/forwarder.js';
import { octetFrame, syslogMessage, toEvent } from '../../server/siem/event.js';
import { parseRfc5424, splitFrames } from '../fakes/syslog-receiver.js';

const row: AuditRow = {
  seq: 7,
  id: 'aud_0001',
  at: Date.UTC(2026, 11, 3, 14, 30, 0, 123),
  tenantRef: 'ten_1',
  actorType: 'user',
  actorId: 'usr_1',
  action: 'key.create',
  targetType: 'api_key',
  targetId: 'key_1',
  outcome: 'denied',
  reason: 'weird "]\\ reason',
  ip: '10.0.0.7',
  userAgent: 'ua',
  requestId: 'req_1',
  details: '{"name":"clé ✓"}',
  prevHash: 'a'.repeat(64),
  hash: 'b'.repeat(64),
};

describe('SIEM event formats', () => {
  it('an RFC 5424 message with escaped structured data and the event JSON, parsed back intact', () => {
    const e = toEvent({ ...row, id: 'aud_"]\\x' });
    const m = parseRfc5424(syslogMessage(e, 'host name'));
    expect(m).toMatchObject({ pri: 13 * 8 + 5, version: 1, timestamp: '2026-12-03T14:30:00.123Z', hostname: 'host_name', appName: 'enclave', procId: '-', msgId: 'key.create' });
    expect(m.sd['enclave@32473']).toEqual({ seq: '7', id: 'aud_"]\\x', hash: row.hash, prev_hash: row.prevHash, outcome: 'denied', tenant: 'ten_1' });
    expect(JSON.parse(m.msg)).toEqual(e);
    // details stay the stored text byte for byte (the chain hashes it).
    expect((JSON.parse(m.msg) as { details: string }).details).toBe(row.details);
  });

  it('octet-counting counts bytes, not characters (multi-byte UTF-8), and frames split back exactly', () => {
    const a = syslogMessage(toEvent(row), 'h');
    const b = syslogMessage(toEvent({ ...row, seq: 8, details: '{"x":"ü€𝄞"}' }), 'h');
    const buf = Buffer.concat([octetFrame(a), octetFrame(b)]);
    expect(buf.subarray(0, buf.indexOf(0x20)).toString()).toBe(String(Buffer.byteLength(a)));
    expect(Buffer.byteLength(a)).toBeGreaterThan(a.length);
    // Split anywhere: nothing is parsed until a frame is whole.
    const cut = 50;
    const first = splitFrames(buf.subarray(0, cut));
    expect(first.messages).toEqual([]);
    const rest = splitFrames(Buffer.concat([first.rest, buf.subarray(cut)]));
    expect(rest.messages).toEqual([a, b]);
    expect(rest.rest.length).toBe(0);
  });

  it('MSGID is printable ASCII of at most 32 characters', () => {
    const m = parseRfc5424(syslogMessage(toEvent({ ...row, action: `a.${'x'.repeat(40)} é` }), 'h'));
    expect(m.msgId).toMatch(/^[\x21-\x7e]{1,32}$/);
  });

  it('backoff doubles from the base and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 10, 100].map((f) => backoffMs(f, 1000, 60_000))).toEqual([0, 1000, 2000, 4000, 8000, 60_000, 60_000]);
  });
});
