import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';

/** The real CLI on its own data dir, no licence installed (community limits). */
const enclave = (env: Record<string, string>, args: string[], stdin?: string) => runCli(args, { ENCLAVE_LOG_LEVEL: 'silent', ...env }, stdin);

describe('identity CLI', () => {
  it('tenants, users, grants and keys; the community licence limits tenants here too; secrets shown once', async () => {
    const env = { ENCLAVE_DATA_DIR: tempDir() };
    const admin = await enclave(env, ['admin', 'create', '--email', 'root@cli.test', '--password-stdin'], 'a very long admin password\n');
    expect(admin.code).toBe(0);
    expect((await enclave(env, ['tenants', 'create', 'acme', '--name', 'Acme'])).code).toBe(0);
    // Without a licence the CLI obeys the same community limits as the server (1 tenant).
    const second = await enclave(env, ['tenants', 'create', 'beta']);
    expect(second.code).not.toBe(0);
    expect(second.stderr.trim()).toMatch(/^enclave: tenant_limit: /);
    const tenants = JSON.parse((await enclave(env, ['tenants', 'list', '--json'])).stdout) as { slug: string }[];
    expect(tenants.map((t) => t.slug)).toEqual(['acme']);

    const user = await enclave(env, ['users', 'create', '--email', 'dev@cli.test', '--password-stdin', '--tenant', 'acme', '--role', 'member'], 'another long password\n');
    expect(user.code).toBe(0);
    expect((await enclave(env, ['users', 'grant', 'dev@cli.test', '--tenant', 'acme', '--role', 'admin'])).code).toBe(0);

    const created = await enclave(env, ['keys', 'create', '--tenant', 'acme', '--name', 'ci', '--owner', 'dev@cli.test', '--json']);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; secret: string };
    expect(key.secret).toMatch(/^enk_[0-9A-Za-z]+$/);
    const listed = await enclave(env, ['keys', 'list', '--tenant', 'acme', '--json']);
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).not.toContain(key.secret);
    expect((await enclave(env, ['keys', 'revoke', key.id])).code).toBe(0);
    const after = JSON.parse((await enclave(env, ['keys', 'list', '--tenant', 'acme', '--json'])).stdout) as { id: string; revoked_at?: unknown; status?: string }[];
    const row = after.find((k) => k.id === key.id)!;
    expect(row.revoked_at ?? row.status).toBeTruthy();

    const missing = await enclave(env, ['keys', 'list', '--tenant', 'nope', '--json']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  }, 90_000);
});
