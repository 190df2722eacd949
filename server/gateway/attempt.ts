import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { child } from '../metrics/registry.js';
import { UpstreamError } from '../providers/index.js';
import type { Candidate, Deployment } from '../routing/catalogue.js';
import { CLIENT_GONE, CLIENT_GONE_ERROR, logUpstream, type CallState, type GoneSignal, type Plan } from './call.js';
import type { Planner } from './plan.js';
import type { GatewayDeps } from './service.js';

/**
 * Attempt (DESIGN.md §4 step 5): candidates in order; per candidate up to 1 + maxRetries tries
 * with jittered backoff on retryable errors; breaker and concurrency limit per deployment.
 *
 * `open` performs one try and resolves with what the caller relays (a whole answer, or a
 * stream whose first chunk has arrived): until then nothing reached the client, so a failure
 * may be retried or fall back. It throws UpstreamError for the upstream's failures; anything
 * else is our own failure and never counts against the deployment's breaker (a request that
 * cannot even be built says nothing about the provider every tenant shares).
 *
 * The winner comes back as a Lease that holds the deployment's concurrency slot and its
 * breaker verdict until the caller settles it (a stream: when it ends).
 */
export interface Lease {
  readonly deployment: Deployment;
  /** Aborts the upstream call (timeouts, client gone). */
  readonly ac: AbortController;
  /** The upstream finished its answer: healthy. */
  ok(): void;
  /** The call ended otherwise: an unhealthy upstream failure counts, anything else only frees the probe. */
  fail(e: unknown): void;
}

export async function attempt<T>(
  d: GatewayDeps,
  planner: Planner,
  ctx: RequestContext,
  st: CallState,
  plan: Plan,
  open: (c: Candidate, ac: AbortController) => Promise<T>,
): Promise<{ value: T; lease: Lease }> {
  const signal = st.call.signal;
  st.otel?.stage('attempt');
  let last: unknown;
  let tried = 0;
  for (const c of plan.candidates) {
    if (signal?.aborted) break;
    planner.authorizeDeployment(ctx, plan, st, c);
    const dep = c.deployment;
    if (!dep.breaker.tryAcquire()) {
      st.trace?.skip(dep, 'breaker');
      last ??= new AppError(503, 'provider_unavailable', `The model ${st.alias} is unavailable right now (its provider failed repeatedly; retry later).`, { type: 'provider_error' });
      continue;
    }
    const slot = dep.limiter.acquire(dep.options.queueMs);
    const got = slot === true || slot === false ? slot : await slot;
    st.trace?.slot(dep, slot !== true && slot !== false, got);
    if (!got) {
      dep.breaker.release();
      last = new AppError(503, 'provider_busy', `The model ${st.alias} is at its concurrency limit; retry later.`, { type: 'provider_error' });
      continue;
    }
    if (tried++ > 0) {
      st.policy.fallbacks = (st.policy.fallbacks ?? 0) + 1;
      d.metrics.gatewayFallbacks.labels(st.endpoint).inc();
    }
    st.deployment = dep;
    st.model = c.model;
    let handedOver = false;
    try {
      for (let i = 0; i <= dep.options.maxRetries; i++) {
        st.attempts++;
        const ac = new AbortController();
        const onGone = (): void => ac.abort(CLIENT_GONE);
        signal?.addEventListener('abort', onGone, { once: true });
        st.trace?.tryStart(dep, c.model);
        try {
          const value = await (st.otel ? st.otel.upstream(dep, c.model, () => open(c, ac)) : open(c, ac));
          st.trace?.tryEnd();
          handedOver = true;
          return { value, lease: lease(d, dep, ac, () => signal?.removeEventListener('abort', onGone)) };
        } catch (e) {
          signal?.removeEventListener('abort', onGone);
          st.trace?.tryEnd(e);
          if (ac.signal.aborted && ac.signal.reason === CLIENT_GONE) {
            dep.breaker.release();
            throw CLIENT_GONE_ERROR;
          }
          if (!(e instanceof UpstreamError) && !(e instanceof AppError)) {
            // Our own failure (building the upstream request overflowed, a translation bug …):
            // it says nothing about the deployment's health, so it never counts against the
            // breaker that every tenant shares, and it is not retried elsewhere.
            dep.breaker.release();
            throw e;
          }
          if (e instanceof AppError) {
            dep.breaker.release();
            throw e;
          }
          d.metrics.gatewayUpstreamAttempts.labels(dep.name, e.code).inc();
          logUpstream(ctx, dep.name, e);
          last = e;
          if (e.unhealthy) dep.breaker.failure(e.code);
          else if (!e.retryable) dep.breaker.success(); // the upstream answered: healthy, but the request is refused
          if (!e.retryable) throw e;
          if (dep.breaker.state === 'open' || i === dep.options.maxRetries) break;
          const wait = e.retryAfterMs !== undefined ? e.retryAfterMs : backoff(dep.options.retryBaseMs, i);
          if (wait > dep.options.maxRetryAfterMs) break; // not worth waiting: next candidate
          if (wait > 0) await sleep(wait, signal);
          if (signal?.aborted) throw CLIENT_GONE_ERROR;
          dep.breaker.tryAcquire();
        }
      }
    } finally {
      // The slot goes with the lease when a try succeeded; otherwise it is free again here.
      if (!handedOver) dep.limiter.release();
    }
  }
  if (signal?.aborted) throw CLIENT_GONE_ERROR;
  throw last ?? new AppError(503, 'provider_unavailable', 'No provider deployment is available for this model right now.', { type: 'provider_error' });
}

function lease(d: GatewayDeps, dep: Deployment, ac: AbortController, detach: () => void): Lease {
  let settled = false;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    detach();
    dep.limiter.release();
    return true;
  };
  return {
    deployment: dep,
    ac,
    ok() {
      if (!settle()) return;
      dep.breaker.success();
      child(d.metrics.gatewayUpstreamAttempts, dep.name, 'ok').inc();
    },
    fail(e) {
      if (!settle()) return;
      if (e instanceof UpstreamError) {
        d.metrics.gatewayUpstreamAttempts.labels(dep.name, e.code).inc();
        if (e.unhealthy) return dep.breaker.failure(e.code);
      }
      dep.breaker.release();
    },
  };
}

function backoff(base: number, attempt: number): number {
  return Math.round(base * 2 ** attempt * (0.5 + Math.random()));
}

function sleep(ms: number, signal: GoneSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
