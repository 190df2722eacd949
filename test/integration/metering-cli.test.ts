import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { createServices } from '../../server/app.js';
import { loadConfig } from '../../server/config/load.js';
import { tempDir, testRedisUrl } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { seedTenant } from '../helpers/identity.js';

const enclave = (args: string[], env: Record<string, string>) => runCli(args, env);

describe('enclave usage | prices | plans', () => {
  it('sets prices and plans, assigns a plan, reports a month by model (JSON and CSV)', async () => {
    const env = { ENCLAVE_DATA_DIR: tempDir(), REDIS_URL: testRedisUrl(), ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_LOG_LEVEL: 'silent' };
    const s = await createServices(loadConfig(env), { log: pino({ level: 'silent' }), entitlements: unrestricted, passwordLogN: 10 });
    const t = await seedTenant(s, 'acme', ['owner']);
    const base = { tenantId: t.tenant.id, userId: t.users.owner!.id, keyId: null, workflow: null, endpoint: 'chat', alias: 'gpt-4o', deploymentId: 'prv_1', provider: 'openai', boundary: 'public', classification: 'internal', policy: '{}', tokensEstimated: false, latencyMs: 5, ttftMs: null, stream: false, attempts: 1, httpStatus: 200, errorCode: null, priceVersion: null };
    const at = Date.UTC(2025, 4, 10);
    s.gateway.usage.record({ ...base, id: 'use_1', requestId: 'req_1', model: 'gpt-4o', promptTokens: 1000, completionTokens: 500, costMicros: 7500, status: 'ok', createdAt: at });
    s.gateway.usage.record({ ...base, id: 'use_2', requestId: 'req_2', model: 'gpt-4o-mini', promptTokens: 10, completionTokens: 0, costMicros: 0, status: 'error', createdAt: at + 1000 });
    await s.gateway.usage.flush();
    await s.close();

    let r = await enclave(['prices', 'set', 'gpt-4o', '--input', '3000000', '--output', '12000000', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const price = JSON.parse(r.stdout);
    expect(price).toMatchObject({ model: 'gpt-4o', input_micros_per_mtok: 3_000_000, source: 'admin' });
    r = await enclave(['prices', 'list', '--json'], env);
    const list = JSON.parse(r.stdout) as { model: string; version: number; source: string }[];
    expect(list.find((p) => p.model === 'gpt-4o')).toMatchObject({ version: price.version, source: 'admin' });
    expect(list.find((p) => p.model === 'gpt-4o-mini')).toMatchObject({ source: 'bundled' });
    expect((await enclave(['prices', 'set', 'x', '--input', '1.5', '--output', '1'], env)).code).toBe(2);

    r = await enclave(['plans', 'set', 'team', '--monthly-tokens', '1000000', '--rpm', '60', '--capabilities', 'batch_api,self_service_keys', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'team', limits: { monthly_tokens: 1_000_000, requests_per_minute: 60 }, capabilities: ['batch_api', 'self_service_keys'] });
    expect((await enclave(['plans', 'assign', 'acme', 'team'], env)).code).toBe(0);
    expect((await enclave(['plans', 'assign', 'acme', 'nope'], env)).code).toBe(3);

    r = await enclave(['usage', 'report', '--tenant', 'acme', '--month', '2025-05', '--by', 'model', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.rows).toEqual([
      { group: 'gpt-4o', requests: 1, errors: 0, prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500, cost_micros: 7500 },
      { group: 'gpt-4o-mini', requests: 1, errors: 1, prompt_tokens: 10, completion_tokens: 0, total_tokens: 10, cost_micros: 0 },
    ]);
    r = await enclave(['usage', 'report', '--tenant', 'acme', '--month', '2025-05', '--by', 'user', '--csv'], env);
    expect(r.stdout.split('\n')[0]).toBe('user,requests,errors,prompt_tokens,completion_tokens,total_tokens,cost_micros');
    expect((await enclave(['usage', 'report', '--tenant', 'acme', '--month', '2025-13'], env)).code).toBe(2);
  }, 60_000);
});
