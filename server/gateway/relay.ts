import { performance } from 'node:perf_hooks';
import type { RequestContext } from '../context.js';
import { UpstreamError, type ChatCompletion, type ChatCompletionChunk, type ChatRequest, type CreateEmbeddingResponse, type EmbeddingsRequest } from '../providers/index.js';
import type { Deployment } from '../routing/catalogue.js';
import { messageTexts } from '../routing/content.js';
import { attempt, type Lease } from './attempt.js';
import { CLIENT_GONE, CLIENT_GONE_ERROR, estimateTokens, logUpstream, markGone as gone, TIMEOUT, toGatewayError, type CallState, type Plan } from './call.js';
import type { Planner } from './plan.js';
import type { GatewayDeps } from './service.js';

/**
 * Relay (DESIGN.md §4 steps 5–6) without a transport: a whole answer, or the upstream's
 * chunks as an async iterator the face pulls. Nothing is read ahead of the face: a slow
 * client holds the upstream back through TCP instead of making Enclave buffer the stream,
 * and the idle timer restarts when the face asks for the next chunk (a slow reader is not
 * an idle upstream). Timeouts: connect, first token, idle between chunks, total.
 */

/** One whole answer (chat or embeddings), upstream usage or an estimate in the state. */
export async function unary(d: GatewayDeps, planner: Planner, ctx: RequestContext, st: CallState, plan: Plan): Promise<ChatCompletion | CreateEmbeddingResponse> {
  const body = st.call.body;
  const ep = st.endpoint;
  const { value: result, lease } = await attempt(d, planner, ctx, st, plan, async (c, ac) => {
    const dep = c.deployment;
    const limit = Math.min(dep.options.firstTokenMs, dep.options.totalMs);
    const timer = setTimeout(() => ac.abort(TIMEOUT), limit);
    const signal = ac.signal;
    const t = performance.now();
    try {
      const b = planner.bodyFor(plan, c, body, st);
      return ep === 'chat' ? await dep.adapter.chat(b as ChatRequest, { signal }) : await dep.adapter.embed(b as EmbeddingsRequest, { signal });
    } catch (e) {
      if (signal.reason === TIMEOUT) throw new UpstreamError('provider_timeout', `Deployment ${dep.name} did not answer within ${limit} ms.`);
      throw e;
    } finally {
      clearTimeout(timer);
      st.upstreamMs += performance.now() - t;
    }
  });
  lease.ok();
  st.content?.result(ep, result);
  st.otel?.answer(result);
  st.cache?.result(result);
  const u = result.usage as { prompt_tokens?: number; completion_tokens?: number } | undefined;
  if (u) {
    st.promptTokens = u.prompt_tokens ?? 0;
    st.completionTokens = u.completion_tokens ?? 0;
  } else {
    st.estimated = true;
    st.promptTokens = estimateTokens(ep === 'chat' ? messageTexts(plan.messages) : [String(body.input)]);
    st.completionTokens = ep === 'chat' ? estimateTokens([String((result as ChatCompletion).choices?.[0]?.message?.content ?? '')]) : 0;
  }
  result.model = st.alias!;
  if (ep === 'embeddings' && body.encoding_format === 'base64') {
    for (const e of (result as CreateEmbeddingResponse).data ?? []) {
      if (Array.isArray(e.embedding)) (e as { embedding: unknown }).embedding = Buffer.from(new Float32Array(e.embedding).buffer).toString('base64');
    }
  }
  st.httpStatus = 200;
  st.status = 'ok';
  st.outcome = 'ok';
  return result;
}

/** The phases of a streamed call's deadlines, on one AbortController. */
class StreamTimers {
  phase: 'connect' | 'first token' | 'idle' | 'total' = 'connect';
  private timer: NodeJS.Timeout;
  private readonly total: NodeJS.Timeout;
  private readonly started = performance.now();

  constructor(
    private readonly o: Deployment['options'],
    private readonly ac: AbortController,
  ) {
    // Time to first token includes connecting, so the connect phase ends at the earlier of both.
    this.timer = setTimeout(this.abort, Math.min(o.connectMs, o.firstTokenMs));
    this.total = setTimeout(() => {
      this.phase = 'total';
      ac.abort(TIMEOUT);
    }, o.totalMs);
  }

  /** The face holds a chunk (its client may be slow to take it): the upstream is not idle meanwhile. */
  private holding = false;

  private readonly abort = (): void => {
    if (this.holding && this.phase === 'idle') this.timer.refresh();
    else this.ac.abort(TIMEOUT);
  };

  connected(): void {
    this.phase = 'first token';
    clearTimeout(this.timer);
    this.timer = setTimeout(this.abort, Math.max(1, this.o.firstTokenMs - (performance.now() - this.started)));
  }

  /** A chunk goes to the face: no idle deadline until it asks for the next one (backpressure from a slow client). */
  hold(): void {
    this.holding = true;
  }

  /** The face asked for the next chunk: the idle deadline starts again. */
  idle(): void {
    this.holding = false;
    if (this.phase !== 'idle') {
      this.phase = 'idle';
      clearTimeout(this.timer);
      this.timer = setTimeout(this.abort, this.o.idleMs);
    } else this.timer.refresh();
  }

