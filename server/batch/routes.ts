import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import type { Identity } from '../identity/index.js';
import { requireApiKey } from '../identity/http.js';
import { parseMultipart, readBody } from './multipart.js';
import type { BatchService } from './service.js';

/**
 * The OpenAI Batch API surface (API keys): /v1/files (purpose `batch`) and /v1/batches.
 * Thin: parse and validate, call the batch service with the context, send its serializer's
 * output. Errors use the OpenAI envelope.
 */
const createBatch = z.object({
  input_file_id: z.string().min(1),
  endpoint: z.string().min(1),
  completion_window: z.string().min(1),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
});

const listQuery = z.object({
  after: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  purpose: z.string().optional(),
});

export function batchRouter(
  identity: Identity,
  batches: BatchService,
  o: { maxFileBytes: number; files?: { uploadFile(ctx: Request['ctx'], input: { purpose: 'assistants' | 'user_data'; filename: string | undefined; data: Buffer }): Promise<unknown> } },
): Router {
  const r = Router();
  const auth = requireApiKey(identity);
  // multipart headers and boundaries on top of the file itself
  const maxUpload = o.maxFileBytes + 64 * 1024;

  r.post('/v1/files', auth, async (req: Request, res: Response) => {
    const body = await readBody(req, maxUpload);
    const parts = parseMultipart(req.get('content-type'), body);
    const file = parts.find((p) => p.name === 'file');
    const purpose = parts.find((p) => p.name === 'purpose')?.data.toString('utf8').trim();
    if (!file) throw new AppError(400, 'invalid_request', 'The "file" field is required.', { param: 'file' });
    if (file.data.length > o.maxFileBytes) throw new AppError(413, 'file_too_large', `The file is larger than the limit of ${o.maxFileBytes} bytes (ENCLAVE_BATCH_MAX_FILE_BYTES).`, { param: 'file' });
    // Files for retrieval (vector stores, issue 20) are knowledge's.
    if (o.files && (purpose === 'assistants' || purpose === 'user_data')) return void res.json(await o.files.uploadFile(req.ctx, { purpose, filename: file.filename, data: file.data }));
    res.json(await batches.upload(req.ctx, { purpose, filename: file.filename, data: file.data }));
  });
  r.get('/v1/files', auth, async (req: Request, res: Response) => {
    const q = parseInput(listQuery, req.query);
    res.json(await batches.listFiles(req.ctx, { limit: q.limit, ...(q.after ? { after: q.after } : {}), ...(q.purpose ? { purpose: q.purpose } : {}) }));
  });
  r.get('/v1/files/:id', auth, async (req: Request, res: Response) => {
    res.json(await batches.getFile(req.ctx, String(req.params.id)));
  });
  r.delete('/v1/files/:id', auth, async (req: Request, res: Response) => {
    res.json(await batches.deleteFile(req.ctx, String(req.params.id)));
  });
  r.get('/v1/files/:id/content', auth, async (req: Request, res: Response) => {
    const { data, filename } = await batches.fileContent(req.ctx, String(req.params.id));
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-disposition', `attachment; filename="${filename}"`);
    res.send(data);
  });

  r.post('/v1/batches', auth, async (req: Request, res: Response) => {
    const b = parseInput(createBatch, req.body);
    res.json(await batches.create(req.ctx, b, req.get('x-enclave-classification')?.trim().toLowerCase()));
  });
  r.get('/v1/batches', auth, async (req: Request, res: Response) => {
    const q = parseInput(listQuery, req.query);
    res.json(await batches.list(req.ctx, { limit: q.limit, ...(q.after ? { after: q.after } : {}) }));
  });
  r.get('/v1/batches/:id', auth, async (req: Request, res: Response) => {
    res.json(await batches.get(req.ctx, String(req.params.id)));
  });
  r.post('/v1/batches/:id/cancel', auth, async (req: Request, res: Response) => {
    res.json(await batches.cancel(req.ctx, String(req.params.id)));
  });
  return r;
}

