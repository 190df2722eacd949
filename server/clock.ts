/** Time, injected wherever it decides something (licences, quotas, rate limits, sessions). */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
