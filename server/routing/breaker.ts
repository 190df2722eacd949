import type { Clock } from '../clock.js';

/**
 * A circuit breaker per deployment: closed → open after `failures` consecutive failures;
 * open for `cooldownMs`, then half-open: one probe at a time; a success closes it, a
 * failure opens it again. Time comes from the injected clock.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export class CircuitBreaker {
  private consecutive = 0;
  private openedAt = 0;
  private probing = false;
  private st: BreakerState = 'closed';
  lastError: string | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly onChange?: (s: BreakerState) => void,
  ) {}

  get state(): BreakerState {
    if (this.st === 'open' && this.clock.now() - this.openedAt >= this.cooldownMs) return 'half_open';
    return this.st;
  }

  /** Whether a call may go out now; in half-open only one probe at a time. */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'open') return false;
    if (this.probing) return false;
    this.probing = true;
    this.set('half_open');
    return true;
  }

  success(): void {
    this.consecutive = 0;
    this.probing = false;
    if (this.st !== 'closed') this.set('closed');
  }

  failure(reason: string): void {
    this.lastError = reason;
    this.consecutive++;
    const wasProbe = this.probing;
    this.probing = false;
    if (wasProbe || this.st === 'half_open' || this.consecutive >= this.threshold) {
      this.openedAt = this.clock.now();
      this.set('open');
    }
  }

  /** A call that ended without a verdict (client went away): frees the probe slot. */
  release(): void {
    this.probing = false;
  }

  snapshot(): { state: BreakerState; consecutive_failures: number; opened_at: number | null; last_error: string | null } {
    return { state: this.state, consecutive_failures: this.consecutive, opened_at: this.st === 'closed' ? null : this.openedAt, last_error: this.lastError ?? null };
  }

  private set(s: BreakerState): void {
    this.st = s;
    this.onChange?.(s);
  }
}

/** A concurrency limit with a bounded FIFO wait. */
export class Semaphore {
  private active = 0;
  private readonly waiters: { resolve: (ok: boolean) => void; timer: NodeJS.Timeout }[] = [];
  constructor(private readonly max: number) {}

  get inFlight(): number {
    return this.active;
  }

  /** Resolves true with a slot, or false after `waitMs` without one. */
  acquire(waitMs: number): boolean | Promise<boolean> {
    if (this.active < this.max) {
      this.active++;
      return true;
    }
    if (waitMs <= 0) return false;
    return new Promise<boolean>((resolve) => {
      const w = {
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(false);
        }, waitMs),
      };
      this.waiters.push(w);
    });
  }

  release(): void {
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(true); // the slot passes straight to the waiter
    } else this.active--;
  }
}
