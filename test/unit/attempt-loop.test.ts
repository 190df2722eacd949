import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../server/clock.js';
import { createContext } from '../../server/context.js';
import { AppError } from '../../server/errors.js';
import { attempt } from '../../server/gateway/attempt.js';
import { CLIENT_GONE_ERROR, newState, type CallState, type GatewayCall, type GoneSignal, type Plan } from '../../server/gateway/call.js';
import type { Planner } from '../../server/gateway/plan.js';
import type { GatewayDeps } from '../../server/gateway/service.js';
import { Metrics } from '../../server/metrics/registry.js';
import { UpstreamError } from '../../server/providers/index.js';
import { CircuitBreaker, Semaphore } from '../../server/routing/breaker.js';
import { DEFAULT_OPTIONS, type Candidate, type Deployment, type DeploymentOptions } from '../../server/routing/catalogue.js';

/**
 * The retry/fallback loop (server/gateway/attempt.ts, DESIGN.md §4 step 5) on its own: real
 * circuit breakers and semaphores, a real metrics registry, and `open` standing in for the
 * upstream call, scripted per deployment. What is checked: how many tries each deployment
 * gets, which failures are retried, which fall back, which stop at once, what the breaker
 * counts, and that every concurrency slot is given back.
 */
const log = pino({ level: 'silent' });
const clock: Clock = { now: () => 1_000_000 };

/** One try's outcome: a value, or an error to throw. */
type Step = string | Error | ((ac: AbortController) => Promise<string>);

interface Dep {
  readonly deployment: Deployment;
  readonly candidate: Candidate;
  /** The tries `open` received for this deployment. */
  tries: number;
  script: Step[];
}

function dep(name: string, script: Step[], options: Partial<DeploymentOptions> = {}, maxConcurrency = 4): Dep {
  const opts: DeploymentOptions = { ...DEFAULT_OPTIONS, retryBaseMs: 0, queueMs: 0, ...options };
  // The fields attempt() reads; the rest of a catalogue deployment (adapter, models …) plays no part here.
  const deployment = { name, options: opts, breaker: new CircuitBreaker(clock, opts.breakerFailures, opts.breakerCooldownMs), limiter: new Semaphore(maxConcurrency) } as unknown as Deployment;
  return { deployment, candidate: { deployment, model: `${name}-model`, type: 'chat', priority: 0, weight: 1 }, tries: 0, script };
}

function setup(deps: Dep[], signal?: GoneSignal) {
  const metrics = new Metrics();
  // attempt() uses the deps' metrics only; the planner only for its per-deployment authorization.
  const d = { metrics, clock, log } as unknown as GatewayDeps;
  const planner = { authorizeDeployment: () => undefined } as unknown as Planner;
  const ctx = createContext({ requestId: 'req_attempt', log, clock });
  const call = { api: 'chat', endpoint: 'chat', body: { model: 'm', messages: [] }, signal } as unknown as GatewayCall;
  const st: CallState = newState(call);
  st.alias = 'm';
  const plan = { candidates: deps.map((x) => x.candidate) } as unknown as Plan;
  const byName = new Map(deps.map((x) => [x.deployment.name, x]));
  const open = async (c: Candidate, ac: AbortController): Promise<string> => {
    const x = byName.get(c.deployment.name)!;
    const step = x.script[x.tries++];
    if (step === undefined) throw new Error(`${x.deployment.name} was tried more often than scripted`);
    if (typeof step === 'function') return step(ac);
    if (step instanceof Error) throw step;
    return step;
  };
  const run = () => attempt(d, planner, ctx, st, plan, open);
  const fallbacks = async () => (await metrics.gatewayFallbacks.get()).values.reduce((n, v) => n + v.value, 0);
  return { run, st, metrics, fallbacks };
}

const serverError = () => new UpstreamError('provider_server_error', 'HTTP 502', 502);
const inFlight = (x: Dep) => x.deployment.limiter.inFlight;
const breaker = (x: Dep) => x.deployment.breaker.snapshot();