  clear(): void {
    clearTimeout(this.timer);
    clearTimeout(this.total);
  }

  error(name: string): UpstreamError {
    const p = this.phase;
    return new UpstreamError('provider_timeout', `Deployment ${name} timed out (${p === 'connect' ? 'connect' : p === 'first token' ? 'time to first token' : p === 'idle' ? 'idle between chunks' : 'total'}).`);
  }
}

interface Opened {
  readonly iter: AsyncIterator<ChatCompletionChunk>;
  readonly first: IteratorResult<ChatCompletionChunk>;
  readonly timers: StreamTimers;
}

/**
 * A streamed chat: connects and waits for the first chunk inside the attempt loop (retries
 * and fallback stay possible until then), then returns the chunks for the face to pull.
 * `done` runs once when the stream is over, whatever ended it (the usage record).
 */
export async function stream(d: GatewayDeps, planner: Planner, ctx: RequestContext, st: CallState, plan: Plan, done: () => void): Promise<AsyncIterable<ChatCompletionChunk>> {
  const { value: opened, lease } = await attempt(d, planner, ctx, st, plan, async (c, ac): Promise<Opened> => {
    const dep = c.deployment;
    const timers = new StreamTimers(dep.options, ac);
    const t = performance.now();
    try {
      const s = await dep.adapter.chatStream(planner.bodyFor(plan, c, st.call.body, st) as ChatRequest, { signal: ac.signal });
      timers.connected();
      st.trace?.connected();
      const iter = s[Symbol.asyncIterator]();
      const first = await iter.next();
      timers.idle();
      st.ttftMs = performance.now() - st.t0;
      return { iter, first, timers };
    } catch (e) {
      timers.clear();
      if (ac.signal.reason === TIMEOUT) throw timers.error(dep.name);
      throw e;
    } finally {
      st.upstreamMs += performance.now() - t;
    }
  });
  return guard(relay(ctx, st, plan, lease, opened, done), () => {
    // Returned before the first pull: the client is gone; settle as relay() would have.
    opened.timers.clear();
    lease.ac.abort(CLIENT_GONE);
    void opened.iter.return?.();
    lease.fail(CLIENT_GONE_ERROR);
    gone(st);
    estimate(st, plan, 0);
    done();
  });
}

async function* relay(ctx: RequestContext, st: CallState, plan: Plan, lease: Lease, opened: Opened, done: () => void): AsyncGenerator<ChatCompletionChunk> {
  const { iter, timers } = opened;
  const signal = lease.ac.signal;
  let r = opened.first;
  let chars = 0;
  let sawUsage = false;
  let over = false;
  try {
    while (!r.done) {
      const chunk = r.value;
      if (chunk.usage) {
        st.promptTokens = chunk.usage.prompt_tokens ?? 0;
        st.completionTokens = chunk.usage.completion_tokens ?? 0;
        sawUsage = true;
      }
      for (const ch of chunk.choices ?? []) if (ch.delta?.content) chars += ch.delta.content.length;
      st.content?.chunk(chunk);
      st.otel?.chunk(chunk);
      st.cache?.chunk(chunk);
      chunk.model = st.alias!;
      timers.hold();
      yield chunk;
      timers.idle();
      const t = performance.now();
      r = await iter.next();
      st.upstreamMs += performance.now() - t;
    }
    over = true;
    lease.ok();
    st.status = 'ok';
    st.outcome = 'ok';
    st.httpStatus = 200;
  } catch (e) {
    over = true;
    if (signal.reason === CLIENT_GONE) {
      lease.fail(CLIENT_GONE_ERROR);
      gone(st);
      return;
    }
    const err = signal.reason === TIMEOUT ? timers.error(lease.deployment.name) : e;
    lease.fail(err);
    if (err instanceof UpstreamError) logUpstream(ctx, lease.deployment.name, err);
    else ctx.log.error({ err: (err as Error)?.message }, 'gateway stream failed');
    const ge = toGatewayError(err, st.alias);
    st.status = 'stream_error';
    st.httpStatus = ge.status;
    st.errorCode = ge.code;
    st.outcome = ge.type;
    throw ge;
  } finally {
    timers.clear();
    if (!over) {
      // The face stopped pulling (its client went away): stop the upstream too.
      lease.ac.abort(CLIENT_GONE);
      await iter.return?.();
      lease.fail(CLIENT_GONE_ERROR);
      gone(st);
    }
    if (!sawUsage) estimate(st, plan, chars);
    done();
  }
}

function estimate(st: CallState, plan: Plan, completionChars: number): void {
  st.estimated = true;
  st.promptTokens = estimateTokens(messageTexts(plan.messages));
  st.completionTokens = Math.ceil(completionChars / 4);
}

/** The generator, with a return() before the first next() still settling the call (a generator that never started skips its finally). */
function guard<T>(gen: AsyncGenerator<T>, unstarted: () => void): AsyncIterable<T> {
  let started = false;
  const it: AsyncIterator<T> = {
    next: () => {
      started = true;
      return gen.next();
    },
    return: (v?: unknown) => {
      if (!started) {
        started = true;
        unstarted();
      }
      return gen.return(v as T);
    },
  };
  return { [Symbol.asyncIterator]: () => it };
}
