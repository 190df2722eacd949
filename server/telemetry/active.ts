import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The span that is active in this async context (a request's, a job's, an upstream try's),
 * carried by an AsyncLocalStorage so that a gateway call finds its parent and the upstream
 * HTTP client (server/providers/upstream-http.ts) its `traceparent` without either being
 * passed through every layer in between.
 *
 * No OpenTelemetry import here: the upstream client loads this file on every install, and
 * with tracing off the one thing it does is read `live` (no telemetry instance in this
 * process: the store is never looked at).
 */
export interface ActiveSpan {
  /** The OpenTelemetry Context holding the span (opaque outside ./sdk.ts). */
  readonly context: unknown;
  /** `00-<trace id>-<span id>-<flags>` (W3C Trace Context). */
  readonly traceparent: string;
}

const store = new AsyncLocalStorage<ActiveSpan>();
/** Telemetry instances alive in this process (tests run several apps in one). */
let live = 0;

/** A telemetry instance started; the returned function says it stopped. */
export function attach(): () => void {
  live++;
  let done = false;
  return () => {
    if (!done) live--;
    done = true;
  };
}

export function activeSpan(): ActiveSpan | undefined {
  return live === 0 ? undefined : store.getStore();
}

export function withActive<T>(a: ActiveSpan, fn: () => T): T {
  return store.run(a, fn);
}

/**
 * An upstream request's headers with the active span's `traceparent`, as a new object: callers
 * may pass a headers object they reuse. Unchanged when nothing is traced.
 *
 * Not `tracestate`: it is free text from the client (vendor entries), and nothing a client sends
 * reaches a provider without the content rules seeing it — only the request body does.
 */
export function withTraceHeaders(headers: Record<string, string>): Record<string, string> {
  if (live === 0) return headers;
  const a = store.getStore();
  if (a === undefined) return headers;
  return { ...headers, traceparent: a.traceparent };
}
