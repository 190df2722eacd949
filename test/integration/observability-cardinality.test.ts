import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sys } from '../helpers/identity.js';
import { parseExposition } from '../helpers/promql.js';
import { observedStack, scrape, type ObservedStack } from './observability-env.js';

/**
 * 50 users with 50 keys call the gateway (and fail to sign in, and send broken keys): no label
 * value in either scrape is a user id, e-mail, key id or key prefix, and the series count does
 * not grow with the number of users.
 */
let stack: ObservedStack;
const secrets: string[] = [];
const forbidden = new Set<string>();

async function traffic(from: number, to: number): Promise<void> {
  const { env } = stack;
  for (let i = from; i < to; i++) {
    const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secrets[i]!, maxRetries: 0 });
    await client.chat.completions.create({ model: i % 2 ? 'gpt-fake' : 'llama3.1:8b', messages: [{ role: 'user', content: `hi from user ${i}` }] }, { headers: { 'x-enclave-workflow': `wf-${i % 3}` } });
    await fetch(`${env.app.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `user${i}@cardinality.test`, password: 'wrong password' }) });
    await fetch(`${env.app.url}/v1/models`, { headers: { authorization: `Bearer ${secrets[i]!.slice(0, -3)}xyz` } }); // a damaged real key
  }
}

async function series(): Promise<{ count: number; values: Set<string>; keys: Set<string> }> {
  let count = 0;
  const values = new Set<string>();
  const keys = new Set<string>();
  for (const url of [stack.env.app.url, stack.worker.url]) {
    for (const s of parseExposition(await scrape(url)).samples) {
      if (!s.name.startsWith('enclave_')) continue;
      // Job timings appear as the maintenance schedules run, whatever the users do.
      if (/^enclave_(queue_wait_seconds|job_duration_seconds)/.test(s.name)) continue;
      count++;
      keys.add(`${s.name}${JSON.stringify(s.labels)}`);
      for (const v of Object.values(s.labels)) values.add(v);
    }
  }
  return { count, values, keys };
}

beforeAll(async () => {
  stack = await observedStack();
  const s = stack.env.app.services;
  const tctx = stack.env.tenant.ctx;
  forbidden.add(stack.env.tenant.tenant.id);
  for (let i = 0; i < 50; i++) {
    const email = `user${i}@cardinality.test`;
    const u = await s.identity.users.create(sys(s), { email, password: 'correct horse battery staple' });
    await s.identity.users.grant(tctx, u.id, 'member');
    const { key, secret } = await s.identity.keys.create(tctx, { name: `key for ${email}`, ownerUserId: u.id });
    secrets.push(secret);
    for (const v of [u.id, email, key.id, key.prefix, secret, `key for ${email}`]) forbidden.add(v);
  }
}, 60_000);
afterAll(async () => stack?.close());

describe('label cardinality', () => {
  it('no label value identifies a user, e-mail or key; series do not grow with users', async () => {
    await traffic(0, 5);
    await series(); // the scrape's own series (route /metrics) exist from here on
    const small = await series();
    await traffic(5, 50);
    const large = await series();
    for (const v of large.values) {
      expect(forbidden.has(v), `label value ${v}`).toBe(false);
      expect(v, 'no e-mail in a label').not.toMatch(/@/);
      expect(v, 'no ids in a label').not.toMatch(/^(usr|key|ten|req|ses)_[0-9A-Za-z]{6,}/);
      expect(v, 'no key material in a label').not.toMatch(/enk_/);
    }
    // Ten times the users and keys: exactly the same series.
    expect([...large.keys].filter((k) => !small.keys.has(k)).slice(0, 30), 'new series').toEqual([]);
    expect(large.count).toBe(small.count);
    expect(large.count).toBeLessThan(2500);
  }, 60_000);
});
