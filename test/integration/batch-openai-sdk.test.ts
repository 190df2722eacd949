import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import { AppError } from '../../server/errors.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { seedTenant } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';
import { FAST, gatewayEnv, type GatewayEnv } from './gateway-env.js';

/** Licence token allowance used as the quota: refuse once this many tokens were used this month. */
let tokenLimit = Number.POSITIVE_INFINITY;
const entitlements: Entitlements = {
  ...unrestricted,
  checkTokens: (used, requested) =>
    used + requested > tokenLimit
      ? { allowed: false, limit: tokenLimit, error: new AppError(429, 'quota_tokens_exceeded', 'Monthly token allowance used up.', { type: 'quota_error' }) }
      : { allowed: true, limit: null },
};

let env: GatewayEnv;
let worker: JobWorker;
let client: OpenAI;
let keyId: string;

function jsonl(n: number, model = 'gpt-fake', prefix = 'r'): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({ custom_id: `${prefix}${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'word '.repeat(i + 1).trim() }] } }),
  ).join('\n');
}

/** The batch once it is in a final state. */
function settled(c: OpenAI, id: string, ms = 15_000): Promise<OpenAI.Batch> {
  return waitFor(() => c.batches.retrieve(id), { until: (b) => ['completed', 'failed', 'expired', 'cancelled'].includes(b.status), timeout: ms, what: `batch ${id} in a final state` });
}

beforeAll(async () => {
  env = await gatewayEnv({ entitlements });
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake', 'text-embedding-fake'], options: FAST });
  const { key, secret } = await env.app.services.identity.keys.create(env.tenant.ctx, { name: 'batch', ownerUserId: env.tenant.users.member!.id, scopes: ['models:invoke', 'embeddings:create', 'batches:write'] });
  keyId = key.id;
  client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
  worker = await startWorker(env.app.services);
});
afterAll(async () => {
  await worker?.close();
  await env?.close();
});

describe('Batch API with the openai SDK', () => {
  it('files.create → batches.create → retrieve → files.content: results match inputs line by line, usage carries the batch id', async () => {
    const earlier = env.openai.requests.length; // other tests' calls (any order) are not this batch's
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(6)), 'in.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'in.jsonl', status: 'processed' });
    expect((await client.files.retrieve(file.id)).bytes).toBe(Buffer.byteLength(jsonl(6)));
    expect(await (await client.files.content(file.id)).text()).toBe(jsonl(6));

    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { job: 'nightly' } });
    expect(created).toMatchObject({ object: 'batch', status: 'validating', input_file_id: file.id, request_counts: { total: 6, completed: 0, failed: 0 }, metadata: { job: 'nightly' } });
    const done = await settled(client, created.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    expect(done.error_file_id).toBeNull();
    expect(done.in_progress_at).not.toBeNull();
    expect(done.completed_at).not.toBeNull();

    const out = (await (await client.files.content(done.output_file_id!)).text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(out.map((o) => o.custom_id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
    out.forEach((o, i) => {
      expect(o.error).toBeNull();
      expect(o.response.status_code).toBe(200);
      expect(o.response.request_id).toMatch(/^req_/);
      expect(o.response.body.object).toBe('chat.completion');
      expect(o.response.body.model).toBe('gpt-fake');
      // the fake counts the words of the prompt: line i sent i+1 words
      expect(o.response.body.usage.prompt_tokens).toBe(i + 1);
    });
    const sent = env.openai.requests.slice(earlier).filter((r) => r.path === '/v1/chat/completions').map((r) => r.body.messages[0].content);
    expect(sent.sort()).toEqual(Array.from({ length: 6 }, (_, i) => 'word '.repeat(i + 1).trim()).sort());

    const usage = (await env.usage()).filter((u) => u.workflow === created.id);
    expect(usage).toHaveLength(6);
    for (const u of usage) {
      expect(u.keyId).toBe(keyId);
      expect(u.status).toBe('ok');
    }
    expect(new Set(usage.map((u) => u.requestId))).toEqual(new Set(out.map((o) => o.response.request_id)));

    const list = await client.batches.list({ limit: 10 });
    expect(list.data.map((b) => b.id)).toContain(created.id);
  });

  it('quotas apply to batch lines: refused lines land in the error file with the quota code', async () => {
    const before = (await env.usage()).reduce((n, u) => n + u.promptTokens + u.completionTokens, 0);
    tokenLimit = before + 20; // room for a couple of lines only
    try {
      const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(8, 'gpt-fake', 'q')), 'q.jsonl'), purpose: 'batch' });
      const b = await settled(client, (await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id);
      expect(b.status).toBe('completed');
      expect(b.request_counts!.failed).toBeGreaterThan(0);
      expect(b.request_counts!.completed + b.request_counts!.failed).toBe(8);
      const errs = (await (await client.files.content(b.error_file_id!)).text()).trim().split('\n').map((l) => JSON.parse(l));
      expect(errs.length).toBe(b.request_counts!.failed);
      for (const e of errs) {
        expect(e.response.status_code).toBe(429);
        expect(e.response.body.error.code).toBe('quota_tokens_exceeded');
      }
      // refused lines are metered too (status refused), still with the batch id
      const usage = (await env.usage()).filter((u) => u.workflow === b.id);
      expect(usage).toHaveLength(8);
      expect(usage.filter((u) => u.status === 'refused')).toHaveLength(b.request_counts!.failed);
    } finally {
      tokenLimit = Number.POSITIVE_INFINITY;
    }
  });

  it('every bad line is named at upload; purpose and endpoint are checked', async () => {
    const bad = [
      '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-fake","messages":[{"role":"user","content":"x"}]}}',
      'not json',
      '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-fake","messages":[{"role":"user","content":"x"}]}}',
      '{"custom_id":"c","method":"GET","url":"/v1/chat/completions","body":{}}',
      '{"custom_id":"d","method":"POST","url":"/v1/completions","body":{"model":"m"}}',
      '{"custom_id":"e","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}',
      '{"method":"POST","url":"/v1/chat/completions","body":{}}',
    ].join('\n');
    const err = await client.files.create({ file: await toFile(Buffer.from(bad), 'bad.jsonl'), purpose: 'batch' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const msg = (err as InstanceType<typeof OpenAI.BadRequestError>).message;
    for (const needle of ['line 2: not valid JSON', 'line 3: custom_id "a" is used more than once', 'line 4: method must be "POST"', 'line 5: url must be one of', 'line 6: body.model is required', 'line 7: custom_id is required']) {
      expect(msg).toContain(needle);
    }
    const purpose = await client.files.create({ file: await toFile(Buffer.from(jsonl(1)), 'x.jsonl'), purpose: 'fine-tune' }).catch((e: unknown) => e);
    expect((purpose as { code?: string }).code).toBe('invalid_purpose');
    // assistants files are knowledge's (issue 20): this key has no files:write scope.
    const kb = await client.files.create({ file: await toFile(Buffer.from('notes'), 'x.md'), purpose: 'assistants' }).catch((e: unknown) => e);
    expect((kb as { code?: string }).code).toBe('key_scope_missing');
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(1)), 'x.jsonl'), purpose: 'batch' });
    const ep = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }).catch((e: unknown) => e);
    expect((ep as { status?: number }).status).toBe(400);
    const win = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '1h' as '24h' }).catch((e: unknown) => e);
    expect((win as { code?: string }).code).toBe('invalid_completion_window');
  });

  it('cross-tenant: files and batches of tenant B are 404 for tenant A', async () => {
    const s = env.app.services;
    const b = await seedTenant(s, 'other', ['owner']);
    const { secret } = await s.identity.keys.create(b.ctx, { name: 'b', ownerUserId: b.users.owner!.id, scopes: ['models:invoke', 'batches:write'] });
    const clientB = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
    const fileB = await clientB.files.create({ file: await toFile(Buffer.from(jsonl(1)), 'b.jsonl'), purpose: 'batch' });
    const batchB = await clientB.batches.create({ input_file_id: fileB.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    for (const p of [client.files.retrieve(fileB.id), client.files.content(fileB.id), client.batches.retrieve(batchB.id), client.batches.cancel(batchB.id)]) {
      const e = await p.then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    }
    // nor can A start a batch on B's file
    const e = await client.batches.create({ input_file_id: fileB.id, endpoint: '/v1/chat/completions', completion_window: '24h' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((await client.batches.list()).data.map((x) => x.id)).not.toContain(batchB.id);
    expect((await client.files.list()).data.map((x) => x.id)).not.toContain(fileB.id);
    await settled(clientB, batchB.id);
  });

  it('a key without batches:write is refused', async () => {
    const e = await env.client.files.create({ file: await toFile(Buffer.from(jsonl(1)), 'x.jsonl'), purpose: 'batch' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.PermissionDeniedError);
  });
});
