/**
 * The CPU one traced call costs in-process (issue 25), without the noise of HTTP and other
 * processes: the spans of one /v1 chat call as the gateway makes them (server span with the
 * client's traceparent, call span, plan/admission/attempt stages, one upstream try and its
 * traceparent header, the answer, the end) against the same async steps untraced — with the
 * collector down (a closed port), so every export fails and the queue drops.
 *
 *   node --import tsx bench/otel-spans.ts [--calls 20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../server/config/load.js';
import type { RequestContext } from '../server/context.js';
import type { CallState, GatewayCall } from '../server/gateway/call.js';
import type { ChatCompletion } from '../server/providers/index.js';
import type { Deployment } from '../server/routing/catalogue.js';
import { withTraceHeaders } from '../server/telemetry/active.js';
import { startTelemetry } from '../server/telemetry/index.js';

const i = process.argv.indexOf('--calls');
const N = i > 0 ? Number(process.argv[i + 1]) : 20_000;

const s = net.createServer();
await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
const port = (s.address() as net.AddressInfo).port;
await new Promise<void>((r) => s.close(() => r()));
const dir = mkdtempSync(path.join(tmpdir(), 'enclave-otel-spans-'));
const config = loadConfig({ ENCLAVE_DATA_DIR: dir, ENCLAVE_LOG_LEVEL: 'silent', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: '500' });
const registry = new Registry();
const t = (await startTelemetry(config, { log: pino({ level: 'silent' }), registry }))!;

// The shapes the pipeline hands telemetry, with what a call of the gateway bench carries.
const ctx = { requestId: 'req_bench', tenant: { id: 'ten_bench', slug: 'bench' }, scopes: [] } as unknown as RequestContext;
const req = { method: 'POST', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'content-type': 'application/json' } } as unknown as IncomingMessage;
const res = { statusCode: 200 } as unknown as ServerResponse;
const call: GatewayCall = { api: 'chat', endpoint: 'chat', body: { model: 'gpt-fake', messages: [{ role: 'user', content: 'hi' }], max_tokens: 64 } };
const dep = { id: 'dep_bench', name: 'fake', kind: 'openai', baseUrl: 'http://127.0.0.1:9/v1', boundary: 'private' } as unknown as Deployment;
const answer = { id: 'x', object: 'chat.completion', created: 0, model: 'gpt-fake', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 } } as unknown as ChatCompletion;
const st = { status: 'ok', attempts: 1, classification: 'internal', deployment: dep, model: 'gpt-fake', promptTokens: 20, completionTokens: 5, estimated: false, policy: {}, errorCode: null, ttftMs: null, redactedTypes: undefined, cache: undefined, reservation: undefined } as unknown as CallState;
const headers = { authorization: 'Bearer x', 'content-type': 'application/json' };

async function traced(): Promise<void> {
  await t.http(ctx, req, res, '/v1/chat/completions', async () => {
    const c = t.call(ctx, call);
    c.stage('admission');
    c.stage('attempt');
    await c.upstream(dep, 'gpt-fake', async () => withTraceHeaders(headers));
    c.answer(answer);
    c.end(st);
  });
}

async function untraced(): Promise<void> {
  await (async () => {
    await (async () => withTraceHeaders(headers))();
  })();
}

async function measure(fn: () => Promise<void>): Promise<number> {
  for (let k = 0; k < 2000; k++) await fn(); // warm-up
  const c0 = process.cpuUsage();
  for (let k = 0; k < N; k++) await fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
}

const results: Record<string, number[]> = { untraced: [], traced: [] };
for (let round = 0; round < 3; round++) {
  results.untraced!.push(await measure(untraced));
  results.traced!.push(await measure(traced));
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
console.log(`${N} calls × 3 rounds, CPU µs per call (median round): untraced ${med(results.untraced!).toFixed(1)}, traced ${med(results.traced!).toFixed(1)}, tracing costs ${(med(results.traced!) - med(results.untraced!)).toFixed(1)} µs per call (6 spans)`);
const text = await registry.metrics();
console.log(text.split('\n').filter((l) => l.startsWith('enclave_otel_spans')).join('\n'));
await t.shutdown();
rmSync(dir, { recursive: true, force: true });
