import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type OpenAI from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reencryptSecrets } from '../../server/config/rotate-master-key.js';
import { SecretBox } from '../../server/config/secret-box.js';
import type { Config } from '../../server/config/settings.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { sqliteStore } from '../../server/db/store.js';
import { workerSchedules } from '../../server/jobs/runtime.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { call, login, ManualClock, seedTenant, sys, type Session } from '../helpers/identity.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Opt-in content logging end to end, with real parts: the openai SDK against /v1, the fake
 * OpenAI-compatible upstream, a real SQLite file (read raw to prove what is and is not in
 * it), the real redis, the admin API with sessions and keys, the audit log, the retention
 * schedule on a manual clock, and master-key rotation followed by a restart on the new key.
 */
const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2030, 0, 1));
const logs: string[] = [];
const masterKey = randomBytes(32).toString('base64');
let config: Config;
let env: GatewayEnv;
let app2: TestApp | undefined;
let owner: Session;
let other: Awaited<ReturnType<typeof seedTenant>>;
let otherOwner: Session;
const T = () => env.tenant.tenant.id;
const marker = (what: string) => `MARKER-${what}-${randomBytes(6).toString('hex')}`;

/** Every byte SQLite has on disk for this data dir (main file and write-ahead log). */
function dbBytes(): Buffer {
  const f = databaseFile(config.dataDir);
  return Buffer.concat([f, `${f}-wal`].filter((p) => existsSync(p)).map((p) => readFileSync(p)));
}
async function flush(): Promise<void> {
  await env.usage();
  await env.app.services.gateway.content.flush();
}
const contentRows = () => (env.app.services.sqlite!.$client.prepare('SELECT COUNT(*) AS n FROM call_contents').get() as { n: number }).n;
const base = () => `/admin/api/tenants/${T()}`;

/** One plain chat, one streaming chat, one embeddings call, each carrying its own marker; returns request ids. */
async function threeCalls(tag: string) {
  const m = { plain: marker(`${tag}-plain`), stream: marker(`${tag}-stream`), embed: marker(`${tag}-embed`) };
  const plain = await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `tell me about ${m.plain}` }] }).withResponse();
  const s = await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: `stream about ${m.stream}` }], stream: true }).withResponse();
  let streamed = '';
  for await (const ch of s.data) streamed += ch.choices[0]?.delta?.content ?? '';
  const emb = await env.client.embeddings.create({ model: 'text-embedding-fake', input: m.embed }).withResponse();
  const id = (r: { response: Response }) => r.response.headers.get('x-request-id')!;
  return { m, ids: { plain: id(plain), stream: id(s), embed: id(emb) }, texts: { plain: plain.data.choices[0]!.message.content, streamed } };
}

beforeAll(async () => {
  config = testConfig({ ENCLAVE_MASTER_KEY: masterKey });
  env = await gatewayEnv({ clock, config, log: pino({ level: 'trace' }, { write: (l: string) => void logs.push(l) }) });
  await env.addProvider({ name: 'cloud-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake', 'text-embedding-fake'] });
  other = await seedTenant(env.app.services, 'other', ['owner']);
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  otherOwner = await login(env.app.url, other.users.owner!.email);
});
afterAll(async () => {
  if (app2) {
    await app2.close();
    await env.ollama.close();
    await env.openai.close();
  } else await env?.close();
});

