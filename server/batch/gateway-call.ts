import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import type { RequestContext } from '../context.js';
import type { TenantData } from '../db/tenant-scope.js';
import type { Gateway } from '../gateway/index.js';
import { GatewayService, type GatewayDeps } from '../gateway/service.js';
import type { UsageWriter } from '../metering/usage.js';
import type { BatchLine } from './validate.js';

/** The usage record of one line, as the gateway made it (written by the batch in its own transaction). */
export type UsageInsert = Parameters<TenantData['usageRecords']['insert']>[1];

export interface LineOutcome {
  readonly statusCode: number;
  readonly body: unknown;
  readonly usage: UsageInsert | undefined;
}

/**
 * Runs one batch line. ctx carries the batch's tenant and key (principal, scopes) and a
 * fresh requestId per line.
 */
export type LineExecutor = (ctx: RequestContext, line: BatchLine, o: { signal: AbortSignal; workflow: string; classification: string | null }) => Promise<LineOutcome>;

/**
 * A batch line through the gateway's own pipeline (GatewayService.chat / embeddings:
 * authorize, classification, policy and content rules, licence admission, routing,
 * retries, fallback, breaker, metrics, usage record) — the same code as a live call, over
 * an in-memory request/response pair. The one difference: the usage record is handed back
 * (not queued in the gateway's writer) so the batch writes it in the same transaction that
 * marks the line done: a crash can never record a line's usage twice.
 */
export function gatewayExecutor(o: { gateway: Gateway }): LineExecutor {
  // The live service's own dependencies (catalogue, policies, access, entitlements, metering
  // hooks, metrics …), so a batch line can never miss a step a live call takes; only the
  // usage sink differs. (GatewayService keeps them in `d`; keep that field, or expose it.)
  const deps = (o.gateway.service as unknown as { d: GatewayDeps }).d;
  const captured = new Map<string, UsageInsert>();
  const sink = {
    record(row: UsageInsert & { requestId: string; tenantId?: string }): void {
      const { tenantId: _t, ...rest } = row;
      captured.set(row.requestId, rest);
    },
    tokensThisMonth: (): number => deps.usage.tokensThisMonth(),
    flush(): void {},
  } as unknown as UsageWriter;
  const service = new GatewayService({ ...deps, usage: sink });
  return async (ctx, line, opts) => {
    const req = fakeRequest({
      'x-enclave-workflow': opts.workflow,
      ...(opts.classification ? { 'x-enclave-classification': opts.classification } : {}),
    });
    const res = new LineResponse();
    const onAbort = (): void => res.abortClient();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    try {
      service.beginCall();
      const body = { ...line.body };
      delete body.stream;
      if (line.url === '/v1/chat/completions') await service.chat(ctx, body as Record<string, any>, req, res as unknown as ServerResponse);
      else await service.embeddings(ctx, body as Record<string, any>, req, res as unknown as ServerResponse);
    } finally {
      opts.signal.removeEventListener('abort', onAbort);
    }
    const usage = captured.get(ctx.requestId);
    captured.delete(ctx.requestId);
    if (res.body === undefined) {
      return { statusCode: 499, body: { error: { message: 'The batch stopped before this request finished.', type: 'server_error', code: 'batch_line_aborted', param: null } }, usage };
    }
    return { statusCode: res.statusCode, body: res.body, usage };
  };
}

function fakeRequest(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

/** Just enough of node's ServerResponse for a non-streaming gateway call (the service answers with one JSON `end`). */
class LineResponse extends EventEmitter {
  statusCode = 200;
  body: unknown;
  destroyed = false;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  readonly headers: Record<string, string> = {};

  setHeader(k: string, v: string): this {
    this.headers[k.toLowerCase()] = String(v);
    return this;
  }
  writeHead(code: number): this {
    this.statusCode = code;
    this.headersSent = true;
    return this;
  }
  flushHeaders(): void {
    this.headersSent = true;
  }
  write(): boolean {
    return true;
  }
  end(chunk?: string): this {
    if (typeof chunk === 'string' && chunk.length) this.body = JSON.parse(chunk);
    this.headersSent = this.writableEnded = this.writableFinished = true;
    this.emit('finish');
    return this;
  }
  /** The batch stops (cancel, shutdown, timeout): what a client disconnect is to a live call. */
  abortClient(): void {
    if (this.writableEnded) return;
    this.destroyed = true;
    this.emit('close');
  }
}
