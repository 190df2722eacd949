import { writeFileSync } from 'node:fs';
import forge from 'node-forge';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueServerCert } from '../../installer/tls.js';
import { unrestricted } from '../../server/access/entitlements.js';
import { ChainWalker, type AuditRow } from '../../server/audit/log.js';
import { lockKey, type SiemForwarder } from '../../server/siem/forwarder.js';
import type { SiemEvent } from '../../server/siem/event.js';
import { SyslogReceiver } from '../fakes/syslog-receiver.js';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Audit streaming over syslog RFC 5424 / TLS (issue 25) into a real TLS receiver
 * (test/fakes/syslog-receiver.ts). Delivery is at-least-once: a batch the receiver did not
 * confirm (it closes its side after reading the whole connection) is sent again, so a receiver
 * that is killed mid-run may see an event twice — every event carries seq, id and hash for
 * de-duplication; after de-duplication by id there is no gap and no reordering, and the chain
 * checks out from entry 1.
 */
let app: TestApp;
let caFile: string;
let tls: { key: string; cert: string };
let ca: { keyPem: string; certPem: string };
const forwarders: SiemForwarder[] = [];
const receivers: SyslogReceiver[] = [];

const FAST = { pollMs: 30, backoffBaseMs: 50, backoffMaxMs: 400 };

function asRow(e: SiemEvent): AuditRow {
  return {
    seq: e.seq,
    id: e.id,
    at: e.at,
    tenantRef: e.tenant_ref,
    actorType: e.actor_type as AuditRow['actorType'],
    actorId: e.actor_id,
    action: e.action,
    targetType: e.target_type,
    targetId: e.target_id,
    outcome: e.outcome as AuditRow['outcome'],
    reason: e.reason,
    ip: e.ip,
    userAgent: e.user_agent,
    requestId: e.request_id,
    details: e.details,
    prevHash: e.prev_hash,
    hash: e.hash,
  };
}

/** De-duplicated by id, keeping the first arrival; fails on reordering (a seq lower than one seen before, not a duplicate). */
function dedupe(events: SiemEvent[]): SiemEvent[] {
  const seen = new Set<string>();
  const out: SiemEvent[] = [];
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    if (out.length) expect(e.seq, `event ${e.id} arrived after a later one`).toBe(out.at(-1)!.seq + 1);
    out.push(e);
  }
  return out;
}

/** Every entry 1..head, in order, with a chain that checks out from the genesis hash. */
function expectWholeChain(events: SiemEvent[], head: number): void {
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  const walker = new ChainWalker();
  for (const e of events) expect(walker.next(asRow(e))).toBeUndefined();
}

/** A client certificate (extKeyUsage clientAuth) issued by `ca`, for mutual TLS. */
function issueClientCert(ca: { keyPem: string; certPem: string }, cn: string): { keyPem: string; certPem: string } {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '0a1b2c';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), certPem: forge.pki.certificateToPem(cert) };
}

async function workload(slug: string): Promise<void> {
  const t = await seedTenant(app.services, slug, ['owner', 'member']);
  await app.services.identity.keys.create(t.ctx, { name: `${slug} key`, ownerUserId: t.users.member!.id });
}

const head = (): Promise<number> => app.services.siem.sinks.headSeq();