// In order, also under --sequence.shuffle: one tenant's setting told as a story (off, on,
// readers, a lapsed plan, retention on the manual clock, then a key rotation that restarts the
// app); each step starts from the state the previous one left, which a fresh set-up per test
// would have to replay.
describe('content logging (per-tenant opt-in)', { shuffle: false }, () => {
  let enabled: Awaited<ReturnType<typeof threeCalls>>;

  it('is off by default: prompts and completions appear nowhere on disk nor in the logs', async () => {
    const s = await call(env.app.url, `${base()}/content-logging`, { session: owner });
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ enabled: false, retention_days: 30, plan_allows: true });
    // The obsolete policy flag does not turn anything on (the policy API points to the setting).
    const legacy = await call(env.app.url, '/admin/api/gateway/policy', { method: 'PUT', session: owner, body: { contentLogging: true } });
    expect(legacy.status).toBe(400);
    expect(legacy.body.error.message).toContain('/content-logging');
    const off = await threeCalls('off');
    expect(off.texts).toEqual({ plain: 'Hello from the fake model.', streamed: 'Hello from the fake model.' });
    await flush();
    expect((await env.usage()).length).toBeGreaterThanOrEqual(3);
    expect(contentRows()).toBe(0);
    const bytes = dbBytes();
    for (const v of Object.values(off.m)) {
      expect(bytes.includes(v), `${v} on disk`).toBe(false);
      expect(logs.some((l) => l.includes(v)), `${v} in logs`).toBe(false);
    }
    // The checks above look at the right bytes: what the calls did write (request ids) is there.
    for (const id of Object.values(off.ids)) {
      expect(bytes.includes(id), `${id} on disk`).toBe(true);
      expect(logs.some((l) => l.includes(id)), `${id} in logs`).toBe(true);
    }
  });

  it('enabling is audited; afterwards each call stores one encrypted row, readable by the tenant admin (audited)', async () => {
    const put = await call(env.app.url, `${base()}/content-logging`, { method: 'PUT', session: owner, body: { enabled: true } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ enabled: true, retention_days: 30 });
    const change = await env.app.services.identity.audit.list({ action: 'tenant.content_logging', limit: 5 });
    expect(change[0]).toMatchObject({ outcome: 'allowed', actorId: env.tenant.users.owner!.id });
    expect(JSON.parse(change[0]!.details)).toMatchObject({ before: { enabled: false }, after: { enabled: true, retention_days: 30 } });

    enabled = await threeCalls('on');
    // The tool-call path, streamed: the deltas of the tool call are assembled.
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const toolRun = await env.client.chat.completions.create({ model: 'gpt-fake', messages: [{ role: 'user', content: 'weather?' }], tools, stream: true }).withResponse();
    for await (const _ of toolRun.data) void _;
    const toolId = toolRun.response.headers.get('x-request-id')!;
    await flush();
    expect(contentRows()).toBe(4);

    const bytes = dbBytes();
    expect(bytes.includes(enabled.ids.plain)).toBe(true);
    for (const v of Object.values(enabled.m)) {
      expect(bytes.includes(v), `${v} on disk in clear`).toBe(false);
      expect(logs.some((l) => l.includes(v)), `${v} in logs`).toBe(false);
    }

    const auditBefore = await env.app.services.identity.audit.count();
    const plain = await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { session: owner });
    expect(plain.status).toBe(200);
    expect(plain.body.data).toHaveLength(1);
    expect(plain.body.data[0]).toMatchObject({
      object: 'call_content',
      request_id: enabled.ids.plain,
      endpoint: 'chat',
      model: 'gpt-fake',
      stream: false,
      status: 'ok',
      request: { messages: [{ role: 'user', content: `tell me about ${enabled.m.plain}` }] },
      response: { choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the fake model.' }, finish_reason: 'stop' }] },
    });
    expect(plain.body.data[0].usage_id).toBe((await env.usage()).find((u) => u.requestId === enabled.ids.plain)!.id);
    expect(plain.body.data[0].expires_at).toBe(new Date(clock.now() + 30 * DAY).toISOString());

    const streamed = await call(env.app.url, `${base()}/content-logs/${enabled.ids.stream}`, { session: owner });
    expect(streamed.body.data[0]).toMatchObject({
      stream: true,
      request: { messages: [{ content: `stream about ${enabled.m.stream}` }] },
      response: { choices: [{ message: { role: 'assistant', content: enabled.texts.streamed }, finish_reason: 'stop' }] },
    });
    const embed = await call(env.app.url, `${base()}/content-logs/${enabled.ids.embed}`, { session: owner });
    expect(embed.body.data[0]).toMatchObject({ endpoint: 'embeddings', request: { input: enabled.m.embed }, response: { embeddings: 1 } });
    expect(embed.body.data[0].response.dimensions).toBeGreaterThan(0);
    const tool = await call(env.app.url, `${base()}/content-logs/${toolId}`, { session: owner });
    expect(tool.body.data[0].request.tools[0].function.name).toBe('get_weather');
    expect(tool.body.data[0].response.choices[0]).toMatchObject({ message: { tool_calls: [{ id: 'call_fake1', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }, finish_reason: 'tool_calls' });

    // Every read is audited (who, which request), and the audit log never holds the content.
    const reads = await env.app.services.identity.audit.list({ action: 'content.read', limit: 10 });
    expect((await env.app.services.identity.audit.count())).toBe(auditBefore + 4);
    expect(reads.map((r) => r.targetId)).toEqual(expect.arrayContaining([enabled.ids.plain, enabled.ids.stream, enabled.ids.embed, toolId]));
    expect(reads.every((r) => r.actorId === env.tenant.users.owner!.id && r.outcome === 'allowed')).toBe(true);
    const auditText = JSON.stringify(await rawRows(env.app.services.store, sql`SELECT * FROM audit_log`));
    for (const v of Object.values(enabled.m)) expect(auditText).not.toContain(v);
    expect(auditText).not.toContain('Hello from the fake model');

    // The list shows which calls have content, without any content.
    const list = await call(env.app.url, `${base()}/content-logs?limit=2`, { session: owner });
    expect(list.body.data).toHaveLength(2);
    expect(list.body.next_cursor).toBeTruthy();
    const rest = await call(env.app.url, `${base()}/content-logs?limit=10&cursor=${list.body.next_cursor}`, { session: owner });
    expect([...list.body.data, ...rest.body.data].map((e: { request_id: string }) => e.request_id).sort()).toEqual([...Object.values(enabled.ids), toolId].sort());
    expect(JSON.stringify(list.body)).not.toContain('MARKER');
  });

  it('needs content:read: members and admin:* keys are refused; a key with the content:read scope reads', async () => {
    const member = await login(env.app.url, env.tenant.users.member!.email);
    const r = await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { session: member });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('role_forbidden');
    const keys = env.app.services.identity.keys;
    const adminKey = (await keys.create(env.tenant.ctx, { name: 'admin', ownerUserId: env.tenant.users.owner!.id, scopes: ['admin:read', 'admin:write'] })).secret;
    expect((await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { key: adminKey })).body.error.code).toBe('key_scope_missing');
    const reader = await keys.create(env.tenant.ctx, { name: 'reader', ownerUserId: env.tenant.users.owner!.id, scopes: ['content:read'] });
    const ok = await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { key: reader.secret });
    expect(ok.status).toBe(200);
    expect((await env.app.services.identity.audit.list({ action: 'content.read', limit: 1 }))[0]!.actorId).toBe(reader.key.id);
    // Changing the setting is settings:write (members cannot).
    expect((await call(env.app.url, `${base()}/content-logging`, { method: 'PUT', session: member, body: { enabled: false } })).status).toBe(403);
  });

  it("another tenant's admin gets 404 for the request id, through either tenant path, and it is audited", async () => {
    const own = await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/content-logs/${enabled.ids.plain}`, { session: otherOwner });
    expect(own.status).toBe(404);
    expect(own.body.error.code).toBe('not_found');
    expect(JSON.stringify(own.body)).not.toContain('MARKER');
    const denied = (await env.app.services.identity.audit.list({ actorId: other.users.owner!.id, outcome: 'denied', limit: 1 }))[0]!;
    expect(denied).toMatchObject({ action: 'content.read', reason: 'not_found', targetId: enabled.ids.plain, tenantRef: other.tenant.id });

    const theirs = await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { session: otherOwner });
    expect(theirs.status).toBe(404);
    expect((await env.app.services.identity.audit.list({ actorId: other.users.owner!.id, outcome: 'denied', limit: 1 }))[0]).toMatchObject({ reason: 'not_found', targetId: T() });
    expect((await call(env.app.url, `${base()}/content-logging`, { method: 'PUT', session: otherOwner, body: { enabled: false } })).status).toBe(404);
  });

  it('enabling needs the plan capability (403); when the plan loses it nothing more is stored, stored content stays readable', async () => {
    const plans = env.app.services.metering.plans;
    await plans.upsert(sys(env.app.services), { name: 'basic', capabilities: ['cloud_providers', 'batch_api', 'self_service_keys'] });
    await plans.assign(sys(env.app.services), other.tenant.id, 'basic');
    const refused = await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/content-logging`, { method: 'PUT', session: otherOwner, body: { enabled: true } });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('plan_forbidden');
    expect(refused.body.error.message).toContain('content_logging');
    expect((await env.app.services.identity.audit.list({ action: 'tenant.content_logging', outcome: 'denied', limit: 1 }))[0]).toMatchObject({ reason: 'plan_forbidden', tenantRef: other.tenant.id });
    expect((await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/content-logging`, { session: otherOwner })).body).toMatchObject({ enabled: false, plan_allows: false });
    // Other settings stay editable without the capability.
    expect((await call(env.app.url, `/admin/api/tenants/${other.tenant.id}/content-logging`, { method: 'PUT', session: otherOwner, body: { retention_days: 7 } })).status).toBe(200);

    // The logging tenant's plan lapses: calls go on, nothing more is stored.
    await plans.assign(sys(env.app.services), T(), 'basic');
    const lapsed = await threeCalls('lapsed');
    await flush();
    expect(contentRows()).toBe(4);
    expect(dbBytes().includes(lapsed.m.plain)).toBe(false);
    expect((await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { session: owner })).status).toBe(200);
    expect((await call(env.app.url, `${base()}/content-logs/${lapsed.ids.plain}`, { session: owner })).status).toBe(404);
    await plans.assign(sys(env.app.services), T(), null);
  });

  it('a shorter retention applies to stored rows; the retention schedule deletes expired rows (never served after expiry)', async () => {
    const put = await call(env.app.url, `${base()}/content-logging`, { method: 'PUT', session: owner, body: { retention_days: 2 } });
    expect(put.body).toMatchObject({ enabled: true, retention_days: 2 });
    expect(JSON.parse((await env.app.services.identity.audit.list({ action: 'tenant.content_logging', limit: 1 }))[0]!.details)).toMatchObject({ expiry_shortened: 4 });
    const purge = workerSchedules(env.app.services).find((x) => x.id === 'content-retention')!;
    expect(purge.every).toBe(3600_000);
    expect(await purge.run({} as never, {} as never)).toEqual({ callContents: 0 });

    clock.advance(2 * DAY + 1);
    const key = (await env.app.services.identity.keys.create(env.tenant.ctx, { name: 'reader2', ownerUserId: env.tenant.users.owner!.id, scopes: ['content:read'] })).secret;
    expect((await call(env.app.url, `${base()}/content-logs/${enabled.ids.plain}`, { key })).status).toBe(404); // expired: not served even before the purge
    expect(contentRows()).toBe(4);
    expect(await purge.run({} as never, {} as never)).toEqual({ callContents: 4 });
    expect(contentRows()).toBe(0);
  });

  it('master-key rotation re-encrypts stored contents; after a restart on the new key they still decrypt', async () => {
    const kept = await threeCalls('rotate');
    await flush();
    expect(contentRows()).toBe(3);
    const s = env.app.services;
    await env.app.server.close(1000);
    await s.close();

    const newKey = randomBytes(32).toString('base64');
    const db = openDatabase(databaseFile(config.dataDir));
    try {
      const out = await reencryptSecrets(sqliteStore(db), new SecretBox(Buffer.from(masterKey, 'base64')), new SecretBox(Buffer.from(newKey, 'base64')));
      expect(out.values).toBeGreaterThanOrEqual(4); // the self-test value and the three contents
    } finally {
      db.$client.close();
    }

    app2 = await startTestApp({ config: { ...config, masterKey: newKey }, clock });
    const session = await login(app2.url, env.tenant.users.owner!.email);
    const r = await call(app2.url, `${base()}/content-logs/${kept.ids.plain}`, { session });
    expect(r.status).toBe(200);
    expect(r.body.data[0].request.messages[0].content).toBe(`tell me about ${kept.m.plain}`);
  });
});
