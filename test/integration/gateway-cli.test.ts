import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, login, PASSWORD, sys } from '../helpers/identity.js';
import { REPLY_PIECES } from '../fakes/common.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

let env: GatewayEnv;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  env = await gatewayEnv();
  const c = env.app.services.config;
  cliEnv = { ...process.env, ENCLAVE_DATA_DIR: c.dataDir, ENCLAVE_MASTER_KEY: c.masterKey!, REDIS_URL: c.redisUrl!, ENCLAVE_LOG_LEVEL: 'silent' } as Record<string, string>;
});
afterAll(async () => env?.close());

const cli = (...args: string[]) => runCliOk(['providers', ...args], cliEnv);
const cliStdin = (args: string[], input: string) => runCli(['providers', ...args], cliEnv, input + '\n');

describe('enclave providers (CLI) and the admin API', () => {
  it('add → a running server routes to it within 1 s; list never shows the credential; test; remove', async () => {
    await cli('add', '--name', 'ollama-1', '--kind', 'ollama', '--base-url', env.ollama.url, '--boundary', 'local', '--models', 'llama3.1:8b,nomic-embed-text');
    const added = await cliStdin(['add', '--name', 'cloud-1', '--kind', 'openai', '--base-url', `${env.openai.url}/v1`, '--boundary', 'private', '--models', 'gpt-fake', '--api-key-stdin', '--json'], 'sk-cli-secret');
    expect(added.code).toBe(0);
    expect(added.stdout).not.toContain('sk-cli-secret');
    const t0 = Date.now();
    await waitFor(() => env.app.services.gateway.catalogue.deployment('cloud-1'), { what: 'deployment cloud-1 in the catalogue' });
    expect(Date.now() - t0).toBeLessThan(1000);
    const r = await env.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.message.content).toBe(REPLY_PIECES.join(''));
    await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'hi' }] });
    expect(env.openai.requests.at(-1)!.headers.authorization).toBe('Bearer sk-cli-secret');

    const { stdout } = await cli('list', '--json');
    const list = JSON.parse(stdout) as any[];
    expect(list.map((d) => d.name).sort()).toEqual(['cloud-1', 'ollama-1']);
    expect(stdout).not.toContain('sk-cli-secret');
    const row = ((await rawRows(env.app.services.store, sql`SELECT api_key FROM provider_deployments WHERE name = 'cloud-1'`)) as { api_key: string }[])[0]!;
    expect(row.api_key).not.toContain('sk-cli-secret');

    const test = JSON.parse((await cli('test', 'ollama-1', '--json')).stdout);
    expect(test).toMatchObject({ ok: true, models: ['llama3.1:8b', 'nomic-embed-text'] });

    await cli('alias', 'set', 'chat-default', '--targets', 'ollama-1=llama3.1:8b@1,cloud-1=gpt-fake@2');
    await waitFor(() => env.app.services.gateway.catalogue.candidates('chat-default', env.tenant.tenant.id).length, { until: (n) => n === 2, what: '2 candidates for chat-default' });
    const viaAlias = await env.client.chat.completions.create({ model: 'chat-default', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(viaAlias.response.headers.get('x-enclave-boundary')).toBe('local');

    await cli('update', 'ollama-1', '--disable');
    await waitFor(() => env.app.services.gateway.catalogue.deployment('ollama-1')?.enabled, { until: (e) => e === false, what: 'ollama-1 disabled in the catalogue' });
    const e = await env.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] }).catch((x) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);

    await cli('remove', 'cloud-1');
    const bad = await cli('remove', 'cloud-1').catch((x: { code: number; stderr: string }) => x);
    expect((bad as { code: number }).code).not.toBe(0);
    expect((bad as { stderr: string }).stderr).toMatch(/^enclave: /);
  }, 60_000); // nine CLI processes, each compiling the sources through tsx

  it('admin API: platform administrators manage deployments; health shows the breaker; others are refused', async () => {
    const s = env.app.services;
    await s.identity.users.create(sys(s), { email: 'root@gw.test', password: PASSWORD, platformAdmin: true });
    const admin = await login(env.app.url, 'root@gw.test');
    const created = await call(env.app.url, '/admin/api/providers', {
      method: 'POST',
      session: admin,
      body: { name: 'vllm-1', kind: 'openai', base_url: `${env.openai.url}/v1`, api_key: 'sk-admin-api', boundary: 'private', models: ['gpt-fake'] },
    });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain('sk-admin-api');
    const h = await call(env.app.url, `/admin/api/providers/${created.body.id}/health`, { session: admin });
    expect(h.body.breaker.state).toBe('closed');
    const member = await login(env.app.url, env.tenant.users.member!.email);
    const denied = await call(env.app.url, '/admin/api/providers', { session: member });
    expect(denied.status).toBe(403);
    const viaKey = await call(env.app.url, '/admin/api/providers', { key: env.key });
    expect(viaKey.status).toBe(403);
  });
});
