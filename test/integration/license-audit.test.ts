import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { testLicense } from '../helpers/license.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' } });
});
afterAll(() => app.close());

describe('licence events in the audit log', () => {
  it('records installs and rejected files (without the licence text), and usage counts this month’s tokens', async () => {
    const { license, identity } = app.services;
    const text = testLicense({ seq: 7 });
    await license.install(text);
    await expect(license.install('-----BEGIN ENCLAVE LICENSE-----\nnot a licence\n-----END ENCLAVE LICENSE-----')).rejects.toThrow();
    const installed = await identity.audit.list({ limit: 10, action: 'license.installed' });
    expect(installed).toHaveLength(1);
    expect(installed[0]!.outcome).toBe('allowed');
    const rejected = await identity.audit.list({ limit: 10, action: 'license.rejected' });
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.outcome).toBe('denied');
    const rows = JSON.stringify(await identity.audit.list({ limit: 50 }));
    expect(rows).not.toContain(text.split('\n')[1]!.slice(0, 40));
    expect((await identity.audit.verify()).ok).toBe(true);
    expect((await license.status()).usage).toMatchObject({ tokensMonth: 0, tenants: 0 });
  });
});
