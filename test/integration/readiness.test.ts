import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

async function readyz(app: TestApp): Promise<{ status: number; body: { status: string; checks: Record<string, { status: string; detail?: string }> } }> {
  const res = await fetch(`${app.url}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

let app: TestApp | undefined;
let redis: PrivateRedis | undefined;
afterAll(async () => {
  await app?.close();
  await redis?.close();
});

describe('/readyz follows Redis', () => {
  it('turns 503 when Redis goes away, keeps serving, and recovers when it returns', async () => {
    redis = await startPrivateRedis();
    app = await startTestApp({ env: { REDIS_URL: redis.url() } });
    expect((await readyz(app)).status).toBe(200);

    await redis.stop();
    const down = await readyz(app);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('not_ready');
    expect(down.body.checks.redis!.status).toBe('fail');
    expect(down.body.checks.database!.status).toBe('ok');
    // Liveness is not readiness: the process is fine.
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);

    await redis.start();
    const back = await waitFor(() => readyz(app!), { until: (r) => r.status === 200, what: '/readyz ready again' });
    expect(back.body.checks.redis!.status).toBe('ok');
  });
});
