import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort } from '../../server/redis/ping.js';
import { tempDir, testRedisUrl } from './app.js';
import { nodeArgs } from './compiled.js';

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dataDir: string;
  readonly url: string;
  /** Every JSON log line printed so far. */
  readonly logs: Record<string, unknown>[];
  stderr(): string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the real entry point (server/main.ts, the run's compiled sources: compiled.ts) as a child process
 * on a temp data dir and a free port, and waits for its "enclave ready" line.
 */
export async function spawnServer(opts: { env?: Record<string, string | undefined>; role?: string; waitReady?: boolean; readyTimeoutMs?: number } = {}): Promise<ServerProcess> {
  const port = await freePort();
  const dataDir = opts.env?.ENCLAVE_DATA_DIR ?? tempDir();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_')) env[k] = v;
  Object.assign(env, {
    PORT: String(port),
    ENCLAVE_HOST: '127.0.0.1',
    ENCLAVE_DATA_DIR: dataDir,
    REDIS_URL: testRedisUrl(),
    ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'),
    ENCLAVE_LOG_LEVEL: 'info',
  });
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const child = spawn(process.execPath, [...nodeArgs('server/main.ts'), '--role', opts.role ?? 'api'], {
    cwd: process.cwd(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  // Starting takes seconds on a loaded 2-core machine (migrations, embedded Redis), more for a cluster.
  const readyMs = opts.readyTimeoutMs ?? 45_000;
  let timedOut = false;
  let err = '';
  let out = '';
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'enclave ready') resolve();
        } catch {
          /* not JSON */
        }
      }
    });
    void exit.then(({ code, signal }) => reject(new Error(`server exited (${signal ?? code}) before ready${timedOut ? ` (not ready within ${readyMs} ms)` : ''}: ${err}`)));
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  if (opts.waitReady !== false) {
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, readyMs);
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
  } else {
    ready.catch(() => {});
  }
  return { child, port, dataDir, url: `http://127.0.0.1:${port}`, logs, stderr: () => err, exited: () => exit };
}
