/**
 * Trusted time: effective_now = max(wall clock, high-water mark). Rolling the clock back
 * never extends a licence; a large forward jump (bad NTP, typo) never lapses one at once.
 *
 * - The HWM is persisted (settings) and shared by every process on the database.
 * - A forward jump of up to 45 days (power-off, maintenance) is accepted silently.
 * - A larger jump, or the wall clock falling behind the HWM by more than 5 minutes, sets
 *   `suspect`; while suspect the HWM advances only by monotonic elapsed time, until the
 *   wall clock agrees again or an admin runs `enclave license clock confirm`.
 * - Floors (the licence's iat, the newest audit entry, …) raise the HWM: evidence that
 *   time has passed beyond it. A floor ahead of the wall clock means the clock is behind.
 * Pure functions; LicenseService persists the state.
 */
export interface TimeState {
  readonly hwm: number;
  readonly suspect: null | { readonly reason: 'forward_jump' | 'rollback'; readonly since: number; readonly wall: number };
  /** Incremented by `confirm`, so every process adopts a confirmation made elsewhere. */
  readonly epoch: number;
}

export interface TimePolicy {
  readonly maxForwardJumpMs: number;
  readonly rollbackToleranceMs: number;
}

export const DEFAULT_TIME_POLICY: TimePolicy = { maxForwardJumpMs: 45 * 86_400_000, rollbackToleranceMs: 5 * 60_000 };

export interface TimeInput {
  readonly wall: number;
  /** Monotonic milliseconds since the previous advance in this process (0 at start). */
  readonly elapsed: number;
  readonly floors?: readonly number[];
}

export function initialTime(wall: number, floors: readonly number[] = []): TimeState {
  return { hwm: Math.max(wall, ...floors), suspect: null, epoch: 0 };
}

export function advance(prev: TimeState, input: TimeInput, policy: TimePolicy = DEFAULT_TIME_POLICY): { state: TimeState; now: number } {
  const { wall } = input;
  const elapsed = Math.max(0, input.elapsed);
  const monotonic = prev.hwm + elapsed;
  const floor = Math.max(0, ...(input.floors ?? []));
  let hwm: number;
  let suspect = prev.suspect;

  const behind = wall < prev.hwm - policy.rollbackToleranceMs || floor > wall + policy.rollbackToleranceMs;
  const jumped = wall > prev.hwm + policy.maxForwardJumpMs;
  if (behind) {
    hwm = Math.max(monotonic, floor);
    suspect = prev.suspect?.reason === 'rollback' ? prev.suspect : { reason: 'rollback', since: hwm, wall };
  } else if (jumped && !(suspect === null && prev.hwm === 0)) {
    hwm = Math.max(monotonic, floor);
    suspect = prev.suspect?.reason === 'forward_jump' ? prev.suspect : { reason: 'forward_jump', since: hwm, wall };
  } else {
    // The wall clock is plausible again (or always was): it leads, and a suspicion clears.
    hwm = Math.max(wall, prev.hwm, floor);
    suspect = null;
  }
  return { state: { hwm, suspect, epoch: prev.epoch }, now: hwm };
}

/**
 * The admin confirms the wall clock is right (after a large forward jump): the HWM moves to
 * it. Time never moves back, so confirming cannot undo a rollback; it only clears the flag
 * once the clock agrees with the HWM again.
 */
export function confirm(prev: TimeState, wall: number): TimeState {
  return { hwm: Math.max(prev.hwm, wall), suspect: null, epoch: prev.epoch + 1 };
}

/** Merges this process's state with the stored one (another process may have advanced or confirmed). */
export function merge(local: TimeState, stored: TimeState | undefined): TimeState {
  if (!stored) return local;
  if (stored.epoch > local.epoch) return { ...stored, hwm: Math.max(stored.hwm, local.suspect ? 0 : local.hwm) };
  return { hwm: Math.max(local.hwm, stored.hwm), suspect: local.suspect ?? (stored.epoch === local.epoch ? stored.suspect : null), epoch: local.epoch };
}
