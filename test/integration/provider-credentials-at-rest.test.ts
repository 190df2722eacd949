import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readArchive } from '../../server/ops/backup/archive.js';
import { supportBundle } from '../../server/ops/support-bundle/bundle.js';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';

/**
 * A provider kind's secrets (the `credentials` column: one encrypted JSON object) are
 * secrets like `api_key`: not in the database in clear, never returned, and each value is
 * masked by the support bundle's known-value scan — which decrypted the column as one JSON
 * text, so a log line echoing one of its values went into the bundle until it learned to
 * read the values out of the object.
 */
const cleanup: string[] = [];
let app: TestApp | undefined;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.close();
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

const allFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? allFiles(p) : [p];
  });

describe('provider credentials at rest', () => {
  it('are encrypted, never returned, and masked in the support bundle value by value', async () => {
    const work = tempDir('enclave-cred-');
    cleanup.push(work);
    const s = app!.services;
    // No recognisable shape: only the known-value scan can catch it.
    const secret = `Qv${randomBytes(16).toString('hex')}Zk`;
    const d = await s.gateway.deployments.create(sys(s), {
      name: 'azure-entra',
      kind: 'azure-openai',
      boundary: 'private',
      settings: { resource: 'contoso', entra_tenant_id: 't', entra_client_id: 'c' },
      credentials: { entra_client_secret: secret },
      models: ['gpt-4o'],
    });
    expect(JSON.stringify(d)).not.toContain(secret);
    expect(d).toMatchObject({ has_credentials: true, has_api_key: false });
    const raw = ((await rawRows(s.store, sql`SELECT settings, credentials FROM provider_deployments WHERE id = ${d.id}`)) as { settings: string; credentials: string }[])[0]!;
    expect(raw.credentials).not.toContain(secret);
    expect(raw.settings).not.toContain(secret);

    const logDir = path.join(work, 'logs');
    mkdirSync(logDir);
    writeFileSync(path.join(logDir, 'server.log'), `upstream said: invalid client secret ${secret} (a message that echoes it)\n`);
    const out = path.join(work, 'bundle.tar.gz');
    await supportBundle(s.config, { out, logDir });
    const dir = path.join(work, 'x');
    await readArchive(out, {}, dir);
    const files = allFiles(dir);
    expect(files.some((f) => f.endsWith('server.log'))).toBe(true);
    for (const f of files) expect(readFileSync(f, 'utf8').includes(secret), path.relative(dir, f)).toBe(false);
  });
});

describe('tenant-private deployments: every URL a kind connects to is egress-checked', () => {
  it("an Entra token endpoint on loopback or the metadata address is refused like a base URL (400 base_url_forbidden, nothing stored)", async () => {
    const s = app!.services;
    const t = await seedTenant(s, 'egress-entra', ['owner']);
    for (const entra_token_url of ['http://127.0.0.1:9/t/oauth2/v2.0/token', 'http://169.254.169.254/metadata/identity/oauth2/token', 'http://[::1]:9/token']) {
      const e = await Promise.resolve()
        .then(() =>
          s.gateway.deployments.create(sys(s), {
            name: 'azure-sneaky',
            kind: 'azure-openai',
            boundary: 'private',
            tenant_id: t.tenant.id,
            settings: { resource: 'contoso', entra_tenant_id: 't', entra_client_id: 'c', entra_token_url },
            credentials: { entra_client_secret: 'x-123456' },
            models: ['gpt-4o'],
          }),
        )
        .catch((x: unknown) => x as { status: number; code: string; param: string });
      expect(e, entra_token_url).toMatchObject({ status: 400, code: 'base_url_forbidden', param: 'settings' });
    }
    expect(await s.gateway.deployments.list({ tenantId: t.tenant.id })).toEqual([]);
    // The platform's own deployments are not restricted.
    const ok = await s.gateway.deployments.create(sys(s), {
      name: 'azure-platform-entra',
      kind: 'azure-openai',
      boundary: 'private',
      settings: { resource: 'contoso', entra_tenant_id: 't', entra_client_id: 'c', entra_token_url: 'http://127.0.0.1:9/t/oauth2/v2.0/token' },
      credentials: { entra_client_secret: 'x-123456' },
      models: ['gpt-4o'],
    });
    expect(ok.settings).toMatchObject({ entra_token_url: 'http://127.0.0.1:9/t/oauth2/v2.0/token' });
  });
});