describe('attempt: retries and fallback', () => {
  it('the first try answering is the winner: one attempt, no fallback; the lease holds the slot until settled', async () => {
    const a = dep('a', ['hello']);
    const t = setup([a]);
    const { value, lease } = await t.run();
    expect(value).toBe('hello');
    expect(t.st.attempts).toBe(1);
    expect(t.st.deployment).toBe(a.deployment);
    expect(t.st.model).toBe('a-model');
    expect(t.st.policy.fallbacks).toBeUndefined();
    expect(inFlight(a)).toBe(1);
    lease.ok();
    expect(inFlight(a)).toBe(0);
    lease.ok(); // settling twice gives nothing back twice
    expect(inFlight(a)).toBe(0);
  });

  it('a retryable failure is retried on the same deployment up to maxRetries, then the next candidate takes over', async () => {
    const a = dep('a', [serverError(), serverError()], { maxRetries: 1 });
    const b = dep('b', ['from b']);
    const t = setup([a, b]);
    const { value } = await t.run();
    expect(value).toBe('from b');
    expect([a.tries, b.tries]).toEqual([2, 1]);
    expect(t.st.attempts).toBe(3);
    expect(t.st.deployment).toBe(b.deployment);
    expect(t.st.policy.fallbacks).toBe(1);
    expect(await t.fallbacks()).toBe(1);
    expect(breaker(a).consecutive_failures).toBe(2); // an upstream failure speaks against the deployment
    expect(inFlight(a)).toBe(0);
  });

  it('a retry that succeeds stays on the deployment', async () => {
    const a = dep('a', [new UpstreamError('provider_timeout', 'slow'), 'second try'], { maxRetries: 2 });
    const t = setup([a, dep('b', [])]);
    expect((await t.run()).value).toBe('second try');
    expect(a.tries).toBe(2);
    expect(t.st.policy.fallbacks).toBeUndefined();
  });

  it('a refused request (4xx) is neither retried nor sent elsewhere, and counts as a healthy answer', async () => {
    const rejected = new UpstreamError('provider_request_rejected', 'HTTP 400', 400);
    const a = dep('a', [serverError(), rejected], { maxRetries: 3 });
    const b = dep('b', ['never']);
    const t = setup([a, b]);
    await expect(t.run()).rejects.toBe(rejected);
    expect([a.tries, b.tries]).toEqual([2, 0]);
    expect(breaker(a).consecutive_failures).toBe(0); // the upstream answered
    expect(inFlight(a)).toBe(0);
  });

  it('our own failure (not an upstream error) stops at once and never counts against the breaker', async () => {
    const bug = new TypeError('cannot build the request');
    const a = dep('a', [bug], { maxRetries: 3, breakerFailures: 1 });
    const b = dep('b', ['never']);
    const t = setup([a, b]);
    await expect(t.run()).rejects.toBe(bug);
    expect([a.tries, b.tries]).toEqual([1, 0]);
    expect(breaker(a)).toMatchObject({ state: 'closed', consecutive_failures: 0 });
    expect(inFlight(a)).toBe(0);
  });

  it('an AppError from the try is passed on as it is, without retry or fallback', async () => {
    const refused = new AppError(400, 'invalid_request', 'bad');
    const a = dep('a', [refused]);
    const b = dep('b', ['never']);
    const t = setup([a, b]);
    await expect(t.run()).rejects.toBe(refused);
    expect(b.tries).toBe(0);
    expect(breaker(a).consecutive_failures).toBe(0);
  });

  it('when every candidate fails, the last upstream error is what the caller gets', async () => {
    const last = new UpstreamError('provider_connection_error', 'refused');
    const a = dep('a', [serverError()], { maxRetries: 0 });
    const b = dep('b', [last], { maxRetries: 0 });
    const t = setup([a, b]);
    await expect(t.run()).rejects.toBe(last);
    expect(t.st.attempts).toBe(2);
  });

  it('failures that open the breaker mid-retries move on to the next candidate at once', async () => {
    const a = dep('a', [serverError(), serverError(), 'unreached'], { maxRetries: 5, breakerFailures: 2 });
    const b = dep('b', ['from b']);
    const t = setup([a, b]);
    expect((await t.run()).value).toBe('from b');
    expect(a.tries).toBe(2);
    expect(breaker(a).state).toBe('open');
  });
});

