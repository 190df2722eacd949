import { spawn } from 'node:child_process';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the real `enclave` CLI from sources (through tsx) as a child process, with the
 * caller's environment minus every ENCLAVE_* variable and REDIS_URL, plus `env`; `stdin`
 * is written to its standard input (for --password-stdin and the like).
 */
export function runCli(args: readonly string[], env: Record<string, string> = {}, stdin = ''): Promise<CliResult> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') base[k] = v;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], { env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.stdin.end(stdin);
  });
}
