import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { parseMultipart, readBody } from '../batch/multipart.js';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import type { Identity } from '../identity/index.js';
import { authenticate, requireApiKey } from '../identity/http.js';
import type { Filter } from './search.js';
import { CLASSIFICATIONS, type KnowledgeService } from './service.js';
import { knowledgeHit } from './serialize.js';

/**
 * Knowledge over HTTP. Thin: parse and validate, call the service with the context, send its
 * serializer's output.
 *  - /v1/vector_stores* (API keys): OpenAI's Vector Stores API as the openai SDK calls it
 *    (create/list/retrieve/update/delete, files, file_batches, search). Enclave's extra
 *    fields on create/update: classification, sharing, embedding_model.
 *  - /api/knowledge/* (the web UI's session): collections, upload, file status, search,
 *    passages, chat attachments and citations (/work/briefs/s7/knowledge-api.md).
 */
const CLASSIFICATION = z.enum(CLASSIFICATIONS);
const metadata = z.record(z.string().max(64), z.string().max(512)).nullable().optional();
const attributes = z.record(z.string().max(64), z.union([z.string().max(512), z.number(), z.boolean()])).nullable().optional();
const listQuery = z.object({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  order: z.enum(['asc', 'desc']).default('desc'),
  filter: z.enum(['in_progress', 'completed', 'failed', 'cancelled']).optional(),
});
const filterSchema: z.ZodType<Filter> = z.lazy(() =>
  z.union([
    z.object({ type: z.enum(['eq', 'ne', 'gt', 'gte', 'lt', 'lte']), key: z.string().min(1).max(64), value: z.union([z.string(), z.number(), z.boolean()]) }),
    z.object({ type: z.enum(['and', 'or']), filters: z.array(filterSchema).max(20) }),
  ]),
) as z.ZodType<Filter>;

const createStore = z.object({
  name: z.string().max(256).nullable().optional(),
  description: z.string().max(2000).nullable().optional(),
  file_ids: z.array(z.string().min(1)).max(500).optional(),
  metadata,
  expires_after: z.unknown().optional(),
  chunking_strategy: z.unknown().optional(),
  classification: CLASSIFICATION.optional(),
  sharing: z.enum(['tenant', 'user']).optional(),
  embedding_model: z.string().min(1).max(200).optional(),
});
const updateStore = z.object({
  name: z.string().max(256).nullable().optional(),
  description: z.string().max(2000).nullable().optional(),
  metadata,
  expires_after: z.unknown().optional(),
  classification: CLASSIFICATION.optional(),
  sharing: z.enum(['tenant', 'user']).optional(),
});
const attachFile = z.object({ file_id: z.string().min(1), attributes, chunking_strategy: z.unknown().optional(), classification: CLASSIFICATION.optional() });
const fileBatch = z.object({
  file_ids: z.array(z.string().min(1)).max(500).optional(),
  files: z.array(z.object({ file_id: z.string().min(1), attributes, chunking_strategy: z.unknown().optional() })).max(500).optional(),
  attributes,
  chunking_strategy: z.unknown().optional(),
});
const searchBody = z.object({
  query: z.union([z.string().min(1).max(4000), z.array(z.string().min(1).max(4000)).min(1).max(5)]),
  max_num_results: z.number().int().min(1).max(50).default(10),
  filters: filterSchema.nullable().optional(),
  ranking_options: z.object({ ranker: z.string().optional(), score_threshold: z.number().min(0).max(1).optional() }).optional(),
  rewrite_query: z.boolean().optional(),
});

/** The SDK's poll helpers (createAndPoll, uploadAndPoll) wait this long between reads of an ingesting file. */
const POLL_AFTER_MS = '250';
const id = (req: Request, name: string): string => String(req.params[name]);
const classificationHeader = (req: Request) => {
  const h = req.get('x-enclave-classification')?.trim().toLowerCase();
  return h && (CLASSIFICATIONS as readonly string[]).includes(h) ? (h as (typeof CLASSIFICATIONS)[number]) : undefined;
};

function list<T extends { id: string }>(data: T[], limit: number) {
  const page = data.slice(0, limit);
  return { object: 'list' as const, data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: data.length > limit };
}

