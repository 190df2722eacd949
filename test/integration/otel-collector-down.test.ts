import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { OtlpReceiver } from '../fakes/otlp-receiver.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { parseExposition } from '../helpers/promql.js';
import { waitFor } from '../helpers/wait.js';
import { FAST } from './gateway-env.js';

/**
 * The collector is down (nothing listens on its port): every call still succeeds and every
 * usage record is written; spans beyond the small export queue are dropped and counted
 * (enclave_otel_spans_dropped_total), failed exports too; when the collector comes back on
 * the same port (OTLP JSON this time), the next spans reach it. Latency with the collector
 * down is measured by the bench (bench/README.md, "OpenTelemetry").
 */
let app: TestApp;
let upstream: FakeOpenAI;
let rx: OtlpReceiver | undefined;
let port: number;
let client: OpenAI;
let tenantCtx: Awaited<ReturnType<typeof seedTenant>>['ctx'];

beforeAll(async () => {
  // A free port with nothing on it: the "collector" is down.
  const probe = await new OtlpReceiver().start();
  port = probe.port;
  await probe.close();
  upstream = await new FakeOpenAI().start();
  app = await startTestApp({
    entitlements: unrestricted,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '20',
      OTEL_BSP_MAX_QUEUE_SIZE: '16',
      OTEL_EXPORTER_OTLP_TIMEOUT: '300',
    },
  });
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'cloud-1', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: FAST });
  const tenant = await seedTenant(s, 'otel-down', ['owner', 'member']);
  tenantCtx = tenant.ctx;
  const k = await s.identity.keys.create(tenant.ctx, { name: 'otel', ownerUserId: tenant.users.member!.id });
  client = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: k.secret, maxRetries: 0 });
});

afterAll(async () => {
  await app?.close();
  await upstream?.close();
  await rx?.close();
});

async function dropped(): Promise<Record<string, number>> {
  const { samples } = parseExposition(await app.services.metrics.registry.metrics());
  const out: Record<string, number> = {};
  for (const s of samples) if (s.name === 'enclave_otel_spans_dropped_total') out[s.labels.reason!] = s.value;
  return out;
}

describe('OpenTelemetry with the collector down', () => {
  it('calls succeed, every usage record is written, drops are counted; export resumes when the collector is back', async () => {
    const N = 12;
    // Four at a time: more finished spans than the queue holds while the exporter retries a dead port.
    for (let i = 0; i < N; i += 4) {
      const rs = await Promise.all([0, 1, 2, 3].map((j) => client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `call ${i + j}` }] })));
      for (const r of rs) expect(r.choices[0]!.message.content).toBeTruthy();
    }
    await app.services.gateway.usage.flush();
    const rows = await app.services.tenantStore.usageRecords.list(tenantCtx);
    expect(rows.filter((r) => r.status === 'ok')).toHaveLength(N);

    // At least 5 spans per call against a queue of 16: most were dropped, each one counted.
    const d = await waitFor(dropped, { until: (x) => (x.queue_full ?? 0) > 0 && (x.export_failed ?? 0) > 0, what: 'queue_full and export_failed drops counted' });
    expect((d.queue_full ?? 0) + (d.export_failed ?? 0)).toBeGreaterThan(N);

    // The collector comes back where it was: new calls' spans reach it.
    rx = await new OtlpReceiver().start(port);
    await waitFor(
      async () => {
        await client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'after' }] });
        return rx!.spans.some((s) => s.name === 'POST /v1/chat/completions');
      },
      { timeout: 15_000, what: 'spans at the collector once it is back' },
    );
    expect(rx.spans.every((s) => s.encoding === 'json')).toBe(true);
  });
});
