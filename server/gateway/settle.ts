import type { ChatCompletionChunk } from '../providers/index.js';
import type { GatewayCall, GatewayResult } from './call.js';

/** What settling needs of the usage writer (server/metering/usage.ts). */
interface Settles {
  settled(): Promise<void>;
}

/**
 * A call's answer ends only after its usage record is in the database (issue 22: a replica
 * killed by SIGKILL or the OOM killer must not lose the record of a call its client saw
 * complete). Usage records are batched (server/db/batched-writer.ts); `settled()` is the
 * writer's group commit: one write carries the records of all calls finishing together.
 *
 * - A whole answer resolves after the write, so the face sends its body afterwards.
 * - A stream's chunks are relayed as they come; when the upstream is done (the record is made
 *   then) the iterator reports its end only after the write, so the face's last piece (SSE
 *   `[DONE]`, the final NDJSON line, the closing event) follows the record. A client that sees
 *   the stream end has a record; a client cut off before it saw a broken stream.
 * - Refusals and failures are not held up (not a completed call); batch lines write their
 *   record in their own transaction (`keepUsage`).
 */
export async function settleUsage(usage: Settles, call: GatewayCall, r: GatewayResult): Promise<GatewayResult> {
  if (call.keepUsage || r.kind === 'error') return r;
  if (r.kind === 'whole') {
    await usage.settled();
    return r;
  }
  return { ...r, chunks: settledStream(r.chunks, usage) };
}

/**
 * The chunks, with the end reported after `settled()`. A hand-written iterator, not an async
 * generator: return() before the first next() must reach the inner iterator (the pipeline
 * settles an unstarted stream there), which a generator that never started would skip.
 */
function settledStream(chunks: AsyncIterable<ChatCompletionChunk>, usage: Settles): AsyncIterable<ChatCompletionChunk> {
  const inner = chunks[Symbol.asyncIterator]();
  const it: AsyncIterator<ChatCompletionChunk> = {
    next: async () => {
      const r = await inner.next();
      if (r.done) await usage.settled();
      return r;
    },
    return: (v?: unknown) => (inner.return ? inner.return(v) : Promise.resolve({ done: true as const, value: v })),
  };
  if (inner.throw) it.throw = (e?: unknown) => inner.throw!(e);
  return { [Symbol.asyncIterator]: () => it };
}
