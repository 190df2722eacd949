import { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerLicense } from '../../cli/commands/license.js';
import { CliError } from '../../cli/output.js';
import { verifyActivationRequest } from '../../license/reports.js';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';
import { spec } from '../helpers/license.js';
import { waitFor } from '../helpers/wait.js';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' } });
  process.env.ENCLAVE_DATA_DIR = app.services.config.dataDir;
  process.env.ENCLAVE_MASTER_KEY = app.services.config.masterKey!;
  // The in-process CLI uses the app's database (TEST_DIALECT=postgres: its PostgreSQL database).
  if (app.services.config.databaseUrl) process.env.ENCLAVE_DATABASE_URL = app.services.config.databaseUrl;
  process.env.ENCLAVE_LICENSE_MODE = 'test';
  process.env.REDIS_URL = app.services.redisUrl;
});
// The variables set above are put back by test/helpers/setup-file.ts after this file.
afterAll(async () => {
  await app.close();
});

/** Runs `enclave license …` in-process; returns stdout or throws the CliError. */
async function cli(...args: string[]): Promise<string> {
  const program = new Command('enclave').exitOverride();
  registerLicense(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'enclave', 'license', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}
async function fails(...args: string[]): Promise<string> {
  try {
    await cli(...args);
  } catch (e) {
    if (e instanceof CliError) return e.message;
    throw e;
  }
  throw new Error('expected the command to fail');
}

describe('enclave license (vendor and admin flows)', () => {
  const dir = tempDir('enclave-license-cli-');

  it('keygen root + issuer, certify, issue, inspect; then verify (diff), install, show, request, usage export/verify', async () => {
    const root = JSON.parse(await cli('keygen', '--kind', 'root', '--out', dir, '--json')) as { privateKeyFile: string; kid: string };
    const issuer = JSON.parse(await cli('keygen', '--kind', 'issuer', '--out', dir, '--json')) as { privateKeyFile: string };
    expect(JSON.parse(readFileSync(root.privateKeyFile.replace('.key.json', '.pub.json'), 'utf8')).privateKey).toBeUndefined();
    // Issuing before certification fails with the fix.
    const specFile = path.join(dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(spec({ seq: 2, limits: { seats: { max: 3, tolerance_pct: 0 } } })));
    expect(await fails('issue', '--key', issuer.privateKeyFile, '--spec', specFile, '--out', path.join(dir, 'x.lic'))).toMatch(/certify/);
    await cli('certify', '--root', root.privateKeyFile, '--issuer', issuer.privateKeyFile);
    const lic = path.join(dir, 'acme.lic');
    await cli('issue', '--key', issuer.privateKeyFile, '--spec', specFile, '--out', lic);
    // A fresh root is not trusted by this build: inspect says so, verify/install refuse with the reason.
    const inspected = JSON.parse(await cli('inspect', lic, '--json')) as { signature: { production: string; test: string } };
    expect(inspected.signature.test).toMatch(/^unknown_key/);
    expect(await fails('install', lic)).toMatch(/^unknown_key/);

    // With the committed test issuer it works end to end.
    const good = path.join(dir, 'good.lic');
    await cli('issue', '--key', 'license/keys/test/issuer.key.json', '--spec', specFile, '--out', good);
    expect(JSON.parse(await cli('inspect', good, '--json')).signature.test).toBe('valid');
    const dry = await cli('verify', good);
    expect(dry).toMatch(/seats 5 -> 3/);
    expect(dry).toMatch(/tenants 1 -> unlimited/);
    expect(JSON.parse(await cli('install', good, '--json'))).toMatchObject({ result: 'installed', seq: 2, state: 'valid' });
    expect(JSON.parse(await cli('install', good, '--json'))).toMatchObject({ result: 'unchanged' });
    const show = JSON.parse(await cli('show', '--json')) as { state: string; mode: string; limits: { seats: number }; installation: { id: string } };
    expect(show).toMatchObject({ state: 'valid', mode: 'test', limits: { seats: 3 } });
    expect(await cli('show')).toMatch(/TEST MODE/);

    // Downgrade refused with a one-line reason.
    writeFileSync(specFile, JSON.stringify(spec({ seq: 1 })));
    const old = path.join(dir, 'old.lic');
    await cli('issue', '--key', 'license/keys/test/issuer.key.json', '--spec', specFile, '--out', old);
    expect(await fails('install', old)).toMatch(/^sequence_downgrade/);

    // The running server picked the CLI's install up.
    await waitFor(() => app.services.license.evaluation().limits.seats, { until: (n) => n === 3, what: 'the CLI’s licence in the running server' });

    const req = verifyActivationRequest(await cli('request'));
    expect(req.installation.id).toBe(show.installation.id);

    const exportFile = path.join(dir, 'usage.jsonl');
    const month = new Date().toISOString().slice(0, 7);
    await cli('usage', 'export', '--month', month, '--out', exportFile);
    expect(await cli('usage', 'verify', exportFile)).toMatch(new RegExp(`valid usage export from ${show.installation.id}`));
    const lines = readFileSync(exportFile, 'utf8').split('\n');
    lines[1] = lines[1]!.replace(/"seats":\d+/, '"seats":1');
    writeFileSync(exportFile, lines.join('\n'));
    expect(await fails('usage', 'verify', exportFile)).toMatch(/^bad_signature: line 2 breaks the hash chain|^bad_signature/);

    expect(await cli('clock', 'confirm')).toMatch(/licence time confirmed/);
    expect(await fails('usage', 'export', '--month', '2026-13')).toMatch(/--month/);
  });
});
