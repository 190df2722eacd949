import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { DEFAULT_ACTIONS, DEFAULT_BOUNDARIES, parsePolicy, resolveClassification, strongestAction, TenantPolicy } from '../../server/routing/policy.js';

describe('TenantPolicy', () => {
  it('defaults: restricted stays local, confidential never public, public/internal anywhere', () => {
    const p = new TenantPolicy();
    expect(p.allows('restricted', 'local', null)).toBe(true);
    expect(p.allows('restricted', 'private', null)).toBe(false);
    expect(p.allows('confidential', 'private', null)).toBe(true);
    expect(p.allows('confidential', 'public', null)).toBe(false);
    expect(p.allows('internal', 'public', null)).toBe(true);
    expect(p.allows('public', 'public', 'eu')).toBe(true);
    expect([...p.boundaries.confidential].sort()).toEqual([...DEFAULT_BOUNDARIES.confidential].sort());
    expect(p.actions.confidential).toEqual(DEFAULT_ACTIONS.confidential);
    expect(p.contentLogging).toBeNull();
  });

  it('boundaries and regions per classification; a region list refuses deployments without a region', () => {
    const p = new TenantPolicy({ boundaries: { internal: ['local', 'private'] }, regions: { internal: ['eu'] } });
    expect(p.allows('internal', 'public', 'eu')).toBe(false); // boundary not allowed
    expect(p.allows('internal', 'private', 'eu')).toBe(true);
    expect(p.allows('internal', 'private', 'us')).toBe(false);
    expect(p.allows('internal', 'private', null)).toBe(false);
    expect(p.allows('public', 'public', null)).toBe(true); // other classifications keep their defaults
  });

  it('content actions: classification entry over `default` over the built-in defaults; `active` lists what is scanned', () => {
    const p = new TenantPolicy({ content: { default: { email: 'block' }, actions: { public: { email: 'allow', phone: 'route_local' } } } });
    expect(p.actions.public.email).toBe('allow');
    expect(p.actions.public.phone).toBe('route_local');
    expect(p.actions.internal.email).toBe('block');
    expect(p.actions.internal.iban).toBe(DEFAULT_ACTIONS.internal.iban);
    expect(p.active.public.has('email')).toBe(false);
    expect(p.active.public.has('phone')).toBe(true);
    expect(p.active.internal.has('email')).toBe(true);
  });
});

describe('parsePolicy', () => {
  it('no stored policy: the defaults, with content logging passed through', () => {
    const p = parsePolicy(undefined, { retentionDays: 7 });
    expect(p.allows('internal', 'public', null)).toBe(true);
    expect(p.contentLogging).toEqual({ retentionDays: 7 });
  });

  it('a stored policy is parsed (strictly) and compiled', () => {
    const p = parsePolicy(JSON.stringify({ boundaries: { public: ['local'] }, keyFloors: { key_1: 'confidential' }, defaultClassification: 'internal' }));
    expect(p.allows('public', 'private', null)).toBe(false);
    expect(p.keyFloors).toEqual({ key_1: 'confidential' });
    expect(p.defaultClassification).toBe('internal');
  });

  it('a stored policy that no longer parses (bad JSON, unknown field, unknown boundary) falls back to local only', () => {
    for (const bad of ['{not json', JSON.stringify({ surprise: true }), JSON.stringify({ boundaries: { public: ['moon'] } })]) {
      const p = parsePolicy(bad);
      for (const c of ['public', 'internal', 'confidential', 'restricted'] as const) {
        expect(p.allows(c, 'local', null), bad).toBe(true);
        expect(p.allows(c, 'private', null), bad).toBe(false);
        expect(p.allows(c, 'public', null), bad).toBe(false);
      }
    }
  });
});

describe('resolveClassification', () => {
  it('no header: the floor', () => {
    expect(resolveClassification(undefined, 'internal')).toEqual({ classification: 'internal', clamped: false });
    expect(resolveClassification('', 'confidential')).toEqual({ classification: 'confidential', clamped: false });
  });

  it('the header raises the classification (case and spaces ignored), never lowers it below the floor', () => {
    expect(resolveClassification(' Restricted ', 'internal')).toEqual({ classification: 'restricted', requested: 'restricted', clamped: false });
    expect(resolveClassification('public', 'confidential')).toEqual({ classification: 'confidential', requested: 'public', clamped: true });
    expect(resolveClassification('internal', 'internal')).toEqual({ classification: 'internal', requested: 'internal', clamped: false });
  });

  it('an unknown value is a 400 naming the header', () => {
    const e = (() => {
      try {
        resolveClassification('secret', 'public');
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(AppError);
    expect(e).toMatchObject({ status: 400, code: 'invalid_classification' });
  });
});

describe('strongestAction', () => {
  const actions = { email: 'redact', phone: 'allow', iban: 'block', card: 'route_local', national_id: 'allow', secret: 'redact' } as const;
  it('block > route_local > redact > allow, over the detectors that hit', () => {
    expect(strongestAction({}, actions)).toBe('allow');
    expect(strongestAction({ phone: 2 }, actions)).toBe('allow');
    expect(strongestAction({ email: 1, phone: 1 }, actions)).toBe('redact');
    expect(strongestAction({ email: 1, card: 1 }, actions)).toBe('route_local');
    expect(strongestAction({ card: 1, iban: 1, email: 3 }, actions)).toBe('block');
  });
});
