import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/app.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16: /metrics never names a tenant-private deployment (a tenant administrator's own
 * endpoint: its name is the tenant's business); its series carry `tenant_private`, and its
 * breaker state is not exported per deployment. Platform deployments keep their names.
 */
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv({ config: testConfig({ ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' }) });
});
afterAll(async () => {
  await env?.close();
});

describe('metric labels of tenant-private deployments', () => {
  it('label calls through a private deployment tenant_private, platform ones by name', async () => {
    await env.addProvider({ name: 'platform-shared', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['shared-model'] });
    await env.addProvider({ name: 'acme-project-falcon', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['falcon-model'], tenant_id: env.tenant.tenant.id });
    expect((await env.app.services.gateway.deployments.get('acme-project-falcon')).tenant_id).toBe(env.tenant.tenant.id);
    for (const model of ['shared-model', 'falcon-model']) {
      const r = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
      expect(r.choices[0]?.message.content).toBeTruthy();
    }
    await env.client.chat.completions.create({ model: 'falcon-model', messages: [{ role: 'user', content: 'hi' }], stream: true }).then(async (s) => {
      for await (const _c of s) void _c;
    });
    await env.app.services.gateway.usage.flush();
    const text = await (await fetch(`${env.app.url}/metrics`)).text();
    expect(text).not.toContain('acme-project-falcon');
    expect(text).toMatch(/^enclave_gateway_requests_total\{[^}]*deployment="tenant_private"[^}]*\} 2$/m);
    expect(text).toMatch(/^enclave_gateway_requests_total\{[^}]*deployment="platform-shared"[^}]*\} 1$/m);
    expect(text).toMatch(/^enclave_gateway_upstream_attempts_total\{deployment="tenant_private",result="ok"\} 2$/m);
    expect(text).toMatch(/^enclave_provider_up\{deployment="platform-shared"\} 1$/m);
    expect(text).not.toMatch(/^enclave_provider_up\{deployment="tenant_private"/m);
  });
});
