import { describe, expect, it } from 'vitest';
import { KNOWN_CAPABILITIES, SAFETY_FLOOR } from '../../license/entitlements-model.js';
import { evaluate, type LicenseState } from '../../license/evaluate.js';
import { licensePayloadSchema, type LicensePayload } from '../../license/payload.js';
import { advance, confirm, initialTime, merge } from '../../license/trusted-time.js';
import { DAY, spec } from '../helpers/license.js';

const EXP = Date.parse('2027-06-01T00:00:00Z');
const GRACE = 14;
function payload(over: Partial<LicensePayload> = {}): LicensePayload {
  const s = spec({ term: { expires_at: new Date(EXP).toISOString(), grace_days: GRACE } });
  return licensePayloadSchema.parse({ v: 1, lid: 'lic_eval', iss: 'Enclave', nbf: s.iat, aud: { product: 'enclave', installation: '*', environment: 'production' }, deployment: { modes: ['on_prem'] }, ...s, ...over });
}
const usage = { seats: 3, tenants: 1, keys: 2, tokensMonth: 10 };

describe('evaluate(): the expiry matrix', () => {
  const cases: [string, number, LicenseState][] = [
    ['T-61d', EXP - 61 * DAY, 'valid'],
    ['T-60d', EXP - 60 * DAY, 'expiring'],
    ['T-1d', EXP - DAY, 'expiring'],
    ['expiry+1s', EXP + 1000, 'grace'],
    ['grace end-1s', EXP + GRACE * DAY - 1000, 'grace'],
    ['grace end+1s', EXP + GRACE * DAY + 1000, 'lapsed'],
  ];
  for (const [name, now, state] of cases) {
    it(`${name} → ${state}: capabilities kept, limits as specified, safety floor untouched`, () => {
      const e = evaluate(payload(), usage, now);
      expect(e.state).toBe(state);
      expect(e.capabilities).toEqual(['multi_tenant', 'rag', 'sso.oidc', 'sso.saml']);
      expect(e.limits.seats).toBe(10);
      expect(e.limits.tenants).toBe(3);
      expect(e.growth).toBe(state !== 'lapsed');
      expect(e.limits.tokensMonth).toEqual(state === 'lapsed' ? { max: 100, mode: 'hard' } : { max: 1000, mode: 'hard' });
      if (state === 'valid') expect(e.banner).toBeUndefined();
      if (state === 'grace') expect(e.banner).toMatchObject({ level: 'critical', dismissible: false, audience: 'admins' });
      if (state === 'lapsed') expect(e.banner).toMatchObject({ audience: 'all', dismissible: false });
      // The safety floor is not a capability a licence can remove.
      for (const f of SAFETY_FLOOR) expect(e.capabilities).not.toContain(f);
    });
  }

  it('expiring banners escalate at 14 and 1 days', () => {
    expect(evaluate(payload(), usage, EXP - 30 * DAY).banner).toMatchObject({ level: 'info', dismissible: true });
    expect(evaluate(payload(), usage, EXP - 7 * DAY).banner).toMatchObject({ level: 'warning', dismissible: false });
    expect(evaluate(payload(), usage, EXP - DAY + 1).banner).toMatchObject({ level: 'critical' });
    expect(evaluate(payload(), usage, EXP - 10 * DAY).licence?.daysRemaining).toBe(10);
  });

  it('unlicensed: community entitlements (all features, 1 tenant, 5 seats, local and private)', () => {
    const e = evaluate(undefined, usage, EXP);
    expect(e.state).toBe('unlicensed');
    expect(e.capabilities).toEqual([...KNOWN_CAPABILITIES].sort());
    expect(e.limits).toMatchObject({ seats: 5, tenants: 1, keys: null, tokensMonth: null, boundaries: ['local', 'private'] });
    expect(e.growth).toBe(true);
  });

  it('invalid without a last-known-good: community entitlements and a critical admin banner', () => {
    const e = evaluate(undefined, usage, EXP, { code: 'bad_signature', message: 'x' });
    expect(e.state).toBe('invalid');
    expect(e.limits.seats).toBe(5);
    expect(e.banner?.level).toBe('critical');
  });

  it('invalid newest licence with a last-known-good: its state, with the problem reported', () => {
    const e = evaluate(payload(), usage, EXP - 100 * DAY, { code: 'bad_signature', message: 'x' });
    expect(e.state).toBe('valid');
    expect(e.problem?.code).toBe('bad_signature');
  });

  it('unknown capabilities are off; tolerance widens seats; absent limits are unlimited', () => {
    const e = evaluate(payload({ capabilities: ['rag', 'teleport.beta'], limits: { seats: { max: 100, tolerance_pct: 10 } } }), usage, EXP - 100 * DAY);
    expect(e.capabilities).toEqual(['rag']);
    expect(e.limits.seats).toBe(110);
    expect(e.limits.tenants).toBeNull();
    expect(e.limits.tokensMonth).toBeNull();
    expect(e.limits.boundaries).toEqual(['local', 'private', 'public']);
  });

  it('a licence not valid yet falls back to community with a problem', () => {
    const e = evaluate(payload({ nbf: Math.floor((EXP - 10 * DAY) / 1000) }), usage, EXP - 20 * DAY);
    expect(e.state).toBe('invalid');
    expect(e.problem?.code).toBe('not_yet_valid');
  });

  it('limits below usage are reported as over-limit with guidance (never rejected, nothing removed)', () => {
    const e = evaluate(payload({ limits: { seats: { max: 50, tolerance_pct: 0 }, tenants: { max: 1 }, tokens_month: { max: 5, mode: 'soft', lapsed_max: 1 } } }), { seats: 73, tenants: 2, keys: 0, tokensMonth: 9 }, EXP - 100 * DAY);
    expect(e.overLimit.map((o) => o.kind)).toEqual(['seats', 'tenants', 'tokens_month']);
    expect(e.overLimit[0]!.guidance).toMatch(/73 seats in use, the licence allows 50: new seats are blocked; deactivate users/);
    expect(e.overLimit[0]!.guidance).toMatch(/Nothing is removed/);
  });
});

