import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { loadConfig } from '../../server/config/load.js';
import { tempDir, testRedisUrl } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';

const enclave = (args: string[], env: Record<string, string>) => runCli(args, env);

/** A data dir on which the server has started once (migrated, self-test stored), with generated key. */
async function preparedDir(env: Record<string, string> = {}): Promise<Record<string, string>> {
  // a Redis database of its own: doctor's queue check must not see jobs other tests leave in db 0
  const full = { ENCLAVE_DATA_DIR: tempDir(), REDIS_URL: testRedisUrl(), ...env };
  const s = await createServices(loadConfig(full), { log: pino({ level: 'silent' }) });
  await s.close();
  return full;
}

describe('enclave CLI (foundation commands)', () => {
  it('--help lists the groups and exits 0', async () => {
    const r = await enclave(['--help'], {});
    expect(r.code).toBe(0);
    for (const g of ['migrate', 'config', 'doctor']) expect(r.stdout).toContain(g);
  });

  it('doctor --json prints every check and exits 0 on a healthy setup', async () => {
    const env = await preparedDir();
    const r = await enclave(['doctor', '--json'], env);
    const report = JSON.parse(r.stdout) as { status: string; checks: { id: string; status: string }[] };
    // the foundation checks, in order; the doctor engine (issue 10) adds more between and after them
    const ids = report.checks.map((c) => c.id);
    expect(ids.filter((id) => ['node', 'data_dir', 'disk', 'database', 'migrations', 'redis', 'master_key'].includes(id))).toEqual(['node', 'data_dir', 'disk', 'database', 'migrations', 'redis', 'master_key']);
    expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
    expect(report.status).toBe('ok');
    expect(r.code).toBe(0);
  });

  it('doctor fails (exit 2) on a data dir that does not exist and on an unreachable Redis', async () => {
    const r = await enclave(['doctor', '--json'], { ENCLAVE_DATA_DIR: path.join(tempDir(), 'missing'), REDIS_URL: 'redis://127.0.0.1:1/0' });
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout) as { checks: { id: string; status: string; message: string }[] };
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId.data_dir!.status).toBe('fail');
    expect(byId.database!.status).toBe('fail');
    expect(byId.redis!.status).toBe('fail');
    expect(byId.redis!.message).toContain('not reachable');
  });

  it('doctor fails the master key check with the wrong key', async () => {
    const env = await preparedDir({ ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') });
    const r = await enclave(['doctor', '--json'], { ...env, ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') });
    const report = JSON.parse(r.stdout) as { checks: { id: string; status: string; message: string }[] };
    const mk = report.checks.find((c) => c.id === 'master_key')!;
    expect(mk.status).toBe('fail');
    expect(mk.message).toMatch(/not configured/);
    expect(r.code).toBe(2);
  });

  it('config show --json redacts secrets', async () => {
    const key = randomBytes(32).toString('base64');
    const r = await enclave(['config', 'show', '--json'], { ENCLAVE_MASTER_KEY: key, REDIS_URL: 'redis://:pw-secret@h:6379', PORT: '9000' });
    expect(r.code).toBe(0);
    const cfg = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(cfg.PORT).toBe(9000);
    expect(cfg.ENCLAVE_MASTER_KEY).toBe('[redacted]');
    expect(r.stdout).not.toContain(key);
    expect(r.stdout).not.toContain('pw-secret');
  });

  it('a bad setting or unknown command fails with one line and a non-zero exit', async () => {
    const bad = await enclave(['config', 'show'], { ENCLAVE_LOG_LEVEL: 'chatty' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^enclave: invalid ENCLAVE_LOG_LEVEL/);
    const unknown = await enclave(['frobnicate'], {});
    expect(unknown.code).not.toBe(0);
  });

  it('migrate --dry-run lists, migrate applies, a second run is a no-op', async () => {
    const env = { ENCLAVE_DATA_DIR: tempDir() };
    const dry = await enclave(['migrate', '--dry-run', '--json'], env);
    expect(dry.code).toBe(0);
    const d = JSON.parse(dry.stdout) as { pending: string[]; applied: string[] };
    expect(d.pending.length).toBeGreaterThan(0);
    expect(d.applied).toEqual([]);
    const real = JSON.parse((await enclave(['migrate', '--json'], env)).stdout) as { applied: string[]; pending: string[] };
    expect(real.applied).toEqual(d.pending);
    expect(real.pending).toEqual([]);
    const again = await enclave(['migrate'], env);
    expect(again.stdout).toMatch(/^up to date/);
  });

  it('config rotate-master-key re-encrypts secrets under a new generated key', async () => {
    const env = await preparedDir();
    const keyFile = path.join(env.ENCLAVE_DATA_DIR!, 'secrets', 'master.key');
    const before = readFileSync(keyFile, 'utf8');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const r = await enclave(['config', 'rotate-master-key', '--json'], env);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { rotated: number; from: string; to: string };
    expect(out.rotated).toBeGreaterThanOrEqual(1);
    expect(out.from).not.toBe(out.to);
    expect(readFileSync(keyFile, 'utf8')).not.toBe(before);
    expect(readFileSync(`${keyFile}.previous`, 'utf8')).toBe(before);
    // Only the new key is needed now: drop the previous one and the self-test still decrypts.
    writeFileSync(`${keyFile}.previous`, '');
    const { rmSync } = await import('node:fs');
    rmSync(`${keyFile}.previous`);
    const doc = JSON.parse((await enclave(['doctor', '--json'], env)).stdout) as { checks: { id: string; status: string; message: string }[] };
    const mk = doc.checks.find((c) => c.id === 'master_key')!;
    expect(mk.status).toBe('ok');
    expect(mk.message).toContain(out.to);
    expect(existsSync(`${keyFile}.next`)).toBe(false);
  });

  it('config rotate-master-key with an env key needs --new-key-file, then the new key works', async () => {
    const oldKey = randomBytes(32).toString('base64');
    const env = await preparedDir({ ENCLAVE_MASTER_KEY: oldKey });
    const refused = await enclave(['config', 'rotate-master-key'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--new-key-file/);
    const newKey = randomBytes(32).toString('base64');
    const f = path.join(tempDir(), 'new.key');
    writeFileSync(f, newKey);
    const r = await enclave(['config', 'rotate-master-key', '--new-key-file', f], env);
    expect(r.code).toBe(0);
    const withNew = JSON.parse((await enclave(['doctor', '--json'], { ...env, ENCLAVE_MASTER_KEY: newKey })).stdout) as {
      checks: { id: string; status: string }[];
    };
    expect(withNew.checks.find((c) => c.id === 'master_key')!.status).toBe('ok');
    const withOld = JSON.parse((await enclave(['doctor', '--json'], env)).stdout) as { checks: { id: string; status: string }[] };
    expect(withOld.checks.find((c) => c.id === 'master_key')!.status).toBe('fail');
  });
});