export function vectorStoresRouter(identity: Identity, k: KnowledgeService): Router {
  const r = Router();
  const auth = requireApiKey(identity);
  const one = async (ctx: RequestContext, vsId: string) => k.openaiStore(ctx, await k.readableStore(ctx, vsId));

  r.post('/v1/vector_stores', auth, async (req, res) => {
    const b = parseInput(createStore, req.body);
    const cls = b.classification ?? classificationHeader(req);
    const v = await k.create(req.ctx, {
      name: b.name ?? null,
      description: b.description ?? null,
      metadata: b.metadata ?? null,
      ...(cls ? { classification: cls } : {}),
      ...(b.sharing ? { sharing: b.sharing } : {}),
      ...(b.embedding_model ? { embeddingModel: b.embedding_model } : {}),
      ...(b.file_ids ? { fileIds: b.file_ids } : {}),
    });
    res.json(await k.openaiStore(req.ctx, v));
  });
  r.get('/v1/vector_stores', auth, async (req, res) => {
    const q = parseInput(listQuery, req.query);
    const rows = await k.list(req.ctx, { limit: q.limit + 1, order: q.order, ...(q.after ? { after: q.after } : {}) });
    const counts = await k.counts(
      req.ctx,
      rows.map((v) => v.id),
    );
    const { openaiVectorStore } = await import('./serialize.js');
    res.json(list(rows.map((v) => openaiVectorStore(v, counts.get(v.id))), q.limit));
  });
  r.get('/v1/vector_stores/:id', auth, async (req, res) => {
    res.json(await one(req.ctx, id(req, 'id')));
  });
  r.post('/v1/vector_stores/:id', auth, async (req, res) => {
    const b = parseInput(updateStore, req.body);
    const v = await k.update(req.ctx, id(req, 'id'), {
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.description !== undefined ? { description: b.description } : {}),
      ...(b.metadata !== undefined ? { metadata: b.metadata } : {}),
      ...(b.classification ? { classification: b.classification } : {}),
      ...(b.sharing ? { sharing: b.sharing } : {}),
    });
    res.json(await k.openaiStore(req.ctx, v));
  });
  r.delete('/v1/vector_stores/:id', auth, async (req, res) => {
    await k.remove(req.ctx, id(req, 'id'));
    res.json({ id: id(req, 'id'), object: 'vector_store.deleted', deleted: true });
  });

  r.post('/v1/vector_stores/:id/files', auth, async (req, res) => {
    const b = parseInput(attachFile, req.body);
    const cls = b.classification ?? classificationHeader(req);
    res.json(k.openaiFile(await k.attach(req.ctx, id(req, 'id'), { fileId: b.file_id, attributes: b.attributes ?? null, ...(cls ? { classification: cls } : {}) })));
  });
  r.get('/v1/vector_stores/:id/files', auth, async (req, res) => {
    const q = parseInput(listQuery, req.query);
    const rows = await k.listFiles(req.ctx, id(req, 'id'), { limit: q.limit + 1, order: q.order, ...(q.after ? { after: q.after } : {}), ...(q.filter ? { status: q.filter } : {}) });
    res.json(list(rows.map(k.openaiFile), q.limit));
  });
  r.get('/v1/vector_stores/:id/files/:fileId', auth, async (req, res) => {
    const f = await k.storeFile(req.ctx, id(req, 'id'), id(req, 'fileId'));
    if (f.status === 'in_progress') res.setHeader('openai-poll-after-ms', POLL_AFTER_MS);
    res.json(k.openaiFile(f));
  });
  r.post('/v1/vector_stores/:id/files/:fileId', auth, async (req, res) => {
    const b = parseInput(z.object({ attributes }), req.body);
    res.json(k.openaiFile(await k.updateFile(req.ctx, id(req, 'id'), id(req, 'fileId'), b.attributes ?? null)));
  });
  r.delete('/v1/vector_stores/:id/files/:fileId', auth, async (req, res) => {
    await k.detach(req.ctx, id(req, 'id'), id(req, 'fileId'));
    res.json({ id: id(req, 'fileId'), object: 'vector_store.file.deleted', deleted: true });
  });
  r.get('/v1/vector_stores/:id/files/:fileId/content', auth, async (req, res) => {
    const vsId = id(req, 'id');
    const fileId = id(req, 'fileId');
    await k.storeFile(req.ctx, vsId, fileId);
    const data = [];
    for (let i = 0; ; i++) {
      try {
        const p = await k.passage(req.ctx, vsId, fileId, i);
        data.push({ type: 'text', text: p.text });
      } catch {
        break;
      }
    }
    res.json({ file_id: fileId, filename: '', attributes: {}, content: data });
  });

  // File batches: a batch is the set of files it attached; its id names the store and the files.
  r.post('/v1/vector_stores/:id/file_batches', auth, async (req, res) => {
    const b = parseInput(fileBatch, req.body);
    const vsId = id(req, 'id');
    const items = [...(b.file_ids ?? []).map((f) => ({ file_id: f, attributes: b.attributes })), ...(b.files ?? [])];
    if (!items.length) throw new AppError(400, 'invalid_request', 'file_ids or files is required.', { param: 'file_ids' });
    for (const it of items) await k.attach(req.ctx, vsId, { fileId: it.file_id, attributes: it.attributes ?? null });
    const batchId = k.fileBatch(items.map((i) => i.file_id));
    res.json(await k.fileBatchView(req.ctx, vsId, batchId));
  });
  r.get('/v1/vector_stores/:id/file_batches/:batchId', auth, async (req, res) => {
    const b = await k.fileBatchView(req.ctx, id(req, 'id'), id(req, 'batchId'));
    if (b.status === 'in_progress') res.setHeader('openai-poll-after-ms', POLL_AFTER_MS);
    res.json(b);
  });
  r.post('/v1/vector_stores/:id/file_batches/:batchId/cancel', auth, async (req, res) => {
    res.json(await k.cancelFileBatch(req.ctx, id(req, 'id'), id(req, 'batchId')));
  });
  r.get('/v1/vector_stores/:id/file_batches/:batchId/files', auth, async (req, res) => {
    const q = parseInput(listQuery, req.query);
    const rows = await k.fileBatchFiles(req.ctx, id(req, 'id'), id(req, 'batchId'));
    const filtered = rows.filter((f) => !q.filter || f.status === q.filter);
    res.json(list(filtered.map(k.openaiFile), q.limit));
  });

  r.post('/v1/vector_stores/:id/search', auth, async (req, res) => {
    const b = parseInput(searchBody, req.body);
    const query = Array.isArray(b.query) ? b.query.join(' ') : b.query;
    const cls = classificationHeader(req);
    const { hits } = await k.search(req.ctx, [id(req, 'id')], {
      query,
      limit: b.max_num_results,
      ...(b.filters ? { filter: b.filters } : {}),
      ...(b.ranking_options?.score_threshold !== undefined ? { scoreThreshold: b.ranking_options.score_threshold } : {}),
      ...(cls ? { classification: cls } : {}),
    });
    res.json({
      object: 'vector_store.search_results.page',
      search_query: Array.isArray(b.query) ? b.query : [b.query],
      data: hits.map(({ hit, score }) => ({
        file_id: hit.fileId,
        filename: hit.filename,
        score,
        attributes: hit.attributes ? JSON.parse(hit.attributes) : {},
        content: [{ type: 'text', text: hit.text }],
        // Enclave's own: where the passage is (citations).
        page: hit.page,
        chunk_index: hit.chunkIndex,
      })),
      has_more: false,
      next_page: null,
    });
  });
  return r;
}

