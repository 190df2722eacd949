import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../server/redis/ping.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { parseExposition } from '../helpers/promql.js';

/** The real entry point in the worker role serves its own /metrics on ENCLAVE_WORKER_METRICS_PORT. */
const started: ServerProcess[] = [];
afterAll(async () => {
  for (const p of started) {
    if (p.child.exitCode === null) {
      p.child.kill('SIGKILL');
      await p.exited();
    }
    rmSync(p.dataDir, { recursive: true, force: true });
  }
});

describe('worker /metrics', () => {
  it('serves the worker process registry with the metrics token, and stops on SIGTERM', async () => {
    const port = await freePort();
    const w = await spawnServer({ role: 'worker', env: { ENCLAVE_WORKER_METRICS_PORT: String(port), ENCLAVE_METRICS_TOKEN: 'worker-scrape-token' } });
    started.push(w);
    expect(w.logs.find((l) => l.msg === 'enclave ready')?.metricsPort).toBe(port);
    const url = `http://127.0.0.1:${port}/metrics`;
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('auth_metrics_token');
    const ok = await fetch(url, { headers: { authorization: 'Bearer worker-scrape-token' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toContain('text/plain');
    const { samples } = parseExposition(await ok.text());
    const names = new Set(samples.map((s) => s.name));
    for (const n of ['enclave_build_info', 'process_resident_memory_bytes', 'enclave_license_state', 'enclave_backup_last_success_timestamp_seconds']) expect(names.has(n), n).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
    w.child.kill('SIGTERM');
    expect((await w.exited()).code).toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  }, 30_000);

  it('reads the token from ENCLAVE_METRICS_TOKEN_FILE (the compose secret Prometheus uses as credentials_file)', async () => {
    const port = await freePort();
    const dir = mkdtempSync(path.join(tmpdir(), 'enclave-metrics-secret-'));
    try {
      const file = path.join(dir, 'metrics_token');
      writeFileSync(file, 'file-scrape-token-0123456789\n', { mode: 0o600 });
      const w = await spawnServer({ role: 'worker', env: { ENCLAVE_WORKER_METRICS_PORT: String(port), ENCLAVE_METRICS_TOKEN_FILE: file } });
      started.push(w);
      const url = `http://127.0.0.1:${port}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: 'Bearer file-scrape-token-0123456789' } })).status).toBe(200);
      w.child.kill('SIGTERM');
      expect((await w.exited()).code).toBe(0);
      // An unreadable file stops the start with the setting to fix.
      const bad = await spawnServer({ role: 'worker', waitReady: false, env: { ENCLAVE_WORKER_METRICS_PORT: String(port), ENCLAVE_METRICS_TOKEN_FILE: path.join(dir, 'absent') } });
      started.push(bad);
      expect((await bad.exited()).code).toBe(2);
      expect(bad.stderr()).toContain('ENCLAVE_METRICS_TOKEN_FILE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('a busy port fails the worker start with the setting to change', async () => {
    const port = await freePort();
    const net = await import('node:net');
    const blocker = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    try {
      const w = await spawnServer({ role: 'worker', waitReady: false, env: { ENCLAVE_WORKER_METRICS_PORT: String(port) } });
      started.push(w);
      const { code } = await w.exited();
      expect(code).not.toBe(0);
      expect(w.stderr() + JSON.stringify(w.logs)).toContain('ENCLAVE_WORKER_METRICS_PORT');
    } finally {
      blocker.close();
    }
  }, 30_000);
});
