import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { spec } from '../helpers/license.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `enclave license …` as a user runs it: the real CLI as its own process (license-cli.test.ts
 * drives the same commands in-process). What only a process shows: exit codes, one line on
 * stderr prefixed `enclave:`, nothing on stdout for a failure, JSON on stdout for --json, and a
 * running server picking an install up from the database.
 */
let app: TestApp;
let env: Record<string, string>;
const dir = tempDir('enclave-license-proc-');

// A fresh installation per test: each stands alone (any order, --sequence.shuffle).
beforeEach(async () => {
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' } });
  const c = app.services.config;
  env = { ENCLAVE_DATA_DIR: c.dataDir, ENCLAVE_MASTER_KEY: c.masterKey!, REDIS_URL: c.redisUrl!, ENCLAVE_LICENSE_MODE: 'test', ENCLAVE_LOG_LEVEL: 'silent' };
});
afterEach(() => app?.close());

function oneLineError(r: { stdout: string; stderr: string }, pattern: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^enclave: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stdout).toBe('');
}

describe('enclave license as a process', () => {
  it('issue → install → show: exit 0, JSON on stdout, the running server picks the licence up', async () => {
    const specFile = path.join(dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(spec({ seq: 7, limits: { seats: { max: 4, tolerance_pct: 0 } } })));
    const lic = path.join(dir, 'seven.lic');
    await runCliOk(['license', 'issue', '--key', 'license/keys/test/issuer.key.json', '--spec', specFile, '--out', lic], env);
    const installed = await runCliOk(['license', 'install', lic, '--json'], env);
    expect(JSON.parse(installed.stdout)).toMatchObject({ result: 'installed', seq: 7, state: 'valid' });
    const show = await runCliOk(['license', 'show', '--json'], env);
    expect(JSON.parse(show.stdout)).toMatchObject({ state: 'valid', mode: 'test', limits: { seats: 4 } });
    await waitFor(() => app.services.license.evaluation().limits.seats, { until: (n) => n === 4, what: 'the installed licence in the running server' });
  });

  it('failures: a one-line reason on stderr, nothing on stdout, a non-zero exit code', async () => {
    const seatsBefore = app.services.license.evaluation().limits.seats;
    // A file that is not a licence.
    const junk = path.join(dir, 'junk.lic');
    writeFileSync(junk, 'not a licence\n');
    const bad = await runCli(['license', 'install', junk], env);
    expect(bad.code).toBe(1);
    oneLineError(bad, /armor|licen/i);

    // A file that does not exist.
    const missing = await runCli(['license', 'install', path.join(dir, 'nope.lic')], env);
    expect(missing.code).not.toBe(0);
    oneLineError(missing, /nope\.lic/);

    // A downgrade (lower sequence than the installed one) is refused with its code.
    const newer = path.join(dir, 'newer.json');
    writeFileSync(newer, JSON.stringify(spec({ seq: 5 })));
    await runCliOk(['license', 'issue', '--key', 'license/keys/test/issuer.key.json', '--spec', newer, '--out', path.join(dir, 'five.lic')], env);
    await runCliOk(['license', 'install', path.join(dir, 'five.lic')], env);
    await waitFor(() => app.services.license.evaluation().limits.seats, { until: (n) => n !== seatsBefore, what: 'licence seq 5 in the running server' });
    const seatsInstalled = app.services.license.evaluation().limits.seats;
    const specFile = path.join(dir, 'old.json');
    writeFileSync(specFile, JSON.stringify(spec({ seq: 1 })));
    const old = path.join(dir, 'old.lic');
    await runCliOk(['license', 'issue', '--key', 'license/keys/test/issuer.key.json', '--spec', specFile, '--out', old], env);
    const down = await runCli(['license', 'install', old], env);
    expect(down.code).toBe(1);
    oneLineError(down, /^enclave: sequence_downgrade/);

    // A bad option value.
    const month = await runCli(['license', 'usage', 'export', '--month', 'March', '--out', path.join(dir, 'u.jsonl')], env);
    expect(month.code).toBe(1);
    oneLineError(month, /--month must look like 2026-03/);

    // No database in the data dir: exit 2 with the fix.
    const empty = await runCli(['license', 'show'], { ...env, ENCLAVE_DATA_DIR: tempDir() });
    expect(empty.code).toBe(2);
    oneLineError(empty, /start Enclave once \(or run enclave migrate\) first/);

    // Nothing changed: still the licence installed above.
    expect(app.services.license.evaluation().limits.seats).toBe(seatsInstalled);
  });
});
