import { spawnSync } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The command could not be started at all (not on PATH). */
  readonly missing: boolean;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Pass the child's output through to ours (long-running steps like `up --wait`). */
  readonly inherit?: boolean;
}

/** Runs a command found on PATH (tests put a fake `docker` there). Never throws. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    encoding: 'utf8',
    stdio: opts.inherit ? ['ignore', 'inherit', 'inherit'] : ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const missing = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  return {
    code: r.status ?? (missing ? 127 : 1),
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? (r.error ? r.error.message : ''),
    missing,
  };
}

/** Runs a command and throws an InstallerError naming it when it fails. */
export function runOrThrow(cmd: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const r = run(cmd, args, opts);
  if (r.missing) throw new InstallerError(`${cmd} is not installed or not on PATH`);
  if (r.code !== 0) {
    const detail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new InstallerError(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.code})${detail ? `: ${detail}` : ''}`);
  }
  return r;
}

/** A failure the operator can act on: printed as one line, non-zero exit. */
export class InstallerError extends Error {
  override readonly name = 'InstallerError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
