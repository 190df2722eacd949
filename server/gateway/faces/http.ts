import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestHeader } from '../../http/request-context.js';
import { AppError, toAppError } from '../../errors.js';
import type { ChatCompletionChunk } from '../../providers/index.js';
import { cacheDirective } from '../cache/index.js';
import type { CallFacts, GatewayCall, GoneSignal } from '../call.js';
import { deltas, type Delta } from './deltas.js';

/**
 * What every HTTP face shares: the call's headers from the request, the facts as response
 * headers, a client-gone signal, and streaming writes that respect backpressure.
 */

/** The request body as a JSON object (the faces check the fields they read). */
// Client JSON.
export function objectBody(b: unknown): Record<string, any> {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new AppError(400, 'invalid_request', 'Send a JSON object body with Content-Type: application/json.');
  return b as Record<string, any>;
}

/** A 400 for a field of the client's request. */
export function badField(message: string, param: string): AppError {
  return new AppError(400, 'invalid_request', message, { param });
}

/** The parts of a GatewayCall that come from HTTP headers and the connection. */
export function fromRequest(req: IncomingMessage, res: ServerResponse): Pick<GatewayCall, 'classification' | 'workflow' | 'signal' | 'cacheDirective'> {
  return { classification: requestHeader(req, 'x-enclave-classification'), workflow: requestHeader(req, 'x-enclave-workflow'), signal: clientGone(res), cacheDirective: cacheDirective(req) };
}

/** Fires when the response closes before it finished (the client went away). */
export function clientGone(res: ServerResponse): GoneSignal {
  return new ResponseGone(res);
}

/** A GoneSignal over the response's 'close': plain callbacks, no AbortController and EventTarget per call. */
class ResponseGone implements GoneSignal {
  aborted = false;
  private fns: (() => void)[] | undefined;

  constructor(res: ServerResponse) {
    res.once('close', () => {
      if (res.writableFinished) return;
      this.aborted = true;
      const fns = this.fns;
      this.fns = undefined;
      if (fns) for (const fn of fns) fn();
    });
  }

  addEventListener(_type: 'abort', fn: () => void): void {
    (this.fns ??= []).push(fn);
  }

  removeEventListener(_type: 'abort', fn: () => void): void {
    const i = this.fns?.indexOf(fn) ?? -1;
    if (i >= 0) this.fns!.splice(i, 1);
  }
}

/** The call's facts as headers: overhead, classification, boundary, redactions, rate-limit state. */
export function writeFacts(res: ServerResponse, f: CallFacts): void {
  if (res.headersSent) return;
  res.setHeader('x-enclave-overhead-ms', f.overheadMs().toFixed(3));
  if (f.classification) res.setHeader('x-enclave-classification', f.classification);
  if (f.boundary) res.setHeader('x-enclave-boundary', f.boundary);
  if (f.redacted?.length) res.setHeader('x-enclave-redacted', f.redacted.join(','));
  if (f.cache) res.setHeader('x-enclave-cache', f.cache);
  const h = f.limitHeaders;
  if (h) for (const k in h) res.setHeader(k, h[k]!);
}

/** Starts a streamed answer of the given content type (SSE or NDJSON), proxies told not to buffer. */
export function startStream(res: ServerResponse, f: CallFacts, type: string): void {
  writeFacts(res, f);
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
}

/**
 * Writes one piece of a streamed answer. Pieces written in one event-loop turn leave in one
 * write (cork, uncork on the next tick: no added delay); a full socket buffer waits for
 * 'drain' (or 'close': drain()), so a slow client slows the upstream instead of growing our memory.
 */
export function writePiece(res: ServerResponse, s: string): boolean {
  if (!res.writableCorked) {
    res.cork();
    process.nextTick(uncork, res);
  }
  return res.write(s);
}

function uncork(res: ServerResponse): void {
  if (res.writableCorked) res.uncork();
}

/** Resolves when the response can take more (or is closed). */
export function drain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** A face that encodes the normalized deltas as typed SSE events (Responses, Messages). */
export interface DeltaEncoder {
  /** The first events (the stream is open). */
  start(): void;
  add(d: Delta): void;
  /**
   * The closing events after the last chunk. A promise it returns (a stored response being
   * written) is awaited before the stream ends; other return values are ignored.
   */
  end(): unknown;
  /** The closing events of a stream that failed after it started. */
  failed(err: AppError): void;
}

/** Typed SSE events (`event: type` + `data: {type, …}`), noting when the socket buffer is full. */
export class EventWriter {
  private full = false;
  constructor(
    private readonly res: ServerResponse,
    private readonly extra?: () => Record<string, unknown>,
  ) {}

  event(type: string, payload: Record<string, unknown>): void {
    if (!writePiece(this.res, `event: ${type}\ndata: ${JSON.stringify({ type, ...this.extra?.(), ...payload })}\n\n`)) this.full = true;
  }

  /** Waits for the client only when a write found its buffer full. */
  async drained(): Promise<void> {
    if (!this.full) return;
    this.full = false;
    await drain(this.res);
  }
}

/**
 * Pulls the pipeline's chunks into an encoder: the stream opens with the first chunk, events
 * leave as the deltas come, a full socket buffer is waited for before the next pull, a client
 * that went away ends the pull (the pipeline records the disconnect). Returns the error of a
 * call that failed before anything was sent (the face answers it in its own error shape).
 */
export async function encodeStream(res: ServerResponse, facts: CallFacts, chunks: AsyncIterable<ChatCompletionChunk>, w: EventWriter, enc: DeltaEncoder): Promise<AppError | undefined> {
  let started = false;
  const seen = new Set<number>();
  const open = (): void => {
    startStream(res, facts, 'text/event-stream; charset=utf-8');
    enc.start();
    started = true;
  };
  try {
    for await (const chunk of chunks) {
      if (res.destroyed) break;
      if (!started) open();
      for (const d of deltas(chunk, seen)) enc.add(d);
      await w.drained();
    }
    if (res.destroyed) return undefined;
    if (!started) open();
    await enc.end();
    res.end();
  } catch (e) {
    const err = toAppError(e);
    if (!started) return err;
    if (!res.writableEnded) {
      enc.failed(err);
      res.end();
    }
  }
  return undefined;
}
