import type { RequestContext } from '../context.js';
import type { LineUsage } from '../db/repos/jobs.js';
import type { Gateway } from '../gateway/index.js';
import type { BatchLine } from './validate.js';

/** The usage record of one line, as the gateway made it (written by the batch in its own transaction). */
export type UsageInsert = LineUsage;

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
 * A batch line through the gateway's own pipeline (GatewayService.run: authorize,
 * classification, policy and content rules, admission, routing, retries, fallback, breaker,
 * metrics, usage record) — the same code as a live call; the batch is one more face (api
 * `batch`, a JSON line out). The one difference: the usage record is handed back
 * (keepUsage) so the batch writes it in the same transaction that marks the line done: a
 * crash can never record a line's usage twice.
 */
export function gatewayExecutor(o: { gateway: Gateway }): LineExecutor {
  const service = o.gateway.service;
  return async (ctx, line, opts) => {
    const body = { ...line.body };
    delete body.stream;
    let usage: UsageInsert | undefined;
    const r = await service.run(ctx, {
      api: 'batch',
      endpoint: line.url === '/v1/chat/completions' ? 'chat' : 'embeddings',
      body,
      workflow: opts.workflow,
      classification: opts.classification ?? undefined,
      signal: opts.signal,
      keepUsage: true,
      onUsage: (row) => {
        const { tenantId: _t, ...rest } = row;
        usage = rest;
      },
    });
    if (r.kind === 'whole') return { statusCode: 200, body: r.body, usage };
    if (r.kind === 'error' && r.error.code !== 'client_disconnect') return { statusCode: r.error.status, body: r.error.toBody(), usage };
    if (r.kind === 'stream') {
      // Not asked for (stream is removed above); drained so the call is settled.
      for await (const _c of r.chunks) void _c;
    }
    return { statusCode: 499, body: { error: { message: 'The batch stopped before this request finished.', type: 'server_error', code: 'batch_line_aborted', param: null } }, usage };
  };
}
