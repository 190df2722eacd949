import { sql } from 'drizzle-orm';
import OpenAI, { toFile } from 'openai';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityRepo } from '../../server/db/repos/identity.js';
import { KnowledgeRepo } from '../../server/db/repos/knowledge.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { gatewayEmbedder, type Embedder } from '../../server/knowledge/embed.js';
import { createKnowledge } from '../../server/knowledge/index.js';
import { ingestFile } from '../../server/knowledge/ingest.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { call, login, seedTenant } from '../helpers/identity.js';
import { rawRows } from '../helpers/stores.js';
import { FAST, gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Knowledge (issue 20) end to end with the official openai SDK: files (purpose assistants),
 * vector stores, createAndPoll / uploadAndPoll through the worker's ingest lane, hybrid
 * search, file_search on the Responses face with file_citation annotations, the data
 * boundary (a confidential file's passages never reach a public deployment: counted on the
 * fakes), tenancy, and the faults (malformed PDF, embedding upstream down, a worker stopped
 * mid-ingestion). One app and one worker for the whole file.
 */
const PLANTED = 'The vault code of the Zanzibar office is 4417-QX.';
const FILLER =
  'Quarterly planning covers budgets, hiring, facilities and travel. Each team reviews its goals, its spending and its risks, ' +
  'and the finance group consolidates the figures into one report for the board. ';

/** A 30-page PDF (real text layer) with the planted fact on page 17 only. */
async function thirtyPagePdf(): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (let i = 1; i <= 30; i++) {
    const page = doc.addPage();
    page.drawText(`Section ${i}: operations`, { x: 50, y: 780, size: 16, font });
    const lines = [...Array.from({ length: 8 }, (_, j) => `Line ${j + 1} of page ${i}. ${FILLER.slice(0, 80)}`), ...(i === 17 ? [PLANTED] : [])];
    lines.forEach((l, j) => page.drawText(l, { x: 50, y: 740 - j * 16, size: 10, font }));
  }
  return Buffer.from(await doc.save());
}

let env: GatewayEnv;
let pub: FakeOpenAI;
let down: FakeOpenAI;
let worker: JobWorker;
let client: OpenAI;
let other: OpenAI;

const chunksOf = async (where: { vs?: string; file?: string }): Promise<number> => {
  const s = env.app.services.store;
  const rows = await rawRows(
    s,
    where.vs && where.file
      ? sql`SELECT count(*) AS n FROM knowledge_chunks WHERE vector_store_id = ${where.vs} AND file_id = ${where.file}`
      : where.vs
        ? sql`SELECT count(*) AS n FROM knowledge_chunks WHERE vector_store_id = ${where.vs}`
        : sql`SELECT count(*) AS n FROM knowledge_chunks WHERE file_id = ${where.file}`,
  );
  return Number(rows[0]!.n);
};

beforeAll(async () => {
  env = await gatewayEnv();
  env.openai.wordEmbeddings = true;
  pub = await new FakeOpenAI().start();
  pub.wordEmbeddings = true;
  down = await new FakeOpenAI().start();
  down.failAlways('server_error');
  await env.addProvider({ name: 'private-1', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake', 'text-embedding-fake'], options: FAST });
  await env.addProvider({
    name: 'public-1',
    kind: 'openai',
    base_url: `${pub.url}/v1`,
    boundary: 'public',
    models: [
      { name: 'gpt-pub', upstream: 'gpt-fake' },
      { name: 'x-embed-pub', upstream: 'text-embedding-fake', type: 'embedding' },
    ],
    options: FAST,
  });
  await env.addProvider({ name: 'down-1', kind: 'openai', base_url: `${down.url}/v1`, boundary: 'private', models: [{ name: 'x-embed-down', upstream: 'text-embedding-fake', type: 'embedding' }], options: FAST });
  const ids = env.app.services.identity;
  const scopes = ['models:invoke', 'embeddings:create', 'files:write', 'knowledge:write'] as const;
  const { secret } = await ids.keys.create(env.tenant.ctx, { name: 'kb', ownerUserId: env.tenant.users.member!.id, scopes: [...scopes] });
  client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: secret, maxRetries: 0 });
  const b = await seedTenant(env.app.services, 'other', ['owner']);
  const ok = await ids.keys.create(b.ctx, { name: 'kb-b', ownerUserId: b.users.owner!.id, scopes: [...scopes] });
  other = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: ok.secret, maxRetries: 0 });
  worker = await startWorker(env.app.services);
}, 60_000);
afterAll(async () => {
  await worker?.close();
  await env?.close();
  await pub?.close();
  await down?.close();
});

