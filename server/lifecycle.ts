import type { Logger } from 'pino';

export type Closer = () => Promise<void> | void;

/**
 * Runs shutdown steps in reverse order of creation. A step that fails is logged and the
 * rest still run: one broken close (a queue, a timer) must not leave the embedded
 * redis-server running or the database open.
 */
export async function closeInReverse(closers: readonly Closer[], log: Logger): Promise<void> {
  for (const close of [...closers].reverse()) {
    try {
      await close();
    } catch (e) {
      log.error({ err: (e as Error).message }, 'a shutdown step failed; continuing with the others');
    }
  }
}
