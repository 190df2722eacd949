import { inspect } from 'node:util';

export interface WaitOptions<T> {
  /** What is awaited, in words: the timeout error starts with it. */
  what: string;
  /**
   * Deadline in ms. Generous by default: on a loaded 2-core machine another process (a server,
   * a worker, Redis) can take seconds to catch up; a wait that succeeds returns at once anyway.
   */
  timeout?: number;
  /** Poll interval in ms. */
  interval?: number;
  /** When given, the wait is over once `until(value)` holds; otherwise once `fn` returns a truthy value. */
  until?: (value: T) => boolean;
}

/** The one default deadline for polls in this suite (vitest.config.ts gives expect.poll the same). */
export const WAIT_TIMEOUT_MS = 10_000;

/**
 * Polls `fn` until its value is truthy (or satisfies `until`) and returns that value. A throw
 * from `fn` counts as "not yet". On timeout it fails with what was awaited and what `fn`
 * returned (or threw) last, so a failure says how far the other side got.
 *
 * The suite's only way to wait for another process or an asynchronous effect: never sleep for
 * a fixed time instead.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions<T>): Promise<T> {
  const timeout = opts.timeout ?? WAIT_TIMEOUT_MS;
  const interval = opts.interval ?? 20;
  const done = opts.until ?? ((v: T) => Boolean(v));
  const start = Date.now();
  let last: { value: T } | { error: unknown } | undefined;
  for (;;) {
    try {
      const value = await fn();
      if (done(value)) return value;
      last = { value };
    } catch (error) {
      last = { error };
    }
    const elapsed = Date.now() - start;
    if (elapsed >= timeout) {
      const seen = last === undefined ? 'nothing' : 'error' in last ? `an error: ${describe(last.error)}` : inspect(last.value, { depth: 4, breakLength: Infinity });
      throw new Error(`timed out after ${elapsed} ms waiting for ${opts.what}; last seen: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, timeout - elapsed)));
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : inspect(e);
}
