import type { APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { AzureOpenAIAdapter } from '../../server/providers/azure-openai/adapter.js';
import { EntraTokenSource } from '../../server/providers/azure-openai/entra.js';
import { UpstreamError } from '../../server/providers/types.js';
import { FakeAzureOpenAI } from '../fakes/fake-azure-openai.js';
import { sys } from '../helpers/identity.js';
import { providerConformance } from './provider-conformance.js';

/**
 * The azure-openai kind against its fake: the shared conformance table (openai SDK through the
 * gateway), then Azure's own: content filter → provider_content_filtered, retry-after-ms,
 * DeploymentNotFound, Entra ID client-credentials tokens (cached, refreshed before expiry,
 * refused credentials reported without the secret), and the kind's configuration rules.
 */
const fakeKey = new FakeAzureOpenAI().apiKey;
const ctx = providerConformance({
  kind: 'azure-openai',
  startFake: () => new FakeAzureOpenAI().start(),
  deployment: (f) => ({ kind: 'azure-openai', base_url: f.url, api_key: f.apiKey, settings: { api_version: '2024-10-21' } }),
  wrongCredentials: () => ({ api_key: 'azure-wrong-key-9876543210' }),
  secrets: [fakeKey],
  chatModel: 'gpt4o-prod',
  embeddingModel: 'embed-prod',
  imageSeen: (body) => {
    expect(body.messages[0].content[1]).toEqual({ type: 'image_url', image_url: { url: expect.stringMatching(/^data:image\/png;base64,iVBOR/) } });
  },
  toolResultSeen: (body) => {
    expect(body.messages.at(-1)).toEqual({ role: 'tool', tool_call_id: 'call_azure1', content: '21 °C, sunny' });
  },
});

const entraSettings = (f: FakeAzureOpenAI) => ({
  entra_tenant_id: f.entra.tenant,
  entra_client_id: f.entra.clientId,
  entra_token_url: `${f.url}/${f.entra.tenant}/oauth2/v2.0/token`,
});

describe('azure-openai: its own cases', () => {
  it("a prompt Azure's content filter refuses is a 400 provider_content_filtered, not retried", async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup({ options: { maxRetries: 2 } });
    fake.fail('content_filter');
    const e = (await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'something violent' }] }).catch((x: unknown) => x)) as APIError;
    expect([e.status, e.code]).toEqual([400, 'provider_content_filtered']);
    expect(e.message).toMatch(/content filter flagged the prompt/);
    expect(fake.requests).toHaveLength(1);
    const u = (await env.usage()).sort((a, b) => (a.id < b.id ? -1 : 1)).at(-1)!;
    expect(u).toMatchObject({ status: 'error', errorCode: 'provider_content_filtered' });
  });

  it('an answer the filter cuts ends the stream with finish_reason content_filter', async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup();
    fake.fail('content_filter');
    const s = await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    let finish: string | null | undefined;
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe('Hello from');
    expect(finish).toBe('content_filter');
  });

  it("429's retry-after-ms wins over retry-after (whole seconds)", async () => {
    const { fake } = ctx();
    fake.reset();
    const a = new AzureOpenAIAdapter({ baseUrl: fake.url, apiKey: fake.apiKey });
    fake.fail({ mode: 'rate_limit', retryAfterS: 2 });
    const e = (await a.chat({ model: 'gpt4o-prod', messages: [{ role: 'user', content: 'hi' }] }, { signal: new AbortController().signal }).catch((x: unknown) => x)) as UpstreamError;
    expect(e).toBeInstanceOf(UpstreamError);
    expect([e.code, e.retryAfterMs]).toEqual(['provider_rate_limited', 2250]);
  });

  it('an unknown Azure deployment name is provider_model_not_found', async () => {
    const { env, setup } = ctx();
    await setup({ models: [{ name: 'azure-missing', upstream: 'no-such-deployment' }] });
    const e = (await env.client.chat.completions.create({ model: 'azure-missing', messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as APIError;
    expect([e.status, e.code]).toEqual([502, 'provider_model_not_found']);
  });

  it('Entra ID: one token for many calls, Bearer auth, no api-key; refused credentials named without the secret', async () => {
    const { env, fake, setup } = ctx();
    const { model } = await setup({ extra: { api_key: null, settings: entraSettings(fake), credentials: { entra_client_secret: fake.entra.clientSecret } } });
    for (let i = 0; i < 3; i++) expect((await env.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] })).choices[0]!.message.content).toBe('Hello from the fake model.');
    expect(fake.tokenRequests).toBe(1);
    const calls = fake.requests.filter((r) => r.path.startsWith('/openai/'));
    expect(calls).toHaveLength(3);
    for (const r of calls) {
      expect(r.headers.authorization).toMatch(/^Bearer eyJ/);
      expect(r.headers['api-key']).toBeUndefined();
    }
    const bad = await setup({ extra: { api_key: null, settings: entraSettings(fake), credentials: { entra_client_secret: 'entra-wrong-secret-42' } }, options: { maxRetries: 0 } });
    const e = (await env.client.chat.completions.create({ model: bad.model, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x)) as APIError;
    expect([e.status, e.code]).toEqual([502, 'provider_auth_failed']);
    const t = await env.app.services.gateway.deployments.test(bad.name);
    expect(t).toMatchObject({ ok: false, error_code: 'provider_auth_failed' });
    expect(t.error).toMatch(/invalid_client/);
    expect(t.error).not.toContain('entra-wrong-secret-42');
    expect(JSON.stringify(await env.app.services.gateway.deployments.get(bad.name))).not.toContain('entra-wrong-secret-42');
  });

  it('configuration rules: an API key or Entra ID (not both, not neither); the endpoint from the resource name; unknown and misplaced fields refused', async () => {
    const { env, fake } = ctx();
    const s = env.app.services;
    const create = async (input: Record<string, unknown>) => {
      try {
        return await s.gateway.deployments.create(sys(s), { boundary: 'public', kind: 'azure-openai', ...input });
      } catch (e) {
        return e as { status: number; code: string; message: string };
      }
    };
    expect(await create({ name: 'az-none', settings: { resource: 'contoso' } })).toMatchObject({ status: 400, message: expect.stringMatching(/API key or Entra ID/) });
    expect(await create({ name: 'az-both', api_key: 'k-123456', settings: { resource: 'contoso', ...entraSettings(fake) }, credentials: { entra_client_secret: 'x-123456' } })).toMatchObject({
      status: 400,
      message: expect.stringMatching(/not both/),
    });
    expect(await create({ name: 'az-half', settings: { resource: 'contoso', entra_client_id: 'c' } })).toMatchObject({ status: 400, message: expect.stringMatching(/entra_tenant_id, entra_client_id and entra_client_secret/) });
    expect(await create({ name: 'az-nourl', api_key: 'k-123456' })).toMatchObject({ status: 400, message: expect.stringMatching(/base_url: is required.*settings\.resource/) });
    expect(await create({ name: 'az-bad', api_key: 'k-123456', settings: { resource: 'contoso', nope: 'x' } })).toMatchObject({ status: 400, message: expect.stringMatching(/settings\.nope: kind azure-openai has no such setting/) });
    expect(await create({ name: 'az-sec', api_key: 'k-123456', settings: { resource: 'contoso', entra_client_secret: 'x' } })).toMatchObject({ status: 400, message: expect.stringMatching(/is a secret/) });
    expect(await create({ name: 'az-ver', api_key: 'k-123456', settings: { resource: 'contoso', api_version: 'latest' } })).toMatchObject({ status: 400, message: expect.stringMatching(/settings\.api_version/) });
    const ok = (await create({ name: 'az-ok', api_key: 'k-123456', settings: { resource: 'contoso' } })) as { base_url: string; settings: Record<string, unknown>; has_credentials: boolean };
    expect(ok).toMatchObject({ base_url: 'https://contoso.openai.azure.com', settings: { resource: 'contoso' }, has_credentials: false });
    // Switching to Entra ID in a patch: the key must go in the same patch.
    const patched = await s.gateway.deployments.update(sys(s), 'az-ok', { api_key: null, settings: entraSettings(fake), credentials: { entra_client_secret: 'x-123456' } });
    expect(patched).toMatchObject({ has_api_key: false, has_credentials: true, settings: { entra_client_id: fake.entra.clientId } });
    expect(JSON.stringify(patched)).not.toContain('x-123456');
  });
});

