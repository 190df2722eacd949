import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { allowAllPlans, decide } from '../../server/access/authorize.js';
import { unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import {
  PLATFORM_ACTIONS,
  ROLE_PERMISSIONS,
  ROLES,
  SCOPE_ACTIONS,
  SCOPES,
  TEAM_ACTIONS,
  TEAM_ROLE_PERMISSIONS,
  TEAM_ROLES,
  teamPermits,
  TENANT_ACTIONS,
  type Action,
  type Role,
} from '../../server/access/permissions.js';
import { systemClock } from '../../server/clock.js';
import { createContext, type Principal, type RequestContext } from '../../server/context.js';

const doc = readFileSync('docs/access.md', 'utf8');
const log = pino({ level: 'silent' });

/** Rows of the markdown table whose header starts with `| action |` and contains `marker`. */
function table(marker: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| action |') && l.includes(marker));
  expect(start, `table with ${marker} in docs/access.md`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(l.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}
const strip = (c: string) => c.replace(/`/g, '');

function ctx(p: Principal | undefined, scopes: string[] = []): RequestContext {
  return createContext({ requestId: 'req_t', log, clock: systemClock, tenant: { id: 'ten_a', slug: 'a' }, ...(p ? { principal: p } : {}), scopes });
}
const user = (role: Role): Principal => ({ kind: 'user', id: 'usr_1', userId: 'usr_1', role, platformAdmin: false });
const deps = { entitlements: unrestricted, plans: allowAllPlans };
const own = { ownerUserId: 'usr_1' };
/** A cell is about the action itself: `_own` actions on the principal's resource, the others on someone else's. */
const resourceFor = (action: string) => (action.endsWith('_own') ? own : { ownerUserId: 'usr_other' });

describe('role × action matrix (docs/access.md ↔ code)', () => {
  const rows = table('owner | admin | member | viewer | key scopes');

  it('lists exactly the tenant actions of the code', () => {
    expect(rows.map((r) => strip(r[0]!)).sort()).toEqual([...TENANT_ACTIONS].sort());
  });

  for (const row of rows) {
    const action = strip(row[0]!) as Action;
    ROLES.forEach((role, i) => {
      const expected = row[i + 1] === 'yes';
      it(`${role} ${expected ? 'may' : 'may not'} ${action}`, () => {
        expect(['yes', 'no']).toContain(row[i + 1]);
        expect((ROLE_PERMISSIONS[role] as ReadonlySet<string>).has(action)).toBe(expected);
        expect(decide(ctx(user(role)), action, resourceFor(action), deps).allow).toBe(expected);
        if (!expected) {
          const d = decide(ctx(user(role)), action, resourceFor(action), deps);
          expect(d.allow === false && d.reason).toBe('role_forbidden');
        }
      });
    });
    it(`key scopes granting ${action}`, () => {
      const documented = row[5] === '—' ? [] : row[5]!.split(',').map((s) => strip(s.trim())).sort();
      const actual = SCOPES.filter((s) => SCOPE_ACTIONS[s].includes(action as never)).sort();
      expect(documented).toEqual(actual);
      // An owner's key: allowed exactly with a granting scope.
      for (const s of SCOPES) {
        const key: Principal = { kind: 'api_key', id: 'key_1', keyId: 'key_1', userId: 'usr_1', role: 'owner', platformAdmin: false };
        const d = decide(ctx(key, [s]), action, resourceFor(action), deps);
        const grants = actual.includes(s);
        expect(d.allow, `${s} → ${action}`).toBe(grants);
      }
    });
  }
});

describe('team role × action matrix (docs/access.md ↔ code)', () => {
  const rows = table('team admin | team member');
  it('lists exactly the team actions of the code', () => {
    expect(rows.map((r) => strip(r[0]!)).sort()).toEqual([...TEAM_ACTIONS].sort());
  });
  for (const row of rows) {
    const action = strip(row[0]!) as (typeof TEAM_ACTIONS)[number];
    TEAM_ROLES.forEach((role, i) => {
      it(`team ${role} ${row[i + 1] === 'yes' ? 'may' : 'may not'} ${action}`, () => {
        expect((TEAM_ROLE_PERMISSIONS[role] as ReadonlySet<string>).has(action)).toBe(row[i + 1] === 'yes');
        // A tenant member with the team role: exactly the team role's cell; tenant owners/admins: every team action.
        expect(teamPermits('member', role, action)).toBe(row[i + 1] === 'yes');
        expect(teamPermits('admin', undefined, action)).toBe(true);
        expect(teamPermits('viewer', undefined, action)).toBe(false);
      });
    });
  }
});

describe('team rules in authorize()', () => {
  const team = { id: 'team_1', name: 'Research', allowedModels: new Set(['llama3']), maxClassification: 'internal' as const, limits: null };
  const reason = (p: Principal, r: { model?: string; classification?: 'internal' | 'confidential' }) => {
    const d = decide(ctx(p, ['models:invoke']), 'models:invoke', r, deps);
    return d.allow ? 'allow' : d.reason;
  };
  it('a team key and a team member are held to the team’s models and ceiling', () => {
    for (const p of [{ kind: 'api_key', id: 'key_1', keyId: 'key_1', role: 'admin', team } as Principal, { ...user('member'), team }]) {
      expect(reason(p, { model: 'llama3' })).toBe('allow');
      expect(reason(p, { model: 'gpt-4o' })).toBe('team_model_not_allowed');
      expect(reason(p, { classification: 'internal' })).toBe('allow');
      expect(reason(p, { classification: 'confidential' })).toBe('team_classification_exceeded');
    }
    expect(reason(user('member'), { model: 'gpt-4o' })).toBe('allow');
  });
});

describe('platform actions (docs/access.md ↔ code)', () => {
  const rows = table('platform administrator');
  it('lists exactly the platform actions of the code', () => {
    expect(rows.map((r) => strip(r[0]!)).sort()).toEqual([...PLATFORM_ACTIONS].sort());
  });
  for (const row of rows) {
    const action = strip(row[0]!) as Action;
    it(`${action}: platform admin ${row[1]}, roles ${row.slice(2, 6).join('/')}, key ${row[6]}`, () => {
      expect(decide(ctx({ kind: 'user', id: 'usr_p', userId: 'usr_p', platformAdmin: true }), action, {}, deps).allow).toBe(row[1] === 'yes');
      ROLES.forEach((role, i) => expect(decide(ctx(user(role)), action, {}, deps).allow).toBe(row[i + 2] === 'yes'));
      const key: Principal = { kind: 'api_key', id: 'key_1', userId: 'usr_p', role: 'owner', platformAdmin: false };
      expect(decide(ctx(key, [...SCOPES]), action, {}, deps).allow).toBe(row[6] === 'yes');
    });
  }
});

describe('authorize() deny reasons', () => {
  const reason = (c: RequestContext, a: Action, r = {}, e: Entitlements = unrestricted) => {
    const d = decide(c, a, r, { entitlements: e, plans: allowAllPlans });
    return d.allow ? 'allow' : d.reason;
  };
  it('no principal → unauthenticated', () => expect(reason(ctx(undefined), 'tenant:read')).toBe('unauthenticated'));
  it('no tenant → tenant_required', () => {
    const c = ctx(user('owner'));
    delete c.tenant;
    expect(reason(c, 'tenant:read')).toBe('tenant_required');
  });
  it('no role → not_a_member', () => expect(reason(ctx({ kind: 'user', id: 'u', userId: 'u' }), 'tenant:read')).toBe('not_a_member'));
  it('_own actions need ownership', () => {
    expect(reason(ctx(user('member')), 'keys:write', { ownerUserId: 'usr_1' })).toBe('allow');
    expect(reason(ctx(user('member')), 'keys:write', { ownerUserId: 'usr_2' })).toBe('role_forbidden');
    expect(reason(ctx(user('member')), 'keys:write_own', { ownerUserId: 'usr_2' })).toBe('role_forbidden');
    expect(reason(ctx(user('admin')), 'keys:write', { ownerUserId: 'usr_2' })).toBe('allow');
  });
  it('a key is capped by its owner’s current role', () => {
    const key: Principal = { kind: 'api_key', id: 'key_1', userId: 'usr_1', role: 'viewer' };
    expect(reason(ctx(key, ['models:invoke']), 'models:invoke')).toBe('role_forbidden');
    expect(reason(ctx({ ...key, role: 'member' }, ['models:invoke']), 'models:invoke')).toBe('allow');
    expect(reason(ctx({ ...key, role: 'member' }, ['models:list']), 'models:invoke')).toBe('key_scope_missing');
  });
  it('model allow-list and maximum classification', () => {
    const key: Principal = { kind: 'api_key', id: 'key_1', role: 'admin', allowedModels: ['llama3'], maxClassification: 'internal' };
    expect(reason(ctx(key, ['models:invoke']), 'models:invoke', { model: 'llama3' })).toBe('allow');
    expect(reason(ctx(key, ['models:invoke']), 'models:invoke', { model: 'gpt-4o' })).toBe('key_model_not_allowed');
    expect(reason(ctx(key, ['models:invoke']), 'models:invoke', { classification: 'internal' })).toBe('allow');
    expect(reason(ctx(key, ['models:invoke']), 'models:invoke', { classification: 'confidential' })).toBe('key_classification_exceeded');
  });
  it('plan capabilities and licence features', () => {
    const noExport: Entitlements = { ...unrestricted, hasFeature: (f) => f !== 'audit.export' };
    expect(reason(ctx(user('owner')), 'audit:export', {}, noExport)).toBe('feature_unlicensed');
    expect(reason(ctx(user('owner')), 'audit:read', {}, noExport)).toBe('allow');
    const d = decide(ctx(user('owner')), 'models:invoke', {}, { entitlements: unrestricted, plans: { check: () => 'not in plan' } });
    expect(d.allow === false && d.reason).toBe('plan_forbidden');
  });
  it('platform admin acts as owner in any tenant; system (CLI) passes role checks but not licence features', () => {
    expect(reason(ctx({ kind: 'user', id: 'p', userId: 'p', platformAdmin: true }), 'members:grant_owner')).toBe('allow');
    const noExport: Entitlements = { ...unrestricted, hasFeature: () => false };
    expect(reason(ctx({ kind: 'system', id: 'cli' }), 'audit:export', {}, noExport)).toBe('feature_unlicensed');
  });
});
