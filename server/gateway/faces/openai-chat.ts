import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../../context.js';
import { toAppError, type AppError } from '../../errors.js';
import { sendJson } from '../../http/respond.js';
import type { ChatCompletionChunk } from '../../providers/index.js';
import type { CallFacts, GatewayCall } from '../call.js';
import type { GatewayService } from '../service.js';
import { drain, fromRequest, startStream, writeFacts, writePiece } from './http.js';

/**
 * The OpenAI face: Chat Completions (JSON, or SSE `data: {chunk}` events ending in
 * `data: [DONE]`) and Embeddings, over the pipeline's result. The chunks are relayed as the
 * pipeline normalised them (they already are OpenAI chunks): the hot path adds one
 * JSON.stringify per chunk and nothing else.
 */
type Extra = Pick<GatewayCall, 'api'> & Partial<Pick<GatewayCall, 'onUsage'>>;

// Client JSON: the pipeline checks the fields it reads.
export async function writeChat(svc: GatewayService, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, body: Record<string, any>, extra: Extra): Promise<void> {
  const r = await svc.run(ctx, { endpoint: 'chat', body, ...fromRequest(req, res), ...extra });
  if (r.kind === 'error') return writeError(res, r.facts, r.error);
  if (r.kind === 'whole') {
    writeFacts(res, r.facts);
    return sendJson(res, 200, r.body);
  }
  await writeSse(res, r.facts, r.chunks, body.stream_options?.include_usage === true);
}

export async function writeEmbeddings(svc: GatewayService, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, body: Record<string, any>): Promise<void> {
  const r = await svc.run(ctx, { api: 'chat', endpoint: 'embeddings', body, ...fromRequest(req, res) });
  if (r.kind === 'error') return writeError(res, r.facts, r.error);
  writeFacts(res, r.facts);
  sendJson(res, 200, r.kind === 'whole' ? r.body : {});
}

/** A refusal or failure before anything was sent, in the OpenAI error shape (nothing when the client is gone). */
export function writeError(res: ServerResponse, facts: CallFacts, err: AppError, body: (e: AppError) => unknown = (e) => e.toBody()): void {
  if (res.destroyed || res.headersSent) return;
  writeFacts(res, facts);
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  sendJson(res, err.status, body(err));
}

const SSE = 'text/event-stream; charset=utf-8';

async function writeSse(res: ServerResponse, facts: CallFacts, chunks: AsyncIterable<ChatCompletionChunk>, wantUsage: boolean): Promise<void> {
  let started = false;
  try {
    for await (const chunk of chunks) {
      if (res.destroyed) break; // the pipeline records the disconnect when the loop returns
      // The usage chunk (no choices) only for clients that asked for it, as OpenAI does.
      if (!wantUsage && chunk.usage && !chunk.choices?.length) continue;
      if (!started) {
        startStream(res, facts, SSE);
        started = true;
      }
      if (!wantUsage && 'usage' in chunk) delete (chunk as { usage?: unknown }).usage;
      if (!writePiece(res, `data: ${JSON.stringify(chunk)}\n\n`)) await drain(res);
    }
    // An upstream that ended without any chunk still answers in SSE.
    if (!started && !res.destroyed) startStream(res, facts, SSE);
    if (!res.writableEnded) res.end('data: [DONE]\n\n');
  } catch (e) {
    const err = toAppError(e);
    if (!started) return writeError(res, facts, err);
    // Mid-stream: end the stream with an OpenAI-shaped error event.
    if (!res.writableEnded) res.end(`data: ${JSON.stringify(err.toBody())}\n\n`);
  }
}
