import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { ENCLAVE_MAX_BODY_BYTES: '1024' } });
});
afterAll(() => app.close());

describe('HTTP basics', () => {
  it('answers /healthz', async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'alive' });
  });

  it('answers /readyz with every check ok', async () => {
    const res = await fetch(`${app.url}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; checks: Record<string, { status: string }> };
    expect(body.status).toBe('ready');
    expect(Object.keys(body.checks)).toEqual(expect.arrayContaining(['database', 'migrations', 'redis']));
    for (const name of ['database', 'migrations', 'redis']) expect(body.checks[name]!.status).toBe('ok');
  });

  it('unknown route: 404 in the error envelope', async () => {
    const res = await fetch(`${app.url}/no/such/route`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: 'No route for GET /no/such/route', type: 'not_found_error', code: 'route_not_found', param: null },
    });
  });

  it('malformed JSON: 400 invalid_json', async () => {
    const res = await fetch(`${app.url}/anything`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a": ' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; type: string } };
    expect(body.error.code).toBe('invalid_json');
    expect(body.error.type).toBe('invalid_request_error');
  });

  it('body over ENCLAVE_MAX_BODY_BYTES: 413 body_too_large', async () => {
    const res = await fetch(`${app.url}/anything`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'x'.repeat(2000) }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('body_too_large');
    expect(body.error.message).toContain('1024');
  });

  it('echoes a well-formed X-Request-Id and replaces a malformed one', async () => {
    const good = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'client-abc_123' } });
    expect(good.headers.get('x-request-id')).toBe('client-abc_123');
    const bad = await fetch(`${app.url}/healthz`, { headers: { 'x-request-id': 'has spaces and\ttabs' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{26}$/);
    const none = await fetch(`${app.url}/healthz`);
    expect(none.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{26}$/);
    expect(none.headers.get('x-request-id')).not.toBe(bad.headers.get('x-request-id'));
  });

  it('sets security headers and hides the framework', async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('https:');
    expect(res.headers.get('x-frame-options')).toBeTruthy();
    expect(res.headers.get('x-powered-by')).toBeNull();
  });
});
