import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { clientIp } from '../../server/http/fast-path.js';
import { metricsGate } from '../../server/metrics/access.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * Issue 16, operations: /metrics is not open to the network by default, X-Forwarded-For
 * is read from the right (trusted proxy hops), a malformed tenant id in an admin path is a
 * 400 without an audit entry, and a tenant admin does not learn the platform-wide audit count.
 */
let app: TestApp;
let proxied: TestApp;
let A: Awaited<ReturnType<typeof seedTenant>>;
let B: Awaited<ReturnType<typeof seedTenant>>;
let platform: Session;
let tenantAdmin: Session;

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted });
  proxied = await startTestApp({ entitlements: unrestricted, env: { ENCLAVE_TRUST_PROXY: '1' } });
  A = await seedTenant(app.services, 'alpha', ['admin']);
  B = await seedTenant(app.services, 'beta', ['admin', 'member']);
  await app.services.identity.users.create(sys(app.services), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  platform = await login(app.url, 'root@platform.test');
  tenantAdmin = await login(app.url, A.users.admin!.email);
  expect(platform.csrf && tenantAdmin.csrf).toBeTruthy();
});
afterAll(async () => {
  await app?.close();
  await proxied?.close();
});

function fakeReq(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { headers, socket: { remoteAddress } as Socket } as IncomingMessage;
}

describe('GET /metrics without a token', () => {
  it('answers a loopback client', async () => {
    const res = await fetch(`${app.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('enclave_build_info');
  });

  it('refuses a request that came through a proxy from elsewhere (X-Forwarded-For), without trusted hops and with them', async () => {
    const direct = await fetch(`${app.url}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect(direct.status).toBe(403);
    expect(((await direct.json()) as { error: { code: string } }).error.code).toBe('metrics_not_local');
    const viaProxy = await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    expect(viaProxy.status).toBe(403);
    // a client cannot make itself local by writing 127.0.0.1 into the header: the proxy appends the real address
    const spoof = await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' } });
    expect(spoof.status).toBe(403);
    const local = await fetch(`${proxied.url}/metrics`, { headers: { 'x-forwarded-for': '127.0.0.1' } });
    expect(local.status).toBe(200);
  });

  it('decides by the socket peer: other addresses are refused unless ENCLAVE_METRICS_PUBLIC, a token opens it to every address', () => {
    const closed = metricsGate({});
    expect(closed(fakeReq('127.0.0.1'))).toBe('allow');
    expect(closed(fakeReq('::1'))).toBe('allow');
    expect(closed(fakeReq('::ffff:127.0.0.1'))).toBe('allow');
    expect(closed(fakeReq('10.0.0.5'))).toBe('not_local');
    expect(closed(fakeReq('::ffff:10.0.0.5'))).toBe('not_local');
    expect(closed(fakeReq('fe80::1'))).toBe('not_local');
    expect(metricsGate({ public: true })(fakeReq('10.0.0.5'))).toBe('allow');
    const token = metricsGate({ token: 'scrape-token-123' });
    expect(token(fakeReq('10.0.0.5', { authorization: 'Bearer scrape-token-123' }))).toBe('allow');
    expect(token(fakeReq('127.0.0.1'))).toBe('token_required');
  });
});

describe('ENCLAVE_TRUST_PROXY: hops from the right of X-Forwarded-For', () => {
  it('picks the entry the trusted proxy appended, never one the client wrote', () => {
    const req = fakeReq('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 198.51.100.7' });
    expect(clientIp(req, 0)).toBe('10.0.0.2');
    expect(clientIp(req, 1)).toBe('198.51.100.7');
    expect(clientIp(req, 2)).toBe('6.6.6.6');
    expect(clientIp(req, 5)).toBe('6.6.6.6');
    expect(clientIp(fakeReq('10.0.0.2'), 1)).toBe('10.0.0.2');
  });

  it('records the proxy-appended address on the express path (login audit), so a client cannot pick its own address to dodge throttling', async () => {
    const s = proxied.services;
    await seedTenant(s, 'gamma', ['member']);
    for (const spoofed of ['6.6.6.1', '6.6.6.2']) {
      const r = await login(proxied.url, 'member@gamma.test', 'wrong password', { headers: { 'x-forwarded-for': `${spoofed}, 198.51.100.7` } });
      expect(r.status).toBe(401);
    }
    const denied = await s.identity.audit.list({ action: 'auth.login', outcome: 'denied', limit: 10 });
    expect(denied.length).toBe(2);
    expect(denied.map((e) => e.ip)).toEqual(['198.51.100.7', '198.51.100.7']);
  });

  it('keeps true/false meaning 1 hop / none', async () => {
    const { loadConfig } = await import('../../server/config/load.js');
    expect(loadConfig({ ENCLAVE_TRUST_PROXY: 'true' }, '/').trustProxy).toBe(1);
    expect(loadConfig({ ENCLAVE_TRUST_PROXY: 'false' }, '/').trustProxy).toBe(0);
    expect(loadConfig({ ENCLAVE_TRUST_PROXY: '2' }, '/').trustProxy).toBe(2);
    expect(() => loadConfig({ ENCLAVE_TRUST_PROXY: 'maybe' }, '/')).toThrow(/ENCLAVE_TRUST_PROXY/);
  });
});

describe('admin API: malformed tenant ids and audit counts', () => {
  it('answers /admin/api/tenants/null/… with 400 and writes no audit entry', async () => {
    const before = await app.services.identity.audit.count();
    for (const bad of ['null', 'undefined', 'ten_', 'TEN_X', '%20', 'ten_abc%2F..']) {
      for (const path of [`/admin/api/tenants/${bad}/members`, `/admin/api/tenants/${bad}/usage?by=day`, `/admin/api/tenants/${bad}/audit?outcome=denied`, `/admin/api/tenants/${bad}`]) {
        const r = await call(app.url, path, { session: platform });
        expect(r.status, `${path}`).toBe(400);
        expect(r.body.error.code).toBe('invalid_tenant_id');
      }
    }
    expect((await app.services.identity.audit.count())).toBe(before);
    // a well-formed id of a tenant one may not see is still 404 and audited
    const other = await call(app.url, `/admin/api/tenants/${B.tenant.id}/members`, { session: tenantAdmin });
    expect(other.status).toBe(404);
    expect((await app.services.identity.audit.count())).toBe(before + 1);
  });

  it('gives a tenant admin its own tenant\'s entry count from /admin/api/audit/verify, never the platform-wide one', async () => {
    const all = await call(app.url, '/admin/api/audit/verify', { session: platform });
    expect(all.status).toBe(200);
    expect(all.body.ok).toBe(true);
    expect(all.body.checked).toBe((await app.services.identity.audit.count()));
    const mine = await call(app.url, '/admin/api/audit/verify', { session: tenantAdmin });
    expect(mine.status).toBe(200);
    expect(mine.body.ok).toBe(true);
    const own = (await app.services.identity.audit.list({ tenantId: A.tenant.id, limit: 1000 })).length;
    expect(own).toBeLessThan((await app.services.identity.audit.count()));
    expect(mine.body.checked).toBe(own);
  });
});
