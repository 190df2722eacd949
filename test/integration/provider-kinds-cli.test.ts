import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeAnthropic } from '../fakes/fake-anthropic.js';
import { FakeAzureOpenAI } from '../fakes/fake-azure-openai.js';
import { runCli, runCliOk } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * `enclave providers add|update|test` with the kinds' own flags (declared once in
 * server/providers/kinds.ts): settings from flags, secrets from files or stdin (never argv),
 * a flag of another kind refused, and a running server using what the CLI stored.
 */
let env: GatewayEnv;
let anthropic: FakeAnthropic;
let azure: FakeAzureOpenAI;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  env = await gatewayEnv();
  anthropic = await new FakeAnthropic().start();
  anthropic.apiKey = 'sk-ant-cli-0123456789';
  azure = await new FakeAzureOpenAI().start();
  const c = env.app.services.config;
  cliEnv = { ...process.env, ENCLAVE_DATA_DIR: c.dataDir, ENCLAVE_MASTER_KEY: c.masterKey!, REDIS_URL: c.redisUrl!, ENCLAVE_LOG_LEVEL: 'silent' } as Record<string, string>;
});
afterAll(async () => {
  await env?.close();
  await anthropic?.close();
  await azure?.close();
});

const cli = (...args: string[]) => runCliOk(['providers', ...args], cliEnv);

describe('enclave providers with kind flags', () => {
  it('adds an azure-openai deployment with Entra ID (secret from a file) and an anthropic one (key from stdin); the server calls both', async () => {
    const secretFile = path.join(env.app.services.config.dataDir, 'entra-secret.txt');
    writeFileSync(secretFile, `${azure.entra.clientSecret}\n`);
    const az = await cli(
      'add', '--name', 'az-cli', '--kind', 'azure-openai', '--base-url', azure.url, '--boundary', 'private', '--region', 'westeurope', '--models', 'gpt4o-prod',
      '--azure-api-version', '2024-10-21', '--entra-tenant-id', azure.entra.tenant, '--entra-client-id', azure.entra.clientId,
      '--entra-token-url', `${azure.url}/${azure.entra.tenant}/oauth2/v2.0/token`, '--entra-client-secret-file', secretFile, '--json',
    );
    const d = JSON.parse(az.stdout) as Record<string, unknown>;
    expect(d).toMatchObject({ kind: 'azure-openai', region: 'westeurope', has_credentials: true, has_api_key: false, settings: { api_version: '2024-10-21', entra_client_id: azure.entra.clientId } });
    expect(az.stdout).not.toContain(azure.entra.clientSecret);
    const an = await runCli(['providers', 'add', '--name', 'claude-cli', '--kind', 'anthropic', '--base-url', anthropic.url, '--boundary', 'private', '--models', 'claude-fake-1', '--anthropic-version', '2023-06-01', '--api-key-stdin'], cliEnv, `${anthropic.apiKey}\n`);
    expect(an.code, an.stderr).toBe(0);
    await waitFor(() => env.app.services.gateway.catalogue.deployment('claude-cli'), { what: 'claude-cli in the catalogue' });
    for (const model of ['gpt4o-prod', 'claude-fake-1']) {
      const r = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
      expect(r.choices[0]!.message.content, model).toBe('Hello from the fake model.');
    }
    expect(azure.tokenRequests).toBe(1);
    expect(anthropic.requests.at(-1)!.headers['anthropic-version']).toBe('2023-06-01');
  });

  it("refuses a flag of another kind, and a kind's missing essentials, with a one-line reason", async () => {
    const wrong = await runCli(['providers', 'add', '--name', 'x1', '--kind', 'anthropic', '--boundary', 'public', '--entra-client-id', 'c'], cliEnv);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--entra-client-id is not an option of kind anthropic/);
    const missing = await runCli(['providers', 'add', '--name', 'x2', '--kind', 'azure-openai', '--boundary', 'private', '--azure-resource', 'contoso'], cliEnv);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/API key or Entra ID/);
    expect(await env.app.services.gateway.deployments.find('x1')).toBeUndefined();
  });

  it('test names the cause without the secret; update replaces the secret from a file', async () => {
    const bad = path.join(env.app.services.config.dataDir, 'bad-secret.txt');
    writeFileSync(bad, 'entra-wrong-secret-77\n');
    await cli('update', 'az-cli', '--entra-client-secret-file', bad);
    const t = await runCli(['providers', 'test', 'az-cli'], cliEnv);
    expect(t.code).not.toBe(0);
    expect(t.stdout + t.stderr).toMatch(/refused the credentials.*invalid_client/);
    expect(t.stdout + t.stderr).not.toContain('entra-wrong-secret-77');
  });
});