beforeAll(async () => {
  ca = createCa('siem test CA');
  const leaf = issueServerCert(ca, ['localhost', '127.0.0.1']);
  tls = { key: leaf.keyPem, cert: leaf.certPem };
  caFile = path.join(tempDir('enclave-siem-ca-'), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  // The receiver is on loopback: allowed here on purpose (the default egress rule refuses it).
  app = await startTestApp({ entitlements: unrestricted, env: { ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' } });
});

// Each test runs its own forwarders and sinks (any order, --sequence.shuffle included): every
// forwarder competes for every enabled sink, so none survives its test.
afterEach(async () => {
  for (const f of forwarders.splice(0)) await f.stop();
  for (const r of await app.services.siem.sinks.rows()) if (r.enabled) await app.services.siem.sinks.setEnabled(sys(app.services), r.id, false);
});

afterAll(async () => {
  for (const f of forwarders) await f.stop();
  for (const r of receivers) await r.kill();
  await app?.close();
});

function forwarder(instanceId: string): SiemForwarder {
  const f = app.services.siem.forwarder({ ...FAST, instanceId });
  forwarders.push(f);
  return f.start();
}

async function receiver(): Promise<SyslogReceiver> {
  const r = await new SyslogReceiver(tls).start(0);
  receivers.push(r);
  return r;
}

describe('syslog over TLS', { timeout: 60_000 }, () => {
  it('gets every audit entry of a workload, in order, with seq, id and hash, and the chain checks out', async () => {
    const rx = await receiver();
    const { sink } = await app.services.siem.sinks.add(sys(app.services), { name: 'soc', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile, hostname: 'enclave-test' } });
    await workload('alpha');
    await workload('bravo');
    const f = forwarder('fwd-a');
    const want = await head();
    await waitFor(() => rx.messages.length, { what: `${want} syslog messages`, until: (n) => n >= want });
    expect(rx.errors).toEqual([]);
    const events = rx.events<SiemEvent>();
    // The normal case delivers each event once.
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    expectWholeChain(events, want);
    // The structured data carries seq, id and hash; the header what a SIEM files it under.
    const m = rx.messages.find((x) => x.msgId === 'tenant.create')!;
    expect(m).toBeDefined();
    const e = JSON.parse(m.msg) as SiemEvent;
    expect(m.sd['enclave@32473']).toMatchObject({ seq: String(e.seq), id: e.id, hash: e.hash, prev_hash: e.prev_hash, outcome: 'allowed' });
    expect(m).toMatchObject({ version: 1, pri: 13 * 8 + 6, hostname: 'enclave-test', appName: 'enclave' });
    // The adding of the sink itself is audited (and streamed).
    expect(events.some((x) => x.action === 'siem.sink.add' && x.target_id === sink.id)).toBe(true);
    await waitFor(async () => (await app.services.siem.sinks.get('soc')).cursorSeq, { what: 'the cursor at the head', until: (c) => c >= want });
    const metrics = await app.services.metrics.registry.metrics();
    expect(metrics).toMatch(/enclave_siem_backlog_events\{sink="soc"\} 0/);
    expect(metrics).toMatch(new RegExp(`enclave_siem_delivered_total\\{sink="soc"\\} ${want}`));
    await f.stop();
    await app.services.siem.sinks.setEnabled(sys(app.services), 'soc', false);
    await rx.kill();
  });

  it('loses nothing when the receiver is killed mid-run and comes back (at-least-once, de-duplicated by id)', async () => {
    const rx = await receiver();
    await app.services.siem.sinks.add(sys(app.services), { name: 'soc-restart', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile } });
    forwarder('fwd-r');
    await workload('charlie');
    await waitFor(() => rx.messages.length, { what: 'the first deliveries', until: (n) => n >= 5 });
    // Killed while the workload goes on: events keep being written to the audit log.
    const killing = rx.kill();
    await workload('delta');
    await killing;
    await workload('echo');
    const down = await waitFor(() => app.services.siem.sinks.get('soc-restart'), { what: 'a failed delivery while the receiver is down', until: (s) => s.failures > 0 });
    expect(down.lastError).toMatch(/syslog_/);
    const backlog = (await app.services.siem.sinks.list()).find((s) => s.name === 'soc-restart')!.backlog;
    expect(backlog).toBeGreaterThan(0);
    expect(await app.services.metrics.registry.metrics()).toMatch(new RegExp(`enclave_siem_backlog_events\\{sink="soc-restart"\\} [1-9]`));
    await rx.start(); // the same port
    await workload('foxtrot');
    const want = await head();
    await waitFor(() => new Set(rx.events<SiemEvent>().map((e) => e.id)).size, { what: `all ${want} entries after the restart`, until: (n) => n >= want });
    expect(rx.errors).toEqual([]);
    const events = dedupe(rx.events<SiemEvent>());
    expectWholeChain(events, want);
    const after = await waitFor(() => app.services.siem.sinks.get('soc-restart'), { what: 'the sink healthy again', until: (s) => s.failures === 0 && s.cursorSeq >= want });
    expect(after.lastError).toBeNull();
    expect(await app.services.metrics.registry.metrics()).toMatch(/enclave_siem_delivery_failures_total\{sink="soc-restart"\} [1-9]/);
    for (const f of forwarders.splice(0)) await f.stop();
    await app.services.siem.sinks.setEnabled(sys(app.services), 'soc-restart', false);
    await rx.kill();
  });

  it('one forwarder per sink: two instances deliver each event once; when the holder stops, the other takes over', async () => {
    const rx = await receiver();
    const { sink } = await app.services.siem.sinks.add(sys(app.services), { name: 'soc-two', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile }, from: 'now' });
    const start = sink.cursor_seq;
    const a = forwarder('fwd-one');
    const b = forwarder('fwd-two');
    for (const s of ['golf', 'hotel', 'india']) await workload(s);
    let want = await head();
    await waitFor(() => rx.messages.length, { what: `${want - start} messages`, until: (n) => n >= want - start });
    const holder = await app.services.redis.get(lockKey(sink.id));
    expect(['fwd-one', 'fwd-two']).toContain(holder);
    await (holder === 'fwd-one' ? a : b).stop();
    expect(await app.services.redis.get(lockKey(sink.id))).toBeNull(); // released on stop
    await workload('juliet');
    want = await head();
    await waitFor(() => rx.messages.length, { what: 'the other forwarder taking over', until: (n) => n >= want - start });
    await waitFor(() => app.services.redis.get(lockKey(sink.id)), { what: 'the lock with the other forwarder', until: (v) => v !== null && v !== holder });
    const events = rx.events<SiemEvent>();
    // No event twice in the normal case, none missing, in order.
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: want - start }, (_, i) => start + i + 1));
    expect(rx.errors).toEqual([]);
  });

  it('a forwarder stopped while a batch is in flight lets it finish: the next holder resends nothing', async () => {
    const rx = await receiver();
    const { sink } = await app.services.siem.sinks.add(sys(app.services), { name: 'soc-handover', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile }, from: 'now' });
    const start = sink.cursor_seq;
    rx.holdAcks = true;
    const a = forwarder('fwd-inflight');
    await workload('handover-one');
    // The batch has reached the receiver, which has not confirmed it yet: it is in flight.
    await waitFor(() => rx.heldCount, { what: 'a batch read and held unconfirmed', until: (n) => n >= 1 });
    const stopped = a.stop();
    rx.release();
    await stopped;
    // The held batch was confirmed and counted: the cursor is at the last entry the receiver has.
    const got = rx.events<SiemEvent>().map((e) => e.seq);
    expect(got.length).toBeGreaterThan(0);
    expect((await app.services.siem.sinks.get('soc-handover')).cursorSeq).toBe(got.at(-1));
    forwarder('fwd-next');
    await workload('handover-two');
    const want = await head();
    await waitFor(async () => (await app.services.siem.sinks.get('soc-handover')).cursorSeq, { what: 'the next holder delivering the rest', until: (c) => c === want });
    expect(rx.events<SiemEvent>().map((e) => e.seq)).toEqual(Array.from({ length: want - start }, (_, i) => start + i + 1));
  });

  it('refuses a receiver certificate the configured CA did not sign (nothing delivered, the cursor stays)', async () => {
    const other = createCa('someone else');
    const rx = await receiver();
    const bad = path.join(tempDir('enclave-siem-ca-'), 'other.pem');
    writeFileSync(bad, other.certPem);
    await app.services.siem.sinks.add(sys(app.services), { name: 'soc-badca', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: bad } });
    forwarder('fwd-badca');
    const s = await waitFor(() => app.services.siem.sinks.get('soc-badca'), { what: 'a refused TLS handshake', until: (x) => x.failures > 0 });
    expect(s.lastError).toMatch(/syslog_unreachable/);
    expect(s.cursorSeq).toBe(0);
    expect(rx.messages).toEqual([]);
  });
  it('mutual TLS: a receiver that requires a client certificate gets the entries from a sink that has one, and refuses one without', async () => {
    const client = issueClientCert(ca, 'enclave-siem-client');
    const dir = tempDir('enclave-siem-mtls-');
    const certFile = path.join(dir, 'client.pem');
    const keyFile = path.join(dir, 'client.key');
    writeFileSync(certFile, client.certPem);
    writeFileSync(keyFile, client.keyPem);
    const rx = new SyslogReceiver({ ...tls, ca: ca.certPem, requestCert: true });
    receivers.push(await rx.start(0));
    await app.services.siem.sinks.add(sys(app.services), { name: 'soc-anon', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile }, from: 'now' });
    const { sink } = await app.services.siem.sinks.add(sys(app.services), { name: 'soc-mtls', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile, cert_file: certFile, key_file: keyFile }, from: 'now' });
    forwarder('fwd-mtls');
    await workload('lima');
    const want = await head();
    await waitFor(() => rx.messages.length, { what: 'the mutual-TLS sink delivering', until: (n) => n >= want - sink.cursor_seq });
    const anon = await waitFor(() => app.services.siem.sinks.get('soc-anon'), { what: 'the sink without a client certificate refused', until: (x) => x.failures > 0 });
    expect(anon.lastError).toMatch(/syslog_/);
    expect(rx.events<SiemEvent>().map((e) => e.seq)).toEqual(Array.from({ length: want - sink.cursor_seq }, (_, i) => sink.cursor_seq + i + 1));
    // A key without its certificate is refused when the sink is added.
    await expect(app.services.siem.sinks.add(sys(app.services), { name: 'soc-half', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, key_file: keyFile } })).rejects.toThrow(/cert_file and key_file go together/);
  });
});
