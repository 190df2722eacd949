import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { sys } from '../helpers/identity.js';
import { FAST, gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16, "quota overshoot under parallel calls": a monthly_tokens 100 plan admitted 144
 * tokens with 20 parallel calls, because the reservation ignored `n` (and tool/system
 * content). The reservation is now pessimistic — prompt estimate with system and tool
 * content, plus max_tokens × n, or the deployment's maxOutputTokens × n when the client sends
 * no max_tokens — so the budget is passed by at most one call's actual use. Through the real
 * gateway, the real redis-server and the fake OpenAI upstream (which honours n and max_tokens
 * as the real API does).
 */
const clock = { t: Date.UTC(2025, 2, 15, 12), now(): number { return this.t; } };
let env: GatewayEnv;
beforeAll(async () => {
  env = await gatewayEnv({ clock, entitlements: unrestricted });
  const options = FAST;
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'], options });
  await env.addProvider({ name: 'cloud-2', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: [{ name: 'gpt-short', upstream: 'gpt-fake' }], options: { ...options, maxOutputTokens: 6 } });
  const s = env.app.services;
  await s.metering.plans.upsert(sys(s), { name: 'hundred', limits: { monthly_tokens: 100 } });
  await s.metering.plans.assign(sys(s), env.tenant.tenant.id, 'hundred');
});
afterAll(async () => env?.close());

/** A fresh month: fresh monthly counters for each case. */
function nextMonth(): void {
  const d = new Date(clock.t);
  clock.t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 15, 12);
}

async function chat(body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const r = await fetch(`${env.app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/** 20 calls at once; the tokens the served ones used (as the upstream reported them). */
async function parallel(body: Record<string, unknown>): Promise<{ served: number; refused: any[]; used: number; perCall: number[] }> {
  const rs = await Promise.all(Array.from({ length: 20 }, () => chat(body)));
  const ok = rs.filter((r) => r.status === 200);
  for (const r of rs) if (r.status !== 200) expect(r.status).toBe(429);
  const perCall = ok.map((r) => r.body.usage.total_tokens as number);
  return { served: ok.length, refused: rs.filter((r) => r.status === 429).map((r) => r.body.error), used: perCall.reduce((a, b) => a + b, 0), perCall };
}

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'hello there' },
];

describe('monthly_tokens 100, 20 parallel calls', () => {
  it('with n: 4 the budget is passed by at most one call’s use', async () => {
    nextMonth();
    const r = await parallel({ model: 'gpt-fake', messages, max_tokens: 6, n: 4 });
    expect(r.served).toBeGreaterThan(0);
    expect(r.refused.length).toBeGreaterThan(0);
    expect(r.refused[0]).toMatchObject({ code: 'quota_exceeded', level: 'tenant', limit: 'monthly_tokens' });
    const one = Math.max(...r.perCall);
    expect(r.used).toBeLessThanOrEqual(100 + one);
  });

  it('without max_tokens the deployment’s maxOutputTokens × n is reserved (calls are served, the budget holds)', async () => {
    nextMonth();
    const r = await parallel({ model: 'gpt-short', messages, n: 2 });
    expect(r.served).toBeGreaterThan(0);
    const one = Math.max(...r.perCall);
    expect(r.used).toBeLessThanOrEqual(100 + one);
  });

  it('streaming calls hold the same bound', async () => {
    nextMonth();
    const rs = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await fetch(`${env.app.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-fake', messages, max_tokens: 6, n: 3, stream: true, stream_options: { include_usage: true } }),
        });
        const text = await res.text();
        const usage = text
          .split('\n')
          .filter((l) => l.startsWith('data: {'))
          .map((l) => JSON.parse(l.slice(6)))
          .find((c) => c.usage)?.usage;
        return { status: res.status, tokens: usage?.total_tokens as number | undefined };
      }),
    );
    const ok = rs.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThan(0);
    expect(rs.length - ok.length).toBeGreaterThan(0);
    const per = ok.map((r) => r.tokens!);
    expect(per.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(100 + Math.max(...per));
  });
});
