import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../server/ids.js';
import { deliverNotification, type DeliverDeps } from '../../server/metering/webhooks.js';
import { egressPolicy } from '../../server/providers/egress.js';
import { call, login, type Session } from '../helpers/identity.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16, "Webhook SSRF": a tenant administrator's soft-limit webhook URL may not point the
 * worker at loopback or link-local (cloud metadata) addresses — refused when saved, and
 * refused at delivery for names that resolve there (DNS rebinding, or a URL stored before the
 * rule) — under the same rule as tenant-private providers (ENCLAVE_TENANT_PROVIDER_NETWORKS).
 */
class Receiver {
  hits = 0;
  private server!: Server;
  port = 0;
  constructor(private readonly answer: (res: import('node:http').ServerResponse) => void = (res) => res.writeHead(204).end()) {}
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.hits++;
      req.resume();
      req.on('end', () => this.answer(res));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let env: GatewayEnv;
let owner: Session;
let receiver: Receiver;
let tid: string;
beforeAll(async () => {
  env = await gatewayEnv(); // the default egress rule: loopback and link-local refused
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  receiver = await new Receiver().start();
  tid = env.tenant.tenant.id;
});
afterAll(async () => {
  await env?.close();
  await receiver?.close();
});

const put = (body: unknown) => call(env.app.url, `/admin/api/tenants/${tid}/metering`, { method: 'PUT', session: owner, body });

/** Stores a URL directly (as one saved before this rule, or a name that now resolves elsewhere) and a notification to deliver. */
async function storedUrlAndNotification(url: string): Promise<string> {
  const s = env.app.services.metering;
  const cur = (await s.repo.tenant(tid))!;
  await s.repo.upsertSettings({ tenantId: tid, timezone: cur.timezone ?? 'UTC', rawRetentionDays: cur.rawRetentionDays, alertThresholds: '[80,100]', webhookUrl: url, updatedAt: Date.now() });
  if (!(await s.webhookSecrets.has(tid))) await s.webhookSecrets.issue(tid);
  const id = newId('ntf');
  await s.repo.insertNotification({ id, tenantId: tid, window: `w-${id}`, limitName: 'monthly_tokens', threshold: 80, used: 80, limitValue: 100, createdAt: Date.now() });
  return id;
}

function deps(networks?: string): DeliverDeps {
  const s = env.app.services;
  return { repo: s.metering.repo, secrets: s.metering.webhookSecrets, clock: s.clock, log: pino({ level: 'silent' }), egress: egressPolicy(networks) };
}

describe('webhook URL: refused at save time', () => {
  for (const url of ['http://127.0.0.1:9/hook', 'http://169.254.169.254/latest/meta-data/', 'http://localhost:8080/x', 'http://[::1]:9/x', 'http://[::ffff:127.0.0.1]:9/x', 'http://0.0.0.0:9/x', 'https://sub.localhost/x']) {
    it(url, async () => {
      const r = await put({ webhook_url: url });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'webhook_url_forbidden', param: 'webhook_url' });
      expect(r.body.error.message).toMatch(/ENCLAVE_TENANT_PROVIDER_NETWORKS/);
      expect((await env.app.services.metering.repo.tenant(tid))?.webhookUrl ?? null).not.toBe(url);
    });
  }

  it('an address on the LAN (private range) is accepted by the default rule', async () => {
    const r = await put({ webhook_url: 'http://10.20.30.40/hooks/enclave' });
    expect(r.status).toBe(200);
    expect(r.body.webhook_url).toBe('http://10.20.30.40/hooks/enclave');
  });
});

describe('webhook delivery: every connection is checked after name resolution', () => {
  it('a stored loopback URL is not contacted (IP literal and a name that resolves to loopback)', async () => {
    const before = receiver.hits; // the delivery test (any order) reaches the receiver on purpose
    for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
      const id = await storedUrlAndNotification(`http://${host}:${receiver.port}/hook`);
      await expect(deliverNotification(deps(), tid, id)).rejects.toThrow(/webhook_unreachable: refused to connect to .*loopback/);
      expect((await env.app.services.metering.repo.notification(tid, id))!.webhookDeliveredAt).toBeNull();
    }
    expect(receiver.hits).toBe(before);
  });

  it('the cloud metadata address is refused before any connection', async () => {
    const id = await storedUrlAndNotification('http://169.254.169.254/latest/meta-data/');
    await expect(deliverNotification(deps(), tid, id)).rejects.toThrow(/refused to connect to 169\.254\.169\.254: .*link-local/);
  });

  it('with ENCLAVE_TENANT_PROVIDER_NETWORKS listing the receiver, it is delivered; other addresses are refused', async () => {
    const id = await storedUrlAndNotification(`http://127.0.0.1:${receiver.port}/hook`);
    const before = receiver.hits;
    await expect(deliverNotification(deps('127.0.0.1/32'), tid, id)).resolves.toMatchObject({ status: 'delivered', http_status: 204 });
    expect(receiver.hits).toBe(before + 1);
    const other = await storedUrlAndNotification(`http://127.0.0.1:${receiver.port}/hook`);
    await expect(deliverNotification(deps('10.0.0.0/8'), tid, other)).rejects.toThrow(/outside ENCLAVE_TENANT_PROVIDER_NETWORKS/);
  });

  it('redirects are not followed, and a large answer is not read whole', async () => {
    const target = await new Receiver().start();
    const redirecting = await new Receiver((res) => res.writeHead(302, { location: `http://127.0.0.1:${target.port}/stolen` }).end()).start();
    const big = await new Receiver((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(Buffer.alloc(8 * 1024 * 1024, 'x'));
    }).start();
    try {
      const id = await storedUrlAndNotification(`http://127.0.0.1:${redirecting.port}/hook`);
      await expect(deliverNotification(deps('127.0.0.1'), tid, id)).rejects.toThrow(/webhook_rejected: the receiver answered HTTP 302/);
      expect(redirecting.hits).toBe(1);
      expect(target.hits).toBe(0);
      const ok = await storedUrlAndNotification(`http://127.0.0.1:${big.port}/hook`);
      await expect(deliverNotification(deps('127.0.0.1'), tid, ok)).resolves.toMatchObject({ status: 'delivered', http_status: 200 });
    } finally {
      await Promise.all([target.close(), redirecting.close(), big.close()]);
    }
  });
});
