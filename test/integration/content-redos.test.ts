import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, login } from '../helpers/identity.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16 through the running gateway: content rules cannot stall the process (a tenant
 * pattern `(a+)+$` froze it for 32 s for every tenant; "a."×15000 blocked /healthz), and a
 * deeply nested body is refused at the door without counting against the deployment's
 * circuit breaker. Time bounds are ratios to a plain prompt of the same length (best of 3).
 */
let env: GatewayEnv;
const REDOS = [
  { name: 'ssn', pattern: '\\b\\d{3}-\\d{2}-\\d{4}\\b' },
  { name: 'redos-1', pattern: '(a+)+$' },
  { name: 'redos-2', pattern: '(a|aa)+$' },
  { name: 'redos-3', pattern: '(\\w+\\s?)+$' },
];

beforeAll(async () => {
  env = await gatewayEnv();
  env.addProvider({ name: 'public-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'public', models: ['gpt-fake'], options: { maxRetries: 0 } });
  const all = { email: 'redact', phone: 'redact', iban: 'redact', card: 'redact', national_id: 'redact', secret: 'redact' };
  env.app.services.gateway.policies.write(env.tenant.ctx, { content: { default: all, nationalIdPatterns: REDOS } }, Date.now());
});
afterAll(async () => {
  await env?.close();
});

async function chat(content: string): Promise<{ status: number; ms: number; body: any }> {
  const t = performance.now();
  const r = await fetch(`${env.app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content }] }),
  });
  const body = await r.json();
  return { status: r.status, ms: performance.now() - t, body };
}

async function best(content: string): Promise<number> {
  let b = Infinity;
  for (let k = 0; k < 3; k++) {
    const r = await chat(content);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    b = Math.min(b, r.ms);
  }
  return b;
}

const PLAIN = 'The quick brown fox jumps over the lazy dog. ';
const plainOf = (n: number) => PLAIN.repeat(Math.ceil(n / PLAIN.length)).slice(0, n);

describe('tenant patterns are compiled with RE2', () => {
  it('the policy API refuses a pattern RE2 cannot compile with a 400 naming the field', async () => {
    const owner = await login(env.app.url, env.tenant.users.owner!.email);
    for (const pattern of ['(a)\\1', '(?=ssn)\\d+', '(?<!x)y']) {
      const r = await call(env.app.url, '/admin/api/gateway/policy', { method: 'PUT', session: owner, body: { content: { nationalIdPatterns: [{ name: 'bad', pattern }] } } });
      expect(r.status, pattern).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', param: 'content.nationalIdPatterns.0.pattern' });
      expect(r.body.error.message).toMatch(/RE2 cannot compile this pattern/);
    }
    // The stored policy is unchanged (still the REDOS set).
    expect((env.app.services.gateway.policies.read(env.tenant.ctx) as any).content.nationalIdPatterns).toEqual(REDOS);
  });
});

describe('pathological prompts take about as long as plain ones', () => {
  const catalogue: Record<string, string> = {
    'aaaa…! (26 characters) against (a+)+$': 'a'.repeat(25) + '!',
    'aaaa…! (40k characters) against (a+)+$': 'a'.repeat(39_999) + '!',
    '"a."×15000 (quadratic e-mail regex)': 'a.'.repeat(15_000),
    'word characters then ! against (\\w+\\s?)+$': 'ab1 '.repeat(10_000) + '!',
    'long digit run': '1'.repeat(40_000),
    'digits and spaces': '1 '.repeat(20_000),
  };
  for (const [name, text] of Object.entries(catalogue)) {
    it(name, async () => {
      const plain = plainOf(text.length);
      await chat(plain); // warm the path
      const ratio = (await best(text)) / (await best(plain));
      expect(ratio, `${ratio.toFixed(1)}×`).toBeLessThan(20);
    });
  }

  it('what is found is still redacted before it goes upstream', async () => {
    env.openai.requests.length = 0;
    const r = await chat('a'.repeat(5000) + ' SSN 123-45-6789 and jane@example.com');
    expect(r.status).toBe(200);
    const sent = JSON.stringify(env.openai.requests.at(-1)!.body);
    expect(sent).not.toContain('123-45-6789');
    expect(sent).not.toContain('jane@example.com');
    expect(sent).toContain('[REDACTED_NATIONAL_ID]');
  });

  it('/healthz stays responsive while pathological prompts are processed', async () => {
    const slow = [chat('a'.repeat(39_999) + '!'), chat('a.'.repeat(20_000)), chat('a'.repeat(39_999) + '!')];
    const t = performance.now();
    const h = await fetch(`${env.app.url}/healthz`);
    const healthMs = performance.now() - t;
    expect(h.status).toBe(200);
    const results = await Promise.all(slow);
    for (const r of results) expect(r.status).toBe(200);
    // The process answered /healthz while three 40k-character scans were queued on it: the old
    // engine took seconds (or forever) on each; a linear scan takes milliseconds.
    expect(healthMs).toBeLessThan(2_000);
  });
});

describe('deeply nested bodies are refused at the door', () => {
  it('200k levels: 400 invalid_request, and three of them do not open the breaker', async () => {
    const deep = `{"model":"gpt-fake","messages":[{"role":"user","content":"hi"}],"metadata":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    for (let k = 0; k < 3; k++) {
      const r = await fetch(`${env.app.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' }, body: deep });
      const body = (await r.json()) as any;
      expect(r.status).toBe(400);
      expect(body.error.code).toBe('invalid_request');
      expect(JSON.stringify(body)).not.toMatch(/call stack|ECONNREFUSED|127\.0\.0\.1/);
    }
    const unbalanced = await fetch(`${env.app.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${env.key}`, 'content-type': 'application/json' }, body: '['.repeat(200_000) });
    expect(unbalanced.status).toBe(400);
    expect(((await unbalanced.json()) as any).error.code).toBe('invalid_request');
    // The deployment still serves everyone.
    const ok = await chat('hello');
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});