describe('trusted time', () => {
  const T = Date.parse('2027-01-01T00:00:00Z');
  it('rolling the clock back never moves effective time back; it advances by elapsed time and is flagged', () => {
    let s = initialTime(T);
    ({ state: s } = advance(s, { wall: T + 60_000, elapsed: 60_000 }));
    const r = advance(s, { wall: T - 90 * DAY, elapsed: 1000 });
    expect(r.now).toBe(T + 61_000);
    expect(r.state.suspect?.reason).toBe('rollback');
    // Confirming cannot undo a rollback.
    const c = confirm(r.state, T - 90 * DAY);
    expect(c.hwm).toBe(T + 61_000);
    expect(advance(c, { wall: T - 90 * DAY, elapsed: 0 }).now).toBe(T + 61_000);
    // The clock coming right again clears the flag.
    const healed = advance(r.state, { wall: T + 120_000, elapsed: 1000 });
    expect(healed.state.suspect).toBeNull();
    expect(healed.now).toBe(T + 120_000);
  });

  it('a small rollback within tolerance is not suspect', () => {
    const r = advance(initialTime(T), { wall: T - 60_000, elapsed: 0 });
    expect(r.now).toBe(T);
    expect(r.state.suspect).toBeNull();
  });

  it('a forward jump of 20 days (power-off) is accepted silently', () => {
    const r = advance(initialTime(T), { wall: T + 20 * DAY, elapsed: 5 });
    expect(r.now).toBe(T + 20 * DAY);
    expect(r.state.suspect).toBeNull();
  });

  it('a forward jump of 10 years does not lapse anything until an admin confirms', () => {
    const r = advance(initialTime(T), { wall: T + 3650 * DAY, elapsed: 5000 });
    expect(r.now).toBe(T + 5000);
    expect(r.state.suspect?.reason).toBe('forward_jump');
    const r2 = advance(r.state, { wall: T + 3650 * DAY + 1000, elapsed: 1000 });
    expect(r2.now).toBe(T + 6000);
    const c = confirm(r2.state, T + 3650 * DAY + 1000);
    expect(c.suspect).toBeNull();
    expect(advance(c, { wall: T + 3650 * DAY + 2000, elapsed: 1000 }).now).toBe(T + 3650 * DAY + 2000);
  });

  it('a floor (licence iat, newest audit entry) raises the HWM: an edited HWM row is caught', () => {
    // The HWM row was edited back 90 days and the clock set back to match.
    const edited = { hwm: T - 90 * DAY, suspect: null, epoch: 0 };
    const r = advance(edited, { wall: T - 90 * DAY, elapsed: 0, floors: [T] });
    expect(r.now).toBe(T);
    expect(r.state.suspect?.reason).toBe('rollback');
  });

  it('merge: the newest HWM wins; a confirmation from another process is adopted', () => {
    const a = { hwm: T, suspect: null, epoch: 0 };
    expect(merge(a, { hwm: T + 5, suspect: null, epoch: 0 }).hwm).toBe(T + 5);
    const suspect = { hwm: T, suspect: { reason: 'forward_jump' as const, since: T, wall: T + 10 * 365 * DAY }, epoch: 0 };
    const confirmed = confirm(suspect, T + 10 * 365 * DAY);
    expect(merge(suspect, confirmed)).toEqual(confirmed);
  });

  it('evaluate with trusted time: a rollback after expiry cannot un-expire', () => {
    const exp = T + DAY;
    const p = payload({ term: { expires_at: new Date(exp).toISOString(), grace_days: 0 } });
    let s = initialTime(exp + 1000);
    const lapsedNow = advance(s, { wall: exp + 1000, elapsed: 0 });
    s = lapsedNow.state;
    expect(evaluate(p, usage, lapsedNow.now).state).toBe('lapsed');
    const back = advance(s, { wall: T - 30 * DAY, elapsed: 10 });
    expect(evaluate(p, usage, back.now).state).toBe('lapsed');
  });
});
