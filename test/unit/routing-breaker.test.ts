import { describe, expect, it } from 'vitest';
import { CircuitBreaker, Semaphore, type BreakerState } from '../../server/routing/breaker.js';
import { ManualClock } from '../helpers/identity.js';

function breaker(threshold = 3, cooldownMs = 1000) {
  const clock = new ManualClock(1_000_000);
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker(clock, threshold, cooldownMs, (s) => changes.push(s));
  return { b, clock, changes };
}

describe('CircuitBreaker', () => {
  it('stays closed below the threshold; a success resets the count', () => {
    const { b, changes } = breaker(3);
    b.failure('e1');
    b.failure('e2');
    expect(b.state).toBe('closed');
    b.success();
    b.failure('e3');
    b.failure('e4');
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
    expect(b.snapshot()).toEqual({ state: 'closed', consecutive_failures: 2, opened_at: null, last_error: 'e4' });
    expect(changes).toEqual([]);
  });

  it('opens at exactly `threshold` consecutive failures and refuses calls while open', () => {
    const { b, clock, changes } = breaker(3, 1000);
    for (let i = 0; i < 3; i++) b.failure(`e${i}`);
    expect(b.state).toBe('open');
    expect(changes).toEqual(['open']);
    expect(b.tryAcquire()).toBe(false);
    expect(b.snapshot()).toMatchObject({ state: 'open', consecutive_failures: 3, opened_at: clock.t, last_error: 'e2' });
    clock.advance(999);
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
  });

  it('half-open after the cooldown: one probe at a time; its success closes the circuit', () => {
    const { b, clock, changes } = breaker(2, 1000);
    b.failure('x');
    b.failure('x');
    clock.advance(1000);
    expect(b.state).toBe('half_open');
    expect(b.tryAcquire()).toBe(true); // the probe
    expect(b.tryAcquire()).toBe(false); // a second caller waits for its verdict
    b.success();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
    expect(changes).toEqual(['open', 'half_open', 'closed']);
    expect(b.snapshot().consecutive_failures).toBe(0);
  });

  it('a failed probe opens it again for a full cooldown', () => {
    const { b, clock } = breaker(2, 1000);
    b.failure('x');
    b.failure('x');
    clock.advance(1000);
    expect(b.tryAcquire()).toBe(true);
    b.failure('probe failed');
    expect(b.state).toBe('open');
    expect(b.snapshot().opened_at).toBe(clock.t);
    clock.advance(999);
    expect(b.tryAcquire()).toBe(false);
    clock.advance(1);
    expect(b.tryAcquire()).toBe(true);
  });

  it('a probe that ended without a verdict (client gone) frees the probe slot, state unchanged', () => {
    const { b, clock } = breaker(1, 500);
    b.failure('x');
    clock.advance(500);
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
    b.release();
    expect(b.state).toBe('half_open');
    expect(b.tryAcquire()).toBe(true);
  });
});

describe('Semaphore', () => {
  it('grants up to max at once, refuses at once without a wait', () => {
    const s = new Semaphore(2);
    expect(s.acquire(0)).toBe(true);
    expect(s.acquire(0)).toBe(true);
    expect(s.acquire(0)).toBe(false);
    expect(s.inFlight).toBe(2);
    s.release();
    expect(s.inFlight).toBe(1);
  });

  it('a waiter gets the released slot in FIFO order; the count never exceeds max', async () => {
    const s = new Semaphore(1);
    expect(s.acquire(0)).toBe(true);
    const first = s.acquire(10_000) as Promise<boolean>;
    const second = s.acquire(10_000) as Promise<boolean>;
    const order: string[] = [];
    void first.then(() => order.push('first'));
    void second.then(() => order.push('second'));
    s.release(); // passes straight to the first waiter
    expect(await first).toBe(true);
    expect(s.inFlight).toBe(1);
    s.release();
    expect(await second).toBe(true);
    expect(order).toEqual(['first', 'second']);
    s.release();
    expect(s.inFlight).toBe(0);
  });

  it('a waiter gives up after its wait and leaves the queue (a later release does not hand it a slot)', async () => {
    const s = new Semaphore(1);
    expect(s.acquire(0)).toBe(true);
    expect(await s.acquire(20)).toBe(false);
    s.release();
    expect(s.inFlight).toBe(0);
    expect(s.acquire(0)).toBe(true);
  });
});
