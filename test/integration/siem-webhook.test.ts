import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { ChainWalker, type AuditRow } from '../../server/audit/log.js';
import { SIGNATURE_HEADER, verifySignature } from '../../server/metering/webhooks.js';
import type { SiemEvent } from '../../server/siem/event.js';
import type { SiemForwarder } from '../../server/siem/forwarder.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The HTTPS webhook sink (issue 25), added through the real CLI against a running app: every
 * batch is signed (X-Enclave-Signature, HMAC-SHA256 over "<t>.<body>" with the secret the CLI
 * printed once); a receiver answering 500 gets the batch again with exponential backoff and
 * nothing is lost; the egress rule refuses forbidden addresses when a sink is added. Also the
 * read-only admin API (platform administrators).
 */
let app: TestApp;
let rx: Server;
let rxUrl: string;
const forwarders: SiemForwarder[] = [];
interface Hit {
  at: number;
  status: number;
  body: string;
  signature: string | undefined;
  delivery: string | undefined;
}
const hits: Hit[] = [];
/** How many of the next requests the receiver answers with 500. */
let failNext = 0;

const cliEnv = (extra: Record<string, string> = {}) => ({ ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent', ...extra });
// The receiver is on loopback: allowed here on purpose (the default egress rule refuses it).
const LOOPBACK_OK = { ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' };

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted, env: LOOPBACK_OK });
  rx = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = failNext > 0 ? 500 : 200;
      if (failNext > 0) failNext--;
      hits.push({ at: Date.now(), status, body: Buffer.concat(chunks).toString('utf8'), signature: req.headers[SIGNATURE_HEADER] as string | undefined, delivery: req.headers['x-enclave-delivery'] as string | undefined });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'down');
    });
  });
  await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
  const a = rx.address();
  rxUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/siem`;
});

afterAll(async () => {
  for (const f of forwarders) await f.stop();
  await app?.close();
  await new Promise<void>((r) => (rx ? rx.close(() => r()) : r()));
});

function asRow(e: SiemEvent): AuditRow {
  return { seq: e.seq, id: e.id, at: e.at, tenantRef: e.tenant_ref, actorType: e.actor_type as AuditRow['actorType'], actorId: e.actor_id, action: e.action, targetType: e.target_type, targetId: e.target_id, outcome: e.outcome as AuditRow['outcome'], reason: e.reason, ip: e.ip, userAgent: e.user_agent, requestId: e.request_id, details: e.details, prevHash: e.prev_hash, hash: e.hash };
}

// One sink's story in order (added with the CLI, then delivering, then listed and removed): { shuffle: false }.
describe('webhook sink', { timeout: 120_000, shuffle: false }, () => {
  let secret: string;

  it('is added with the CLI, which prints the signing secret once; the egress rule refuses forbidden addresses', async () => {
    // Default egress rule (no ENCLAVE_TENANT_PROVIDER_NETWORKS): loopback and cloud metadata are refused.
    for (const url of ['http://127.0.0.1:9/hook', 'http://169.254.169.254/latest/meta-data', 'http://localhost:8080/x']) {
      const r = await runCli(['siem', 'sinks', 'add', '--name', 'evil', '--kind', 'webhook', '--url', url], cliEnv());
      expect(r.code, url).not.toBe(0);
      expect(r.stderr).toMatch(/siem_target_forbidden/);
    }
    const sys1 = await runCli(['siem', 'sinks', 'add', '--name', 'evil', '--kind', 'syslog', '--host', 'localhost'], cliEnv());
    expect(sys1.stderr).toMatch(/siem_target_forbidden/);
    expect(await app.services.siem.sinks.rows()).toEqual([]);
    const denied = await app.services.identity.audit.list({ action: 'siem.sink.add', outcome: 'denied' });
    expect(denied.length).toBe(4);
    // Bad input: a clear error, nothing saved.
    const bad = await runCli(['siem', 'sinks', 'add', '--name', 'Bad Name', '--kind', 'webhook', '--url', rxUrl], cliEnv(LOOPBACK_OK));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid_name/);
    const r = await runCliOk(['siem', 'sinks', 'add', '--name', 'soc-hook', '--kind', 'webhook', '--url', rxUrl, '--json'], cliEnv(LOOPBACK_OK));
    const added = JSON.parse(r.stdout) as { id: string; secret: string; kind: string };
    expect(added.kind).toBe('webhook');
    expect(added.secret).toMatch(/^whsec_/);
    secret = added.secret;
    // Never shown again, never stored in clear.
    const list = await runCliOk(['siem', 'sinks', 'list', '--json'], cliEnv());
    expect(list.stdout).not.toContain(secret);
    expect(JSON.stringify(await rawRows(app.services.store, sql`SELECT * FROM siem_sinks`))).not.toContain(secret);
  });

  it('signs every batch; a receiver answering 500 gets it again with backoff, and nothing is lost', async () => {
    failNext = 3;
    const t = await seedTenant(app.services, 'kilo', ['owner', 'member']);
    await app.services.identity.keys.create(t.ctx, { name: 'kilo key', ownerUserId: t.users.member!.id });
    const base = 100;
    const f = app.services.siem.forwarder({ pollMs: 20, backoffBaseMs: base, backoffMaxMs: 2_000, batchSize: 5, instanceId: 'fwd-hook' });
    forwarders.push(f);
    f.start();
    const head = await app.services.siem.sinks.headSeq();
    const accepted = (): SiemEvent[] => hits.filter((h) => h.status === 200).flatMap((h) => (JSON.parse(h.body) as { events: SiemEvent[] }).events);
    await waitFor(() => new Set(accepted().map((e) => e.id)).size, { what: `all ${head} entries accepted`, until: (n) => n >= head });
    // Every request is signed with the secret the CLI printed (and not with another one).
    const nowS = Date.now() / 1000;
    for (const h of hits) {
      expect(verifySignature(secret, h.body, h.signature, nowS)).toBe(true);
      expect(verifySignature(`${secret}x`, h.body, h.signature, nowS)).toBe(false);
      expect((JSON.parse(h.body) as { type: string }).type).toBe('enclave.audit.batch');
    }
    // The first three attempts failed: the same batch each time, each after a longer pause.
    expect(hits.slice(0, 4).map((h) => h.status)).toEqual([500, 500, 500, 200]);
    expect(new Set(hits.slice(0, 4).map((h) => h.delivery)).size).toBe(1);
    for (let i = 1; i <= 3; i++) expect(hits[i]!.at - hits[i - 1]!.at, `pause before attempt ${i + 1}`).toBeGreaterThanOrEqual(base * 2 ** (i - 1) - 5);
    // Nothing lost, nothing out of order, the chain checks out from entry 1.
    const seen = new Set<string>();
    const events = accepted().filter((e) => !seen.has(e.id) && seen.add(e.id));
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    const walker = new ChainWalker();
    for (const e of events) expect(walker.next(asRow(e))).toBeUndefined();
    // Events carry no secrets and no prompts: the key's secret never appears.
    expect(hits.map((h) => h.body).join('')).not.toMatch(/enk_[0-9A-Za-z]{20,}/);
    const sink = await waitFor(() => app.services.siem.sinks.get('soc-hook'), { what: 'the cursor at the head', until: (s) => s.cursorSeq >= head });
    expect(sink.failures).toBe(0);
    expect(await app.services.metrics.registry.metrics()).toMatch(/enclave_siem_delivery_failures_total\{sink="soc-hook"\} 3/);
  });

  it('shows sinks (backlog, last error; never the secret) to platform administrators in the admin API and the CLI', async () => {
    await app.services.identity.users.create(sys(app.services), { email: 'root@siem.test', password: PASSWORD, platformAdmin: true });
    const root = await login(app.url, 'root@siem.test');
    const r = await call(app.url, '/admin/api/siem/sinks', { session: root });
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual([expect.objectContaining({ object: 'siem_sink', name: 'soc-hook', kind: 'webhook', enabled: true, config: { url: rxUrl } })]);
    expect(typeof r.body.data[0].backlog).toBe('number');
    expect(JSON.stringify(r.body)).not.toContain(secret);
    const t = await seedTenant(app.services, 'lima', ['owner']);
    const owner = await login(app.url, t.users.owner!.email);
    expect((await call(app.url, '/admin/api/siem/sinks', { session: owner })).status).toBe(403);
    for (const f of forwarders.splice(0)) await f.stop(); // from here on, only what the CLI sends reaches the receiver
    // `sinks test` sends the newest entry now (outside the cursor) and reports the result; audited.
    const before = hits.length;
    const cursor = (await app.services.siem.sinks.get('soc-hook')).cursorSeq;
    const ok = JSON.parse((await runCliOk(['siem', 'sinks', 'test', 'soc-hook', '--json'], cliEnv(LOOPBACK_OK))).stdout) as { ok: boolean; seq: number };
    expect(ok.ok).toBe(true);
    expect(hits.length).toBe(before + 1);
    expect(verifySignature(secret, hits.at(-1)!.body, hits.at(-1)!.signature, Date.now() / 1000)).toBe(true);
    expect((JSON.parse(hits.at(-1)!.body) as { events: SiemEvent[] }).events.map((e) => e.seq)).toEqual([ok.seq]);
    failNext = 1;
    const failed = await runCli(['siem', 'sinks', 'test', 'soc-hook'], cliEnv(LOOPBACK_OK));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/delivery failed: webhook_rejected: the receiver answered HTTP 500/);
    expect((await app.services.siem.sinks.get('soc-hook')).cursorSeq).toBeGreaterThanOrEqual(cursor); // a test never moves the cursor back
    expect((await app.services.identity.audit.list({ action: 'siem.sink.test' })).map((e) => JSON.parse(e.details).ok)).toEqual([false, true]);
    // disable → remove through the CLI, audited.
    await runCliOk(['siem', 'sinks', 'disable', 'soc-hook'], cliEnv());
    expect((await app.services.siem.sinks.get('soc-hook')).enabled).toBe(false);
    await runCliOk(['siem', 'sinks', 'remove', 'soc-hook'], cliEnv());
    expect(await app.services.siem.sinks.rows()).toEqual([]);
    const actions = (await app.services.identity.audit.list({ limit: 20 })).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['siem.sink.disable', 'siem.sink.remove']));
    const gone = await runCli(['siem', 'sinks', 'remove', 'soc-hook'], cliEnv());
    expect(gone.code).toBe(3);
  });
});