export function knowledgeRouter(identity: Identity, k: KnowledgeService, o: { maxFileBytes: number }): Router {
  const r = Router();
  r.use('/api/knowledge', authenticate(identity, { accept: ['session'] }));
  const maxUpload = o.maxFileBytes + 64 * 1024;
  const upload = async (req: Request) => {
    const body = await readBody(req, maxUpload);
    const parts = parseMultipart(req.get('content-type'), body);
    const file = parts.find((p) => p.name === 'file');
    if (!file) throw new AppError(400, 'invalid_request', 'The "file" field is required.', { param: 'file' });
    if (file.data.length > o.maxFileBytes) throw new AppError(413, 'file_too_large', `The file is larger than the limit of ${o.maxFileBytes} bytes.`, { param: 'file' });
    const cls = parts.find((p) => p.name === 'classification')?.data.toString('utf8').trim();
    const classification = cls ? parseInput(CLASSIFICATION, cls) : undefined;
    return { filename: file.filename, data: file.data, ...(classification ? { classification } : {}) };
  };
  const collectionOut = async (ctx: RequestContext, vsId: string) => (await k.collectionsView(ctx, [await k.readableStore(ctx, vsId)]))[0]!;

  r.get('/api/knowledge/collections', async (req: Request, res: Response) => {
    const rows = await k.list(req.ctx, { limit: 500 });
    res.json({ data: await k.collectionsView(req.ctx, rows) });
  });
  r.post('/api/knowledge/collections', async (req, res) => {
    const b = parseInput(z.object({ name: z.string().min(1).max(256), description: z.string().max(2000).nullable().optional(), sharing: z.enum(['tenant', 'user']).optional(), classification: CLASSIFICATION.optional() }).strict(), req.body);
    const v = await k.create(req.ctx, { name: b.name, description: b.description ?? null, sharing: b.sharing ?? 'user', ...(b.classification ? { classification: b.classification } : {}) });
    res.json(await collectionOut(req.ctx, v.id));
  });
  r.get('/api/knowledge/collections/:id', async (req, res) => {
    res.json(await collectionOut(req.ctx, id(req, 'id')));
  });
  r.patch('/api/knowledge/collections/:id', async (req, res) => {
    const b = parseInput(z.object({ name: z.string().min(1).max(256).optional(), description: z.string().max(2000).nullable().optional(), sharing: z.enum(['tenant', 'user']).optional(), classification: CLASSIFICATION.optional() }).strict(), req.body);
    await k.update(req.ctx, id(req, 'id'), {
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.description !== undefined ? { description: b.description } : {}),
      ...(b.sharing ? { sharing: b.sharing } : {}),
      ...(b.classification ? { classification: b.classification } : {}),
    });
    res.json(await collectionOut(req.ctx, id(req, 'id')));
  });
  r.delete('/api/knowledge/collections/:id', async (req, res) => {
    await k.remove(req.ctx, id(req, 'id'), { withFiles: true });
    res.json({ id: id(req, 'id'), deleted: true });
  });
  r.get('/api/knowledge/collections/:id/files', async (req, res) => {
    const rows = await k.listFiles(req.ctx, id(req, 'id'), { limit: 1000 });
    res.json({ data: await k.filesView(req.ctx, rows) });
  });
  r.post('/api/knowledge/collections/:id/files', async (req, res) => {
    res.json(await k.uploadTo(req.ctx, id(req, 'id'), await upload(req)));
  });
  r.get('/api/knowledge/collections/:id/files/:fileId', async (req, res) => {
    res.json((await k.filesView(req.ctx, [await k.storeFile(req.ctx, id(req, 'id'), id(req, 'fileId'))]))[0]);
  });
  r.delete('/api/knowledge/collections/:id/files/:fileId', async (req, res) => {
    await k.detach(req.ctx, id(req, 'id'), id(req, 'fileId'), { withFile: true });
    res.json({ id: id(req, 'fileId'), deleted: true });
  });
  r.post('/api/knowledge/collections/:id/search', async (req, res) => {
    const b = parseInput(z.object({ query: z.string().min(1).max(4000), max_results: z.number().int().min(1).max(50).default(10) }).strict(), req.body);
    const { hits } = await k.search(req.ctx, [id(req, 'id')], { query: b.query, limit: b.max_results });
    res.json({ data: hits.map(({ hit, score }) => knowledgeHit(hit, score)) });
  });
  r.get('/api/knowledge/collections/:id/files/:fileId/passages/:index', async (req, res) => {
    const index = parseInput(z.coerce.number().int().min(0).max(10_000_000), req.params.index);
    res.json(await k.passage(req.ctx, id(req, 'id'), id(req, 'fileId'), index));
  });
  r.post('/api/knowledge/conversations/:conversationId/attachments', async (req, res) => {
    const input = await upload(req);
    const v = await k.conversationStore(req.ctx, id(req, 'conversationId'));
    res.json({ collection_id: v.id, file: await k.uploadTo(req.ctx, v.id, input) });
  });
  r.get('/api/knowledge/citations', async (req, res) => {
    const q = parseInput(z.object({ conversation_id: z.string().min(1).max(100) }), req.query);
    res.json({ data: await k.citationsOf(req.ctx, q.conversation_id) });
  });
  return r;
}
