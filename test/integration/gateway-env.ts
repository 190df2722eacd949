import OpenAI from 'openai';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import type { Logger } from 'pino';
import type { Clock } from '../../server/clock.js';
import type { Config } from '../../server/config/settings.js';
import { FakeOllama } from '../fakes/fake-ollama.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';

/**
 * Deployment settings for tests that are not about time-outs: fast retries (no multi-second
 * back-off), and time-outs far above what an answer from a local fake takes even on a loaded
 * 2-core machine (400 ms to the first token, as before, failed ordinary calls under load).
 * A test of a time-out sets its own short limit on its own deployment (gateway-faults,
 * http-timeouts, gateway-backpressure) against a fault that outlasts it.
 */
export const FAST = { connectMs: 10_000, firstTokenMs: 10_000, idleMs: 10_000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 1, queueMs: 10_000, breakerFailures: 3, breakerCooldownMs: 10_000 };

export interface GatewayEnv {
  app: TestApp;
  ollama: FakeOllama;
  openai: FakeOpenAI;
  tenant: Awaited<ReturnType<typeof seedTenant>>;
  key: string;
  keyId: string;
  client: OpenAI;
  addProvider(input: Record<string, unknown>): Promise<Record<string, any>>;
  /** The tenant's usage records, after writing the pending ones. */
  usage(): Promise<Record<string, any>[]>;
  close(): Promise<void>;
}

export async function gatewayEnv(opts: { clock?: Clock; entitlements?: Entitlements; log?: Logger; config?: Config } = {}): Promise<GatewayEnv> {
  const ollama = await new FakeOllama().start();
  const openai = await new FakeOpenAI().start();
  const app = await startTestApp({ entitlements: opts.entitlements ?? unrestricted, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.log ? { log: opts.log } : {}), ...(opts.config ? { config: opts.config } : {}) });
  const tenant = await seedTenant(app.services, 'gw', ['owner', 'member']);
  const { key, secret } = await app.services.identity.keys.create(tenant.ctx, { name: 'gw', ownerUserId: tenant.users.member!.id });
  const s = app.services;
  return {
    app,
    ollama,
    openai,
    tenant,
    key: secret,
    keyId: key.id,
    client: new OpenAI({ baseURL: `${app.url}/v1`, apiKey: secret, maxRetries: 0 }),
    addProvider: (input) => s.gateway.deployments.create(sys(s), { options: FAST, ...input }),
    usage: async () => {
      await s.gateway.usage.flush();
      return (await s.tenantStore.usageRecords.list(tenant.ctx)) as Record<string, any>[];
    },
    close: async () => {
      await app.close();
      await ollama.close();
      await openai.close();
    },
  };
}

