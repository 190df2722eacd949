import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../server/jobs/runtime.js';
import { webhookJobId } from '../../server/jobs/webhooks.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { verifySignature } from '../../server/metering/webhooks.js';
import { testConfig } from '../helpers/app.js';
import { call, login, sys, type Session } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/** A real receiver on 127.0.0.1: answers 500 to the first `failFirst` deliveries, then 204. */
class Receiver {
  readonly hits: { headers: IncomingHttpHeaders; body: string; at: number; answered: number }[] = [];
  failFirst = 2;
  private server!: Server;
  url = '';
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answered = this.hits.length < this.failFirst ? 500 : 204;
        this.hits.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), answered });
        res.statusCode = answered;
        res.end(answered === 500 ? 'not yet' : undefined);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/enclave`;
    return this;
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

let env: GatewayEnv;
let owner: Session;
let receiver: Receiver;
let worker: JobWorker | undefined;
beforeAll(async () => {
  // The receiver listens on loopback, which the webhook egress rule refuses unless configured.
  env = await gatewayEnv({ config: testConfig({ ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.1' }) });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b' });
  const s = env.app.services;
  await s.metering.plans.upsert(sys(s), { name: 'small', limits: { monthly_tokens: 10 } });
  await s.metering.plans.assign(sys(s), env.tenant.tenant.id, 'small');
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  receiver = await new Receiver().start();
});
afterAll(async () => {
  await worker?.close();
  await env?.close();
  await receiver?.close();
});

// In order, also under --sequence.shuffle: the webhook URL, secret and thresholds the first test
// sets are what the delivery test's notification is sent with (and its secret verified against).
describe('soft-limit webhooks', { shuffle: false }, () => {
  it('only http(s) URLs without credentials are accepted; setting one fetches nothing and issues a secret once', async () => {
    const u = env.app.url;
    const tid = env.tenant.tenant.id;
    for (const bad of ['ftp://127.0.0.1/x', 'javascript:alert(1)', 'file:///etc/passwd', 'http://user:pw@127.0.0.1/x', 'not a url']) {
      const r = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { webhook_url: bad } });
      expect(r.status, bad).toBe(400);
      expect(r.body.error.param).toBe('webhook_url');
    }
    expect((await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { rotate_webhook_secret: true } })).status).toBe(400);

    const r = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { webhook_url: receiver.url, alert_thresholds: [50] } });
    expect(r.status).toBe(200);
    expect(r.body.webhook_url).toBe(receiver.url);
    expect(r.body.webhook_secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    // Stored encrypted, never in clear.
    const stored = (await env.app.services.metering.repo.webhookSecret(tid))!;
    expect(stored.startsWith('enc:v1:')).toBe(true);
    expect(stored).not.toContain(r.body.webhook_secret);
    // Shown once: a later update does not return it again.
    const again = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { alert_thresholds: [50] } });
    expect(again.body.webhook_secret).toBeUndefined();
    expect(await env.app.services.metering.webhookSecrets.get(tid)).toBe(r.body.webhook_secret);
    expect(receiver.hits).toHaveLength(0);
  });

  it('a notification is queued on the maintenance lane, signed, retried after failures and marked delivered on 2xx', async () => {
    const s = env.app.services;
    const tid = env.tenant.tenant.id;
    const secret = (await s.metering.webhookSecrets.get(tid))!;
    // 7 tokens of a 10-token plan: crosses the 50 % threshold.
    const res = await call(env.app.url, '/v1/chat/completions', { method: 'POST', key: env.key, body: { model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 } });
    expect(res.status).toBe(200);
    await waitFor(async () => (await s.metering.repo.notifications(tid, false)).length, { until: (k) => k === 1, what: 'one notification' });
    const n = (await s.metering.repo.notifications(tid, false))[0]!;
    expect(n).toMatchObject({ limitName: 'monthly_tokens', threshold: 50, webhookDeliveredAt: null });

    // The API process only enqueued it: the job waits on the maintenance lane, nothing was fetched.
    const job = (await waitFor(() => s.jobs.queues.queue('maintenance').getJob(webhookJobId(n.id)), { what: 'the webhook job on the maintenance lane' }))!;
    expect(job.data).toEqual({ tenantId: tid, notificationId: n.id });
    // Without a worker nothing takes it: still waiting (or delayed), never fetched.
    expect(['waiting', 'delayed', 'prioritized']).toContain(await job.getState());
    expect(receiver.hits).toHaveLength(0);

    worker = await startWorker(s);
    await waitFor(async () => (await s.metering.repo.notification(tid, n.id))!.webhookDeliveredAt, { timeout: 20_000, what: 'the webhook delivered' });
    expect(receiver.hits.map((h) => h.answered)).toEqual([500, 500, 204]);
    // Retried with backoff, not immediately.
    expect(receiver.hits[1]!.at - receiver.hits[0]!.at).toBeGreaterThanOrEqual(400);
    expect(receiver.hits[2]!.at - receiver.hits[1]!.at).toBeGreaterThanOrEqual(900);

    for (const h of receiver.hits) {
      expect(h.headers['content-type']).toBe('application/json');
      expect(h.headers['x-enclave-event']).toBe('quota.alert');
      expect(h.headers['x-enclave-delivery']).toBe(n.id);
      const sig = String(h.headers['x-enclave-signature']);
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
      expect(m, sig).not.toBeNull();
      // Verified independently of the server's code: HMAC-SHA256(secret, "<t>.<body>").
      expect(m![2]).toBe(createHmac('sha256', secret).update(`${m![1]}.${h.body}`).digest('hex'));
      expect(Math.abs(Number(m![1]) - Date.now() / 1000)).toBeLessThan(60);
      expect(verifySignature(secret, h.body, sig, Math.floor(Date.now() / 1000))).toBe(true);
      expect(verifySignature(secret, h.body.replace('50', '51'), sig, Math.floor(Date.now() / 1000))).toBe(false);
      expect(verifySignature('whsec_wrong', h.body, sig, Math.floor(Date.now() / 1000))).toBe(false);
    }
    expect(JSON.parse(receiver.hits[2]!.body)).toEqual({
      id: n.id,
      type: 'quota.alert',
      created_at: new Date(n.createdAt).toISOString(),
      tenant: { id: tid, slug: 'gw' },
      data: { window: n.window, limit: 'monthly_tokens', threshold: 50, used: n.used, limit_value: 10 },
    });
    const audit = (await rawRows(s.store, sql`SELECT details FROM audit_log WHERE action = 'quota.alert'`))[0]!.details as string;
    expect(JSON.parse(audit)).toMatchObject({ webhook: 'queued', notification: n.id });

    // Delivered once: the reconciler does not send it again.
    const { reconcileWebhooks } = await import('../../server/jobs/webhooks.js');
    expect(await reconcileWebhooks({ repo: s.metering.repo, queues: s.jobs.queues, log: s.log, now: s.clock.now() })).toEqual({ queued: 0 });
    expect(receiver.hits).toHaveLength(3);
  }, 30_000);

  it('rotating the secret returns a new one; removing the URL drops it', async () => {
    const u = env.app.url;
    const tid = env.tenant.tenant.id;
    const before = await env.app.services.metering.webhookSecrets.get(tid);
    const r = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { rotate_webhook_secret: true } });
    expect(r.status).toBe(200);
    expect(r.body.webhook_secret).toMatch(/^whsec_/);
    expect(r.body.webhook_secret).not.toBe(before);
    const off = await call(u, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body: { webhook_url: null } });
    expect(off.body.webhook_url).toBeNull();
    expect(await env.app.services.metering.repo.webhookSecret(tid)).toBeNull();
  });
});
