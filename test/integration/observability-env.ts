import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { unrestricted } from '../../server/access/entitlements.js';
import { createServices, type Services } from '../../server/app.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { startWorkerMetricsServer, type WorkerMetricsServer } from '../../server/metrics/worker-server.js';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort } from '../../server/redis/ping.js';
import { PASSWORD, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The api (in process, real HTTP) plus a worker built the way `--role worker` builds it (its
 * own Services and registry on the same data dir and Redis, the BullMQ lanes, and the worker
 * metrics server), with the fake upstreams behind two deployments.
 */
export interface ObservedStack {
  env: GatewayEnv;
  worker: { services: Services; jobs: JobWorker; metrics: WorkerMetricsServer; url: string };
  close(): Promise<void>;
}

export async function observedStack(): Promise<ObservedStack> {
  const env = await gatewayEnv({ entitlements: unrestricted });
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b,nomic-embed-text' });
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, api_key: 'sk-upstream-secret', boundary: 'public', models: ['gpt-fake', 'text-embedding-fake'] });
  env.openai.apiKey = 'sk-upstream-secret';
  // Nothing listens there: its breaker opens during the workload (the "provider down" signal).
  await env.addProvider({ name: 'down-1', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', boundary: 'private', models: ['gone-model'] });
  // A plan with monthly limits (enclave_quota_used_ratio) and a price for the cloud model (enclave_gateway_cost_micros_total).
  const s = env.app.services;
  await s.metering.plans.upsert(sys(s), { name: 'observed', limits: { monthly_tokens: 10_000_000, monthly_cost_micros: 1_000_000_000 } });
  await s.metering.plans.assign(sys(s), env.tenant.tenant.id, 'observed');
  await s.metering.pricing.set(sys(s), { model: 'gpt-fake', input_micros_per_mtok: 2_500_000, output_micros_per_mtok: 10_000_000 });
  const services = await createServices(env.app.services.config, { log: pino({ level: 'silent' }), passwordLogN: 10, entitlements: unrestricted });
  const jobs = await startWorker(services);
  const metrics = await startWorkerMetricsServer({ metrics: services.metrics, port: 0, host: '127.0.0.1' });
  return {
    env,
    worker: { services, jobs, metrics, url: `http://127.0.0.1:${metrics.port}` },
    close: async () => {
      await jobs.close().catch(() => undefined);
      await metrics.close();
      await services.close();
      await env.close();
    },
  };
}

/** A scripted mix: both adapters, streaming, embeddings, a retried upstream error, a policy refusal, content-rule hits, auth failures. */
export async function workload(s: ObservedStack, rounds = 1): Promise<void> {
  const { env } = s;
  const c = env.client;
  for (let i = 0; i < rounds; i++) {
    for (const model of ['llama3.1:8b', 'gpt-fake']) {
      await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello there' }] });
      const stream = await c.chat.completions.create({ model, messages: [{ role: 'user', content: 'stream it' }], stream: true });
      for await (const _ of stream) void _;
    }
    await c.embeddings.create({ model: 'nomic-embed-text', input: 'embed me' });
    await c.embeddings.create({ model: 'text-embedding-fake', input: ['a', 'b'] });
    env.openai.fail('server_error'); // retried once (FAST.maxRetries), then answered
    await c.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'retry me' }] });
    await c.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'write to jane.doe@example.com please' }] });
    // restricted data may not reach a public deployment: 403 policy_*, nothing sent upstream
    await c.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'secret' }] }, { headers: { 'x-enclave-classification': 'restricted' } }).catch(() => undefined);
    await fetch(`${env.app.url}/v1/models`, { headers: { authorization: 'Bearer enk_not_a_real_key' } });
    await fetch(`${env.app.url}/v1/models`);
    await fetch(`${env.app.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: env.tenant.users.member!.email, password: 'wrong password' }) });
    await fetch(`${env.app.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: env.tenant.users.owner!.email, password: PASSWORD }) });
    await fetch(`${env.app.url}/healthz`);
    for (let k = 0; k < 2; k++) await c.chat.completions.create({ model: 'gone-model', messages: [{ role: 'user', content: 'anyone?' }] }).catch(() => undefined);
  }
}

export async function scrape(url: string): Promise<string> {
  const r = await fetch(`${url}/metrics`);
  if (r.status !== 200) throw new Error(`GET ${url}/metrics: ${r.status}`);
  return r.text();
}

/** A real Prometheus (Debian package) on 127.0.0.1 scraping the given jobs every second, with the shipped rules. */
export interface PromServer {
  readonly url: string;
  query(expr: string): Promise<{ status: string; error?: string; data?: { resultType: string; result: unknown[] } }>;
  close(): Promise<void>;
}

/** One line, like the other tools' hints (redis-server's in global-setup). */
export const PROMETHEUS_MISSING = 'prometheus is not installed: the observability tests run a real Prometheus. Install it with: apt-get install -y prometheus';

export async function startPrometheus(jobs: Record<string, string>, ruleFiles: string[]): Promise<PromServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-prom-'));
  const rules = ruleFiles.map((f, i) => {
    const to = path.join(dir, `rules-${i}.yml`);
    writeFileSync(to, readFileSync(f));
    return to;
  });
  const scrapeConfigs = Object.entries(jobs)
    .map(([job, target]) => `  - job_name: ${job}\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: ["${target}"]\n`)
    .join('');
  writeFileSync(path.join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n${rules.map((r) => `  - ${r}\n`).join('')}scrape_configs:\n${scrapeConfigs}`);
  const exe = findExecutable('prometheus');
  if (!exe) throw new Error(PROMETHEUS_MISSING);
  const port = await freePort();
  const child: ChildProcess = spawn(
    exe,
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited: ${err}`);
        return fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      },
      { timeout: 15_000, interval: 100, what: 'prometheus ready' },
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}; stderr: ${err}`);
  }
  return {
    url,
    query: async (expr) => {
      const r = await fetch(`${url}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ query: expr }) });
      return (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown[] } };
    },
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
