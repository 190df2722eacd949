import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort, pingTcp } from '../../server/redis/ping.js';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';

/** A private redis-server this test can stop and start again on the same port. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(findExecutable('redis-server')!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', tempDir()], { stdio: 'ignore' });
  while (!(await pingTcp('127.0.0.1', port, 200))) await new Promise((r) => setTimeout(r, 25));
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

async function readyz(app: TestApp): Promise<{ status: number; body: { status: string; checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await fetch(`${app.url}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

let app: TestApp | undefined;
let redis: ChildProcess | undefined;
afterAll(async () => {
  await app?.close();
  if (redis && redis.exitCode === null) await stopRedis(redis);
});

describe('/readyz follows Redis', () => {
  it('turns 503 when Redis goes away, keeps serving, and recovers when it returns', async () => {
    const port = await freePort();
    redis = await startRedis(port);
    app = await startTestApp({ env: { REDIS_URL: `redis://127.0.0.1:${port}/0` } });
    expect((await readyz(app)).status).toBe(200);

    await stopRedis(redis);
    const down = await readyz(app);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('not_ready');
    expect(down.body.checks.redis!.status).toBe('fail');
    expect(down.body.checks.database!.status).toBe('ok');
    // Liveness is not readiness: the process is fine.
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);

    redis = await startRedis(port);
    const deadline = Date.now() + 5000;
    let back = await readyz(app);
    while (back.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      back = await readyz(app);
    }
    expect(back.status).toBe(200);
  });
});
