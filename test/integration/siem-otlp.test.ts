import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { ChainWalker, type AuditRow } from '../../server/audit/log.js';
import type { SiemEvent } from '../../server/siem/event.js';
import type { SiemForwarder } from '../../server/siem/forwarder.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCliOk } from '../helpers/cli.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The OTLP logs sink (issue 25): audit entries as OTLP/HTTP JSON log records to a collector
 * (here an HTTP server decoding the JSON `ExportLogsServiceRequest`) with the bearer token the
 * administrator gave; a collector answering 503 gets the batch again and nothing is lost.
 */
interface Attr {
  key: string;
  value: { stringValue?: string; intValue?: string };
}
interface LogRecord {
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: { stringValue: string };
  attributes: Attr[];
}
let app: TestApp;
let rx: Server;
let url: string;
let f: SiemForwarder | undefined;
const requests: { status: number; auth: string | undefined; records: LogRecord[]; service: string | undefined }[] = [];
let failNext = 0;
const TOKEN = 'otlp-collector-token-1234567890';

beforeAll(async () => {
  // The collector is on loopback: allowed here on purpose.
  app = await startTestApp({ entitlements: unrestricted, env: { ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' } });
  rx = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = failNext > 0 ? 503 : 200;
      if (failNext > 0) failNext--;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceLogs: { resource: { attributes: Attr[] }; scopeLogs: { scope: { name: string }; logRecords: LogRecord[] }[] }[];
      };
      const rl = body.resourceLogs[0]!;
      requests.push({ status, auth: req.headers.authorization, records: rl.scopeLogs.flatMap((s) => s.logRecords), service: rl.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{}' : '{"message":"busy"}');
    });
  });
  await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
  const a = rx.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/v1/logs`;
});

afterAll(async () => {
  await f?.stop();
  await app?.close();
  await new Promise<void>((r) => (rx ? rx.close(() => r()) : r()));
});

const attr = (r: LogRecord, key: string): string | undefined => {
  const v = r.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue;
};

// The first test's forwarder keeps running and the receiver is shared: later sinks would reach it too, so the order stays.
describe('OTLP logs sink', { timeout: 60_000, shuffle: false }, () => {
  it('sends every entry as a log record with the bearer token; a 503 is retried and nothing is lost', async () => {
    const added = await app.services.siem.sinks.add(sys(app.services), { name: 'otel', kind: 'otlp', config: { url }, token: TOKEN });
    expect(added).not.toHaveProperty('secret'); // the administrator's token is never echoed
    expect(JSON.stringify(await rawRows(app.services.store, sql`SELECT * FROM siem_sinks`))).not.toContain(TOKEN);
    const t = await seedTenant(app.services, 'oscar', ['owner', 'member']);
    await app.services.identity.keys.create(t.ctx, { name: 'oscar key', ownerUserId: t.users.member!.id });
    failNext = 2;
    f = app.services.siem.forwarder({ pollMs: 20, backoffBaseMs: 50, backoffMaxMs: 500, batchSize: 4, instanceId: 'fwd-otlp' }).start();
    const head = await app.services.siem.sinks.headSeq();
    const accepted = (): LogRecord[] => requests.filter((r) => r.status === 200).flatMap((r) => r.records);
    await waitFor(() => new Set(accepted().map((r) => attr(r, 'enclave.audit.id'))).size, { what: `all ${head} entries accepted`, until: (n) => n >= head });
    expect(requests.slice(0, 3).map((r) => r.status)).toEqual([503, 503, 200]);
    for (const r of requests) {
      expect(r.auth).toBe(`Bearer ${TOKEN}`);
      expect(r.service).toBe('enclave');
    }
    const seen = new Set<string>();
    const events = accepted()
      .filter((r) => {
        const id = attr(r, 'enclave.audit.id')!;
        return !seen.has(id) && seen.add(id);
      })
      .map((r) => {
        const e = JSON.parse(r.body.stringValue) as SiemEvent;
        // The attributes say the same as the body; the time is the entry's, in nanoseconds.
        expect(attr(r, 'enclave.audit.seq')).toBe(String(e.seq));
        expect(attr(r, 'enclave.audit.hash')).toBe(e.hash);
        expect(attr(r, 'enclave.audit.action')).toBe(e.action);
        expect(r.timeUnixNano).toBe(`${e.at}000000`);
        expect(r.severityText).toBe(e.outcome === 'denied' ? 'WARN' : 'INFO');
        return e;
      });
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    const walker = new ChainWalker();
    for (const e of events) {
      const row: AuditRow = { seq: e.seq, id: e.id, at: e.at, tenantRef: e.tenant_ref, actorType: e.actor_type as AuditRow['actorType'], actorId: e.actor_id, action: e.action, targetType: e.target_type, targetId: e.target_id, outcome: e.outcome as AuditRow['outcome'], reason: e.reason, ip: e.ip, userAgent: e.user_agent, requestId: e.request_id, details: e.details, prevHash: e.prev_hash, hash: e.hash };
      expect(walker.next(row)).toBeUndefined();
    }
  });

  it('refuses a token on a sink that is not otlp, and forbidden collector addresses by the egress rule', async () => {
    await expect(app.services.siem.sinks.add(sys(app.services), { name: 'hook-tok', kind: 'webhook', config: { url }, token: 'x' })).rejects.toThrow(/bearer token is for otlp/);
    await expect(app.services.siem.sinks.add(sys(app.services), { name: 'meta', kind: 'otlp', config: { url: 'http://169.254.169.254/v1/logs' } })).rejects.toThrow(/not allowed/);
  });

  it('the CLI reads the token from standard input, stores it encrypted and never prints it', async () => {
    const env = { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent', ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' };
    const r = await runCliOk(['siem', 'sinks', 'add', '--name', 'otel-cli', '--kind', 'otlp', '--url', url, '--token-stdin', '--json'], env, 'token-from-stdin-42\n');
    expect(r.stdout).not.toContain('token-from-stdin-42');
    expect(JSON.parse(r.stdout)).toMatchObject({ kind: 'otlp', config: { url } });
    expect(app.services.siem.sinks.secretOf(await app.services.siem.sinks.get('otel-cli'))).toBe('token-from-stdin-42');
  });
});

describe('console banner', () => {
  it('platform admins see a sink whose delivery fails with entries waiting; tenant admins do not', async () => {
    const s = app.services;
    // A collector that is not there (a closed loopback port): deliveries fail, entries wait.
    const { sink } = await s.siem.sinks.add(sys(s), { name: 'behind', kind: 'otlp', config: { url: 'http://127.0.0.1:9/v1/logs' } });
    await s.siem.sinks.failed(sink.id, 'connect ECONNREFUSED 127.0.0.1:9');
    await s.identity.users.create(sys(s), { email: 'root@siem-banner.test', password: PASSWORD, platformAdmin: true });
    const t = await seedTenant(s, 'siem-banner', ['owner']);
    const banners = async (email: string) => {
      const r = await call(app.url, '/api/ui/banners', { session: await login(app.url, email) });
      expect(r.status).toBe(200);
      return (r.body.banners as { level: string; message: string }[]).filter((b) => b.message.startsWith('SIEM delivery'));
    };
    const root = await banners('root@siem-banner.test');
    expect(root.find((b) => b.message.includes('"behind"'))).toMatchObject({ level: 'warning', message: expect.stringMatching(/is behind: [\d,]+ audit events? waiting; \d+ failed deliver(y|ies), last: .*ECONNREFUSED.*Nothing is lost/) });
    expect(await banners(t.users.owner!.email)).toEqual([]);
    // Caught up (cursor at the head, failures reset): the banner goes.
    const head = await s.siem.sinks.headSeq();
    await s.store.run(s.store.q.update(s.store.t.siemSinks).set({ cursorSeq: head, failures: 0 }).where(sql`${s.store.t.siemSinks.id} = ${sink.id}`));
    expect((await banners('root@siem-banner.test')).find((b) => b.message.includes('"behind"'))).toBeUndefined();
  });
});
