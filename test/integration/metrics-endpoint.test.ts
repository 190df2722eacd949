import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let open: TestApp;
let locked: TestApp;
beforeAll(async () => {
  open = await startTestApp();
  locked = await startTestApp({ env: { ENCLAVE_METRICS_TOKEN: 'scrape-token-123' } });
});
afterAll(async () => {
  await open.close();
  await locked.close();
});

describe('GET /metrics', () => {
  it('serves Prometheus text with build info and per-route request counts', async () => {
    await fetch(`${open.url}/healthz`);
    await fetch(`${open.url}/no/such/thing/ten_123`);
    const res = await fetch(`${open.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^enclave_build_info\{version="[^"]+",node_version="[^"]+"\} 1$/m);
    expect(text).toMatch(/^enclave_http_requests_total\{route="\/healthz",method="GET",status_class="2xx"\} 1$/m);
    // Unmatched paths collapse into one label value: ids never become label values.
    expect(text).toMatch(/^enclave_http_requests_total\{route="unmatched",method="GET",status_class="4xx"\} 1$/m);
    expect(text).not.toContain('ten_123');
    expect(text).toContain('process_resident_memory_bytes');
  });

  it('requires the bearer token when ENCLAVE_METRICS_TOKEN is set', async () => {
    const none = await fetch(`${locked.url}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('auth_metrics_token');
    const wrong = await fetch(`${locked.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${locked.url}/metrics`, { headers: { authorization: 'Bearer scrape-token-123' } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('enclave_build_info');
  });
});
