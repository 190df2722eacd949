import type { AuditLog } from '../audit/log.js';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import type { Gateway } from '../gateway/index.js';
import { newId } from '../ids.js';
import type { Candidate } from '../routing/catalogue.js';

/**
 * Replay (issue 25, "can the process be repeated?"): an administrator re-runs a logged call —
 * its stored request (opt-in content logging) with the trace's model, classification and
 * sampling parameters — as a new call of their own: a new request id, the whole pipeline
 * (policy, limits, routing), metered to the administrator and traced like any other call.
 * Only where the tenant logged the call's content; audited either way.
 */
export interface ReplayInput {
  /** Pin the replay to this deployment (by name); it must be one the plan allows for the call. */
  readonly deployment?: string | undefined;
}

export async function replayCall(gateway: Gateway, audit: AuditLog, ctx: RequestContext, requestId: string, input: ReplayInput) {
  const traces = await gateway.traces.byRequest(ctx, requestId);
  const t = traces.at(-1)!;
  const target = { type: 'call_trace', id: requestId };
  let request: Record<string, unknown> | undefined;
  try {
    const stored = await gateway.content.read(ctx, requestId); // audited as a content read
    request = (stored.at(-1)?.request ?? undefined) as Record<string, unknown> | undefined;
  } catch (e) {
    if (!(e instanceof AppError) || e.status !== 404) throw e;
  }
  if (!request || !t.model) {
    await audit.record(ctx, { action: 'call.replay', outcome: 'denied', reason: 'replay_unavailable', target });
    throw new AppError(409, 'replay_unavailable', 'This call cannot be replayed: its content was not logged (content logging was off, or its retention has passed).');
  }
  const { tools: _count, ...params } = t.params;
  void _count;
  const body: Record<string, unknown> = { ...params, model: t.model, ...request, stream: false };
  const replayId = newId('req');
  const rctx: RequestContext = { ...ctx, requestId: replayId, log: ctx.log.child({ requestId: replayId, replayOf: requestId }) };
  const result = await gateway.service.run(rctx, {
    api: 'chat',
    endpoint: t.endpoint === 'embeddings' ? 'embeddings' : 'chat',
    body,
    ...(t.classification ? { classification: t.classification } : {}),
    workflow: 'replay',
    ...(input.deployment ? { pin: input.deployment } : {}),
  });
  // The replay's own trace (written when its usage record was made): where it went.
  const deployment = (await gateway.traces.byRequest(rctx, replayId).catch(() => [])).at(-1)?.deployment ?? null;
  await audit.record(ctx, {
    action: 'call.replay',
    outcome: 'allowed',
    target,
    details: { replay_request_id: replayId, model: t.model, ...(input.deployment ? { deployment: input.deployment } : {}), status: result.kind === 'error' ? result.error.code : 'ok' },
  });
  // A replay that was refused or failed answers as that call did (its status and code): the admin's own limits, policy, pin.
  if (result.kind === 'error') throw result.error;
  return {
    object: 'call_replay' as const,
    request_id: replayId,
    replay_of: requestId,
    model: t.model,
    deployment,
    status: 'ok' as const,
    response: result.kind === 'whole' ? result.body : null,
  };
}

/** The plan's candidates narrowed to a pinned deployment (replay); none left is a clear refusal. */
export function pinCandidates(allowed: Candidate[], pin: string, model: string): Candidate[] {
  const kept = allowed.filter((c) => c.deployment.name === pin);
  if (!kept.length) throw new AppError(400, 'invalid_request', `The deployment ${pin} is not an allowed deployment of ${model} for this call.`, { param: 'deployment' });
  return kept;
}