describe('attempt: breaker, concurrency and waits', () => {
  it('an open breaker skips its deployment without a try; with every one open the answer is provider_unavailable', async () => {
    const a = dep('a', ['never'], { breakerFailures: 1 });
    a.deployment.breaker.failure('provider_server_error');
    const b = dep('b', ['from b']);
    expect((await setup([a, b]).run()).value).toBe('from b');
    expect(a.tries).toBe(0);

    const only = dep('only', ['never'], { breakerFailures: 1 });
    only.deployment.breaker.failure('provider_server_error');
    await expect(setup([only]).run()).rejects.toMatchObject({ status: 503, code: 'provider_unavailable' });
    expect(only.tries).toBe(0);
  });

  it('a deployment at its concurrency limit is skipped after its queue wait (provider_busy when none is left)', async () => {
    const a = dep('a', ['never'], { queueMs: 0 }, 1);
    expect(a.deployment.limiter.acquire(0)).toBe(true); // another call holds the only slot
    const b = dep('b', ['from b']);
    expect((await setup([a, b]).run()).value).toBe('from b');
    expect(a.tries).toBe(0);
    await expect(setup([a]).run()).rejects.toMatchObject({ status: 503, code: 'provider_busy' });
    expect(breaker(a).state).toBe('closed'); // busy says nothing about health
  });

  it("a rate limit is retried after the upstream's Retry-After; it does not count against the breaker", async () => {
    const limited = new UpstreamError('provider_rate_limited', 'HTTP 429', 429, 50);
    const a = dep('a', [limited, 'after the wait'], { maxRetries: 1, breakerFailures: 1 });
    const t = setup([a]);
    const t0 = performance.now();
    expect((await t.run()).value).toBe('after the wait');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45); // the wait asked for (timer granularity)
    expect(breaker(a)).toMatchObject({ state: 'closed', consecutive_failures: 0 });
  });

  it('a Retry-After longer than maxRetryAfterMs is not waited for: the next candidate is tried at once', async () => {
    const a = dep('a', [new UpstreamError('provider_rate_limited', 'HTTP 429', 429, 60_000), 'unreached'], { maxRetries: 3, maxRetryAfterMs: 1000 });
    const b = dep('b', ['from b']);
    const t = setup([a, b]);
    const t0 = performance.now();
    expect((await t.run()).value).toBe('from b');
    expect(a.tries).toBe(1);
    expect(performance.now() - t0).toBeLessThan(30_000); // not the minute asked for
  });
});

describe('attempt: the client goes away', () => {
  function gone(): GoneSignal & { fire(): void } {
    const listeners = new Set<() => void>();
    const s = {
      aborted: false,
      addEventListener: (_: 'abort', l: () => void) => void listeners.add(l),
      removeEventListener: (_: 'abort', l: () => void) => void listeners.delete(l),
      fire() {
        s.aborted = true;
        for (const l of [...listeners]) l();
      },
    };
    return s;
  }

  it('during a try: the upstream call is aborted, nothing is retried or sent elsewhere, the breaker counts nothing', async () => {
    const signal = gone();
    const a = dep('a', [
      (ac) =>
        new Promise<string>((_, reject) => {
          ac.signal.addEventListener('abort', () => reject(new UpstreamError('provider_connection_error', 'aborted')));
          signal.fire();
        }),
    ], { maxRetries: 3, breakerFailures: 1 });
    const b = dep('b', ['never']);
    const t = setup([a, b], signal);
    await expect(t.run()).rejects.toBe(CLIENT_GONE_ERROR);
    expect([a.tries, b.tries]).toEqual([1, 0]);
    expect(breaker(a)).toMatchObject({ state: 'closed', consecutive_failures: 0 });
    expect(inFlight(a)).toBe(0);
  });

  it('during the backoff wait: no further try', async () => {
    const signal = gone();
    const a = dep('a', [new UpstreamError('provider_rate_limited', 'HTTP 429', 429, 2000), 'unreached'], { maxRetries: 1 });
    const t = setup([a], signal);
    const run = t.run();
    await new Promise((r) => setImmediate(r)); // the first try has failed; the loop waits
    signal.fire();
    await expect(run).rejects.toBe(CLIENT_GONE_ERROR);
    expect(a.tries).toBe(1);
    expect(inFlight(a)).toBe(0);
  });
});
