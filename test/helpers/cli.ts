import { spawn, type ChildProcess } from 'node:child_process';
import { nodeArgs } from './compiled.js';
import { databaseOf } from './dialect.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A CLI run that exited non-zero (from {@link runCliOk}): its code and output, as execFile's error has them. */
export class CliFailed extends Error {
  constructor(
    readonly args: readonly string[],
    readonly code: number,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`enclave ${args.join(' ')} exited ${code}: ${stderr.trim()}`);
  }
}

/** The caller's environment minus every ENCLAVE_* variable and REDIS_URL, plus `env`. */
function cliEnv(env: Record<string, string | undefined>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') base[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  // On an app's data dir, the app's database (TEST_DIALECT=postgres: its PostgreSQL database).
  const url = base.ENCLAVE_DATABASE_URL === undefined && !('ENCLAVE_DATABASE_URL' in env) ? databaseOf(base.ENCLAVE_DATA_DIR) : undefined;
  if (url) base.ENCLAVE_DATABASE_URL = url;
  return base;
}

/**
 * Starts the real `enclave` CLI (the run's compiled sources, see compiled.ts) as a child process, with the
 * caller's environment minus every ENCLAVE_* variable and REDIS_URL, plus `env`. For tests
 * that signal or race the process; most want {@link runCli}.
 */
export function spawnCli(args: readonly string[], env: Record<string, string | undefined> = {}, stdio: 'pipe' | 'ignore' = 'pipe'): ChildProcess {
  return spawn(process.execPath, [...nodeArgs('cli/main.ts'), ...args], { env: cliEnv(env), stdio });
}

/**
 * Runs the real `enclave` CLI (the run's compiled sources) as a child process, with the
 * caller's environment minus every ENCLAVE_* variable and REDIS_URL, plus `env`; `stdin`
 * is written to its standard input (for --password-stdin and the like).
 */
export function runCli(args: readonly string[], env: Record<string, string | undefined> = {}, stdin = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.stdin!.end(stdin);
  });
}

/** {@link runCli}, rejecting with {@link CliFailed} (code, stdout, stderr) when the CLI exits non-zero. */
export async function runCliOk(args: readonly string[], env: Record<string, string | undefined> = {}, stdin = ''): Promise<CliResult> {
  const r = await runCli(args, env, stdin);
  if (r.code !== 0) throw new CliFailed(args, r.code, r.stdout, r.stderr);
  return r;
}