const poll = { pollIntervalMs: 100 };

describe('knowledge with the openai SDK', () => {
  let vsId: string;
  let fileId: string;

  it('files.create (assistants) → vectorStores.create → files.createAndPoll → search finds the planted fact of a 30-page PDF, with its page', async () => {
    const file = await client.files.create({ file: await toFile(await thirtyPagePdf(), 'handbook.pdf'), purpose: 'assistants' });
    expect(file).toMatchObject({ object: 'file', purpose: 'assistants', filename: 'handbook.pdf' });
    fileId = file.id;
    const vs = await client.vectorStores.create({ name: 'Handbooks' });
    expect(vs).toMatchObject({ object: 'vector_store', name: 'Handbooks', status: 'completed', file_counts: { total: 0 } });
    vsId = vs.id;
    const embedsBefore = env.openai.requests.filter((r) => r.path === '/v1/embeddings').length;

    const done = await client.vectorStores.files.createAndPoll(vs.id, { file_id: file.id }, poll);
    expect(done.status, JSON.stringify(done.last_error)).toBe('completed');
    expect(done.last_error).toBeNull();
    expect(done.usage_bytes).toBeGreaterThan(0);
    // Embedded THROUGH the gateway: the upstream saw the calls, and each has a usage record (api knowledge).
    expect(env.openai.requests.filter((r) => r.path === '/v1/embeddings').length).toBeGreaterThan(embedsBefore);
    const usage = (await env.usage()).filter((u) => u.api === 'knowledge');
    expect(usage.length).toBeGreaterThan(0);
    expect(usage[0]).toMatchObject({ endpoint: 'embeddings', workflow: 'knowledge', status: 'ok', alias: 'text-embedding-fake' });

    const res = await client.vectorStores.search(vs.id, { query: 'Zanzibar vault code', max_num_results: 5 });
    expect(res.data.length).toBeGreaterThan(0);
    const top = res.data[0]!;
    expect(top.file_id).toBe(file.id);
    expect(top.filename).toBe('handbook.pdf');
    expect(top.content[0]!.text).toContain('4417-QX');
    expect((top as unknown as { page: number }).page).toBe(17);
    expect(top.score).toBeGreaterThan(0);
    expect(top.score).toBeLessThanOrEqual(1);
    // No other passage holds the fact (it is on one page only).
    expect(res.data.slice(1).some((d) => d.content[0]!.text.includes('4417-QX'))).toBe(false);

    const store = await client.vectorStores.retrieve(vs.id);
    expect(store.file_counts).toMatchObject({ completed: 1, total: 1, in_progress: 0 });
    expect((await client.vectorStores.files.list(vs.id)).data.map((f) => f.id)).toEqual([file.id]);
  });

  it('score_threshold and filters narrow the results', async () => {
    const none = await client.vectorStores.search(vsId, { query: 'Zanzibar vault code', ranking_options: { score_threshold: 1 } });
    expect(none.data.every((d) => d.score >= 1)).toBe(true);
    const filtered = await client.vectorStores.search(vsId, { query: 'Zanzibar vault code', filters: { type: 'eq', key: 'team', value: 'legal' } });
    expect(filtered.data).toEqual([]);
  });

  it('fileBatches.uploadAndPoll ingests Markdown and HTML; the HTML page chrome and scripts are not indexed', async () => {
    const vs = await client.vectorStores.create({ name: 'Mixed' });
    const md = '# Travel policy\n\nEmployees book trains for trips under 500 km.\n\n## Hotels\n\nThe nightly hotel cap in Oslo is 2100 NOK.';
    const html =
      '<html><head><script>var secretToken = "zqxjk";</script><style>.x{}</style></head><body><nav>Home Products</nav><main><h1>Expense rules</h1><p>Receipts over 50 EUR need a scan &amp; a note.</p></main><footer>Copyright</footer></body></html>';
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(vs.id, { files: [await toFile(Buffer.from(md), 'travel.md'), await toFile(Buffer.from(html), 'expenses.html')] }, poll);
    expect(batch.status).toBe('completed');
    expect(batch.file_counts).toMatchObject({ completed: 2, failed: 0, total: 2 });
    const hotel = await client.vectorStores.search(vs.id, { query: 'hotel cap Oslo' });
    expect(hotel.data[0]!.content[0]!.text).toContain('2100 NOK');
    expect(hotel.data[0]!.filename).toBe('travel.md');
    const receipts = await client.vectorStores.search(vs.id, { query: 'receipts scan' });
    expect(receipts.data[0]!.content[0]!.text).toContain('Receipts over 50 EUR need a scan & a note.');
    expect((await client.vectorStores.search(vs.id, { query: 'zqxjk secretToken' })).data.some((d) => d.content[0]!.text.includes('zqxjk'))).toBe(false);
    await client.vectorStores.delete(vs.id);
    expect(await chunksOf({ vs: vs.id })).toBe(0);
  });

  it('an unsupported file type is refused at upload with the accepted types named', async () => {
    const err = await client.files.create({ file: await toFile(Buffer.from('MZ\x90\x00'), 'setup.exe'), purpose: 'assistants' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('unsupported_file_type');
    expect((err as Error).message).toMatch(/PDF.*Word.*HTML.*Markdown.*CSV/);
  });

  it('a malformed PDF ends failed with the reason; nothing of it is searchable', async () => {
    const bad = await client.files.create({ file: await toFile(Buffer.from('%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage Zanzibar trailer'), 'broken.pdf'), purpose: 'assistants' });
    const f = await client.vectorStores.files.createAndPoll(vsId, { file_id: bad.id }, poll);
    expect(f.status).toBe('failed');
    expect(f.last_error?.code).toBe('parse_failed' as never);
    expect(f.last_error?.message).toMatch(/PDF/);
    expect(await chunksOf({ vs: vsId, file: bad.id })).toBe(0);
    const res = await client.vectorStores.search(vsId, { query: 'Zanzibar garbage trailer' });
    expect(res.data.every((d) => d.file_id !== bad.id)).toBe(true);
    await client.vectorStores.files.delete(bad.id, { vector_store_id: vsId });
  });

  it('an embedding upstream that is down leaves the file failed with the reason, after retries', async () => {
    const vs = await client.vectorStores.create({ name: 'Down', embedding_model: 'x-embed-down' } as never);
    const file = await client.files.create({ file: await toFile(Buffer.from('Some notes about the down upstream.'), 'notes.txt'), purpose: 'assistants' });
    const before = down.requests.filter((r) => r.path === '/v1/embeddings').length;
    const f = await client.vectorStores.files.createAndPoll(vs.id, { file_id: file.id }, poll);
    expect(f.status).toBe('failed');
    expect(f.last_error?.message).toMatch(/after 3 attempts/);
    expect(f.last_error?.code).toBe('embedding_failed' as never);
    // The gateway retried within each attempt, and the ingestion tried 3 times.
    expect(down.requests.filter((r) => r.path === '/v1/embeddings').length - before).toBeGreaterThanOrEqual(3);
    expect(await chunksOf({ vs: vs.id })).toBe(0);
  });

  it('removing a file from a store deletes its chunks and vectors; deleting the store leaves no chunk', async () => {
    expect(await chunksOf({ vs: vsId, file: fileId })).toBeGreaterThan(0);
    await client.vectorStores.files.delete(fileId, { vector_store_id: vsId });
    expect(await chunksOf({ vs: vsId, file: fileId })).toBe(0);
    expect((await client.vectorStores.search(vsId, { query: 'Zanzibar vault code' })).data).toEqual([]);
    // Attach again, then delete the store: nothing stays, in the chunks or the keyword index.
    await client.vectorStores.files.createAndPoll(vsId, { file_id: fileId }, poll);
    expect(await chunksOf({ vs: vsId })).toBeGreaterThan(0);
    await client.vectorStores.delete(vsId);
    expect(await chunksOf({ vs: vsId })).toBe(0);
    if (env.app.services.store.dialect === 'sqlite') {
      const fts = await rawRows(env.app.services.store, sql`SELECT count(*) AS n FROM knowledge_fts_ids f LEFT JOIN knowledge_chunks c ON c.id = f.chunk_id WHERE c.id IS NULL`);
      expect(Number(fts[0]!.n), 'no keyword-index entry without its chunk').toBe(0);
    }
    // Deleting the file itself (/v1/files) also removes it from every store.
    const vs2 = await client.vectorStores.create({ name: 'Again', file_ids: [fileId] });
    await expect.poll(async () => (await client.vectorStores.files.retrieve(fileId, { vector_store_id: vs2.id })).status, { timeout: 30_000 }).toBe('completed');
    await client.files.delete(fileId);
    expect(await chunksOf({ file: fileId })).toBe(0);
  });

  it('another tenant cannot read, search or attach to a store or file', async () => {
    const file = await client.files.create({ file: await toFile(Buffer.from('Tenant A only: the merger code is BLUEFIN.'), 'a.txt'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ name: 'A only', file_ids: [file.id] });
    await expect.poll(async () => (await client.vectorStores.files.retrieve(file.id, { vector_store_id: vs.id })).status, { timeout: 30_000 }).toBe('completed');
    const notFound = async (p: Promise<unknown>) => expect((await p.catch((e: unknown) => e)) as Error).toBeInstanceOf(OpenAI.NotFoundError);
    await notFound(other.vectorStores.retrieve(vs.id));
    await notFound(other.vectorStores.search(vs.id, { query: 'merger code' }));
    await notFound(other.vectorStores.files.list(vs.id));
    await notFound(other.vectorStores.files.retrieve(file.id, { vector_store_id: vs.id }));
    await notFound(other.vectorStores.delete(vs.id));
    await notFound(other.files.retrieve(file.id));
    const mine = await other.vectorStores.create({ name: 'B' });
    await notFound(other.vectorStores.files.create(mine.id, { file_id: file.id }));
    expect((await other.vectorStores.list()).data.map((v) => v.id)).toEqual([mine.id]);
    // A Responses file_search over A's store from B is a 404 too, before any model call.
    const calls = env.openai.requests.length + pub.requests.length;
    await notFound(other.responses.create({ model: 'gpt-fake', input: 'merger code?', tools: [{ type: 'file_search', vector_store_ids: [vs.id] }] }));
    expect(env.openai.requests.length + pub.requests.length).toBe(calls);
  });
});

describe('retrieval and the data boundary (Responses file_search)', () => {
  async function storeWith(name: string, classification: string, text: string, model = 'text-embedding-fake'): Promise<{ vs: string; file: string; status: string }> {
    const vs = await client.vectorStores.create({ name, classification, embedding_model: model } as never);
    const file = await client.files.create({ file: await toFile(Buffer.from(text), `${name}.md`), purpose: 'assistants' });
    const f = await client.vectorStores.files.createAndPoll(vs.id, { file_id: file.id }, poll);
    return { vs: vs.id, file: file.id, status: f.status };
  }
  const chatsTo = (f: FakeOpenAI) => f.requests.filter((r) => r.path === '/v1/chat/completions');

  it('answers with the passages and file_citation annotations; the internal store may use a public model', async () => {
    const s = await storeWith('menu', 'internal', '# Canteen\n\nOn Fridays the canteen serves saffron risotto.');
    const before = chatsTo(pub).length;
    const r = await client.responses.create({ model: 'gpt-pub', input: 'What does the canteen serve on Fridays?', tools: [{ type: 'file_search', vector_store_ids: [s.vs] }] });
    expect(r.output[0]).toMatchObject({ type: 'file_search_call', status: 'completed', queries: ['What does the canteen serve on Fridays?'] });
    const msg = r.output.find((o) => o.type === 'message') as OpenAI.Responses.ResponseOutputMessage;
    const text = msg.content[0] as OpenAI.Responses.ResponseOutputText;
    expect(text.annotations).toEqual([{ type: 'file_citation', index: text.text.length, file_id: s.file, filename: 'menu.md' }]);
    const sent = chatsTo(pub).slice(before);
    expect(sent).toHaveLength(1);
    expect(JSON.stringify(sent[0]!.body.messages)).toContain('saffron risotto');
  });

  it('a confidential file raises the call: its passages never reach a public deployment (403, zero upstream calls)', async () => {
    const s = await storeWith('secret', 'confidential', '# Project Heron\n\nThe acquisition target of Project Heron is Nordlicht GmbH.');
    expect(s.status).toBe('completed');
    const pubChats = chatsTo(pub).length;
    const err = await client.responses.create({ model: 'gpt-pub', input: 'Who is the acquisition target of Project Heron?', tools: [{ type: 'file_search', vector_store_ids: [s.vs] }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((err as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe('policy_boundary_denied');
    expect(chatsTo(pub).length).toBe(pubChats);
    expect(JSON.stringify(pub.requests.map((r) => r.body))).not.toContain('Nordlicht');

    // The same question to a private model is answered, with the passage and its citation.
    const privBefore = chatsTo(env.openai).length;
    const ok = await client.responses.create({ model: 'gpt-fake', input: 'Who is the acquisition target of Project Heron?', tools: [{ type: 'file_search', vector_store_ids: [s.vs] }] });
    expect(JSON.stringify(chatsTo(env.openai).slice(privBefore).map((r) => r.body.messages))).toContain('Nordlicht GmbH');
    const msg = ok.output.find((o) => o.type === 'message') as OpenAI.Responses.ResponseOutputMessage;
    expect((msg.content[0] as OpenAI.Responses.ResponseOutputText).annotations[0]).toMatchObject({ type: 'file_citation', file_id: s.file });
    const rec = (await env.usage()).filter((u) => u.api === 'responses').at(-1)!;
    expect(rec.classification).toBe('confidential');
    // The call's decision record says what raised it (traces are written in batches: poll).
    const traceOf = async () => (await rawRows(env.app.services.store, sql`SELECT trace FROM call_traces WHERE request_id = ${rec.requestId} AND endpoint = 'chat'`))[0]?.trace as string | undefined;
    await expect.poll(traceOf).toBeDefined();
    expect(JSON.parse((await traceOf())!).classification_decision).toMatchObject({ value: 'confidential', source: 'knowledge' });
  });

  it('a confidential file is never embedded by a public deployment: the ingestion fails by policy, the public fake sees nothing', async () => {
    const before = pub.requests.filter((r) => r.path === '/v1/embeddings').length;
    const s = await storeWith('secret2', 'confidential', 'Heron board minutes, strictly confidential.', 'x-embed-pub');
    expect(s.status).toBe('failed');
    const f = await client.vectorStores.files.retrieve(s.file, { vector_store_id: s.vs });
    expect(f.last_error?.message).toMatch(/policy_boundary_denied/);
    expect(pub.requests.filter((r) => r.path === '/v1/embeddings').length).toBe(before);
  });
});

describe('ingestion resumes after a worker stopped mid-file', () => {
  it('runs again without duplicate chunks and without embedding the stored chunks again', async () => {
    const s = env.app.services;
    const repo = new KnowledgeRepo(s.store, s.tenantStore);
    const ctx = env.tenant.ctx;
    // A file of ~150 chunks: three embedding batches.
    const text = Array.from({ length: 150 }, (_, i) => `## Part ${i}\n\n${FILLER.repeat(12)} Marker ${i}.`).join('\n\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(text), 'long.md'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ name: 'Resume' });
    // Attached by hand (no job): this test drives the ingestion itself.
    await repo.insertStoreFile(ctx, {
      vectorStoreId: vs.id,
      fileId: file.id,
      status: 'in_progress',
      classification: 'internal',
      contentType: 'text/markdown',
      userId: env.tenant.users.member!.id,
      createdAt: Date.now(),
      updatedAt: Date.now(),
    });
    const real = gatewayEmbedder(s.gateway.service);
    let batches = 0;
    const stop = new AbortController();
    const dying: Embedder = {
      embed: async (c, o) => {
        const out = await real.embed(c, o);
        // The worker is killed right after its first batch came back and was stored.
        if (++batches === 2) stop.abort(new Error('worker killed'));
        return out;
      },
    };
    const deps = { config: s.config, repo, files: s.jobs.repo, identity: s.identity, identityRepo: new IdentityRepo(s.store, s.tenantStore), clock: s.clock, retryDelayMs: 10 };
    const log = pino({ level: 'silent' });
    await expect(ingestFile({ ...deps, embedder: dying }, { vectorStoreId: vs.id, fileId: file.id, signal: stop.signal, log })).rejects.toThrow();
    const partial = await chunksOf({ vs: vs.id });
    expect(partial).toBeGreaterThan(0);
    expect((await client.vectorStores.files.retrieve(file.id, { vector_store_id: vs.id })).status).toBe('in_progress');
    // Not searchable while in progress.
    expect((await client.vectorStores.search(vs.id, { query: 'Marker 3' })).data).toEqual([]);

    let embedded = 0;
    const counting: Embedder = { embed: async (c, o) => ((embedded += o.texts.length), real.embed(c, o)) };
    const r = await ingestFile({ ...deps, embedder: counting }, { vectorStoreId: vs.id, fileId: file.id, log });
    expect(r.status).toBe('completed');
    const total = await chunksOf({ vs: vs.id });
    expect(total).toBe(r.chunks);
    expect(embedded).toBe(total - partial);
    const ids = await rawRows(s.store, sql`SELECT chunk_index AS i FROM knowledge_chunks WHERE vector_store_id = ${vs.id} ORDER BY chunk_index`);
    expect(ids.map((x) => Number(x.i))).toEqual(Array.from({ length: total }, (_, i) => i));
    expect((await client.vectorStores.search(vs.id, { query: 'Marker 149' })).data[0]!.content[0]!.text).toContain('Marker 149');
  });
});

describe('the console API (/api/knowledge, sessions)', () => {
  it('collections: upload, status, search, passages; private to its owner until shared; another tenant gets 404 on every route', async () => {
    const url = env.app.url;
    const member = await login(url, env.tenant.users.member!.email);
    const owner = await login(url, env.tenant.users.owner!.email);
    const outsider = await login(url, 'owner@other.test');
    const made = await call(url, '/api/knowledge/collections', { method: 'POST', session: member, body: { name: 'Mine', classification: 'confidential' } });
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    expect(made.body).toMatchObject({ name: 'Mine', sharing: 'user', mine: true, can_write: true, classification: 'confidential', embedding_model: 'text-embedding-fake', file_counts: { total: 0 } });
    const col = made.body.id as string;

    const form = new FormData();
    form.append('file', new Blob(['# Parking\n\nVisitors park on level minus two, bay 14.']), 'parking.md');
    const up = await fetch(`${url}/api/knowledge/collections/${col}/files`, { method: 'POST', headers: { cookie: member.cookie, 'x-csrf-token': member.csrf }, body: form });
    const file = (await up.json()) as { id: string; status: string; classification: string; filename: string };
    expect(up.status).toBe(200);
    expect(file).toMatchObject({ status: 'in_progress', classification: 'confidential', filename: 'parking.md', content_type: 'text/markdown' });
    await expect.poll(async () => (await call(url, `/api/knowledge/collections/${col}/files/${file.id}`, { session: member })).body.status, { timeout: 30_000 }).toBe('completed');
    const hit = await call(url, `/api/knowledge/collections/${col}/search`, { method: 'POST', session: member, body: { query: 'where do visitors park' } });
    expect(hit.body.data[0]).toMatchObject({ collection_id: col, file_id: file.id, filename: 'parking.md', chunk_index: 0, page: null });
    expect(hit.body.data[0].text).toContain('bay 14');
    const passage = await call(url, `/api/knowledge/collections/${col}/files/${file.id}/passages/0`, { session: member });
    expect(passage.body.text).toBe(hit.body.data[0].text);
    expect((await call(url, `/api/knowledge/collections/${col}`, { method: 'PATCH', session: member, body: { classification: 'internal' } })).body.error.code).toBe('classification_lowered');

    // Private: not even the tenant's owner sees it, until it is shared with the tenant.
    expect((await call(url, '/api/knowledge/collections', { session: owner })).body.data.map((c: { id: string }) => c.id)).not.toContain(col);
    expect((await call(url, `/api/knowledge/collections/${col}`, { session: owner })).status).toBe(404);
    expect((await call(url, `/api/knowledge/collections/${col}`, { method: 'PATCH', session: member, body: { sharing: 'tenant' } })).body.sharing).toBe('tenant');
    expect((await call(url, `/api/knowledge/collections/${col}`, { session: owner })).body).toMatchObject({ mine: false, can_write: true });

    // Another tenant: every route of the collection is "not found", and nothing changes.
    const routes: [string, string, unknown?][] = [
      ['GET', `/api/knowledge/collections/${col}`],
      ['PATCH', `/api/knowledge/collections/${col}`, { name: 'pwned' }],
      ['GET', `/api/knowledge/collections/${col}/files`],
      ['GET', `/api/knowledge/collections/${col}/files/${file.id}`],
      ['POST', `/api/knowledge/collections/${col}/search`, { query: 'visitors park' }],
      ['GET', `/api/knowledge/collections/${col}/files/${file.id}/passages/0`],
      ['DELETE', `/api/knowledge/collections/${col}/files/${file.id}`],
      ['DELETE', `/api/knowledge/collections/${col}`],
    ];
    for (const [method, path, body] of routes) {
      const r = await call(url, path, { method, session: outsider, ...(body ? { body } : {}) });
      expect(r.status, `${method} ${path}`).toBe(404);
    }
    expect((await call(url, '/api/knowledge/collections', { session: outsider })).body.data.map((c: { id: string }) => c.id)).not.toContain(col);
    expect((await call(url, `/api/knowledge/collections/${col}`, { session: member })).body).toMatchObject({ name: 'Mine', file_counts: { completed: 1 } });

    // Deleting the collection removes its files, chunks and vectors.
    expect((await call(url, `/api/knowledge/collections/${col}`, { method: 'DELETE', session: member })).status).toBe(200);
    expect(await chunksOf({ file: file.id })).toBe(0);
    expect(await rawRows(env.app.services.store, sql`SELECT id FROM files WHERE id = ${file.id}`)).toEqual([]);
  });
});

describe('the ingestion reconciler', () => {
  it('enqueues an ingestion whose job was lost; a recent one is left to its job', async () => {
    const s = env.app.services;
    const repo = new KnowledgeRepo(s.store, s.tenantStore);
    const file = await client.files.create({ file: await toFile(Buffer.from('# Lost\n\nThe lost job file mentions the word quokka.'), 'lost.md'), purpose: 'assistants' });
    const vs = await client.vectorStores.create({ name: 'Lost' });
    const old = Date.now() - 10 * 60_000;
    // Attached with no job at all (as if Redis lost it), ten minutes ago.
    await repo.insertStoreFile(env.tenant.ctx, { vectorStoreId: vs.id, fileId: file.id, status: 'in_progress', classification: 'internal', contentType: 'text/markdown', userId: env.tenant.users.member!.id, createdAt: old, updatedAt: old });
    const { schedules } = createKnowledge(s);
    const first = (await schedules[0]!.run()) as { enqueued: number };
    expect(first.enqueued).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => (await client.vectorStores.files.retrieve(file.id, { vector_store_id: vs.id })).status, { timeout: 30_000 }).toBe('completed');
    expect((await client.vectorStores.search(vs.id, { query: 'quokka' })).data[0]!.content[0]!.text).toContain('quokka');
  });
});
