import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/app.js';
import { nodeArgs } from '../helpers/compiled.js';

/**
 * The CLI answers at once because a command loads only what it needs (cli/program.ts loads
 * only the group named in argv; bench/cli-startup.ts measures the times). Timing is no test
 * on a shared machine, so this checks what start-up time follows from: which packages a
 * command imports. Each of these costs 100–700 ms to load and belongs to the server.
 */
const SERVER_ONLY = ['bullmq', 'ioredis', 'express', 'helmet', 'openai', 'ollama', 'undici', 'openid-client', 'jose', 'prom-client', 'node-forge', 'yaml'];

/** Runs the CLI (the run's compiled sources) and returns the packages it imported (test/helpers/import-trace.mjs). */
function packagesOf(args: readonly string[], dataDir: string): Promise<{ code: number; stderr: string; packages: Set<string> }> {
  const trace = path.join(dataDir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') env[k] = v;
  Object.assign(env, { ENCLAVE_DATA_DIR: dataDir, IMPORT_TRACE_FILE: trace });
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs('cli/main.ts', ['--import', './test/helpers/import-trace.mjs']), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      let packages = new Set<string>();
      try {
        packages = new Set(readFileSync(trace, 'utf8').split('\n').filter(Boolean));
      } catch {
        /* imported no package */
      }
      resolve({ code: code ?? 1, stderr, packages });
    });
  });
}

describe('enclave CLI start-up', () => {
  it('--help and --version load no command module', async () => {
    const dir = tempDir();
    for (const args of [['--help'], ['--version'], ['nope']]) {
      const r = await packagesOf(args, dir);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(args[0] === 'nope' ? 1 : 0);
      expect([...r.packages].filter((p) => p !== 'commander'), args.join(' ')).toEqual([]);
    }
  }, 60_000);

  it('simple read commands load no server-only package', async () => {
    const dir = tempDir();
    for (const args of [['tenants', 'list'], ['users', 'list', '--json'], ['audit', 'verify'], ['license', 'show'], ['jobs', '--help']]) {
      const r = await packagesOf(args, dir);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.packages.has('commander'), args.join(' ')).toBe(true);
      expect(SERVER_ONLY.filter((p) => r.packages.has(p)), args.join(' ')).toEqual([]);
    }
  }, 120_000);
});