describe('Entra ID token cache', () => {
  it('refreshes before expiry, once for concurrent callers, and not after a failure', async () => {
    const fake = await new FakeAzureOpenAI().start();
    try {
      let now = 1_000_000;
      fake.entra.ttlS = 3600;
      const src = new EntraTokenSource({ tokenUrl: `${fake.url}/${fake.entra.tenant}/oauth2/v2.0/token`, clientId: fake.entra.clientId, clientSecret: fake.entra.clientSecret }, () => now);
      const sig = new AbortController().signal;
      const first = await Promise.all(Array.from({ length: 5 }, () => src.get(sig)));
      expect(new Set(first).size).toBe(1);
      expect(fake.tokenRequests).toBe(1);
      now += 3600_000 - 300_001; // just before the refresh point (5 min before expiry)
      expect(await src.get(sig)).toBe(first[0]);
      expect(fake.tokenRequests).toBe(1);
      now += 2; // inside the margin: refreshed while the old token is still valid
      const second = await src.get(sig);
      expect(second).not.toBe(first[0]);
      expect(fake.tokenRequests).toBe(2);
      // A refused refresh is an auth failure and is retried by the next call, not cached.
      fake.entra.clientSecret = 'rotated';
      now += 3600_000;
      await expect(src.get(sig)).rejects.toMatchObject({ code: 'provider_auth_failed' });
      await expect(src.get(sig)).rejects.toMatchObject({ code: 'provider_auth_failed' });
      expect(fake.tokenRequests).toBe(4);
    } finally {
      await fake.close();
    }
  });
});
