import OpenAI, { APIError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { buildApp } from '../../server/app.js';
import { call, login, PASSWORD, sys, type Session } from '../helpers/identity.js';
import { appRoutes } from '../helpers/routes.js';
import { scimTenant } from '../fixtures/scim/setup.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Teams inside a tenant (issue 24), through HTTP with the official openai SDK against the real
 * Redis and a fake Ollama: the team level of admission (key → user → team → tenant → licence),
 * the team's models, team admins scoped to their team (every team route), usage by team.
 * One app for the file; each test uses its own team, and the clock moves to a fresh month where
 * a test counts a budget.
 */
const clock = { t: Date.UTC(2025, 2, 15, 12), now(): number { return this.t; } };
let env: GatewayEnv;
let owner: Session;
let teamAdmin: Session;
let teamAdminId: string;
let memberId: string;
/** A key whose owner (the tenant owner) is in no team: its calls have no team level. */
let noTeam: OpenAI;
const tenantPath = () => `/admin/api/tenants/${env.tenant.tenant.id}`;
const s = () => env.app.services;

/** A fresh month (budgets and buckets start empty); sessions are signed in again (a month outlives them). */
async function nextMonth(): Promise<void> {
  const d = new Date(clock.t);
  clock.t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 15, 12);
  owner = await login(env.app.url, env.tenant.users.owner!.email);
  teamAdmin = await login(env.app.url, 'lead@gw.test');
}
async function newTeam(body: Record<string, unknown>): Promise<string> {
  const r = await call(env.app.url, `${tenantPath()}/teams`, { method: 'POST', session: owner, body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id;
}
async function teamKey(teamId: string, who = owner): Promise<{ id: string; secret: string; client: OpenAI }> {
  const r = await call(env.app.url, `${tenantPath()}/teams/${teamId}/keys`, { method: 'POST', session: who, body: { name: `team key ${teamId.slice(-4)}` } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body.team_id).toBe(teamId);
  return { id: r.body.id, secret: r.body.secret, client: new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: r.body.secret, maxRetries: 0 }) };
}
const chat = (c: OpenAI, model = 'llama3.1:8b') => c.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 });
async function refusal(p: Promise<unknown>): Promise<APIError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(APIError);
  return e as APIError;
}

beforeAll(async () => {
  env = await gatewayEnv({ clock, entitlements: unrestricted });
  env.ollama.models.push('qwen2.5:0.5b');
  await env.addProvider({ name: 'ollama-1', kind: 'ollama', base_url: env.ollama.url, boundary: 'local', models: 'llama3.1:8b,qwen2.5:0.5b' });
  const ctx = env.tenant.ctx;
  const mk = async (email: string) => {
    const u = await s().identity.users.create(sys(s()), { email, password: PASSWORD });
    await s().identity.users.grant(ctx, u.id, 'member');
    return u.id;
  };
  teamAdminId = await mk('lead@gw.test');
  memberId = env.tenant.users.member!.id;
  const own = await s().identity.keys.create(ctx, { name: 'no team', ownerUserId: env.tenant.users.owner!.id });
  noTeam = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: own.secret, maxRetries: 0 });
  // The tenant's plan has plenty of room: every refusal below is the team's.
  await s().metering.plans.upsert(sys(s()), { name: 'roomy', limits: { monthly_tokens: 10_000_000, requests_per_minute: 100_000 } });
  await s().metering.plans.assign(sys(s()), env.tenant.tenant.id, 'roomy');
  await nextMonth();
});
afterAll(async () => env?.close());

describe('teams', () => {
  it('a team budget refuses at the team level (quota_exceeded naming the team) while the tenant still has room', async () => {
    await nextMonth();
    const team = await newTeam({ name: 'Research', limits: { monthly_tokens: 60 } });
    const k = await teamKey(team);
    let ok = 0;
    let e: APIError | undefined;
    for (let i = 0; i < 20 && !e; i++) {
      try {
        await chat(k.client);
        ok++;
      } catch (x) {
        e = x as APIError;
      }
    }
    expect(ok).toBeGreaterThan(0);
    expect(e, 'the team budget ran out').toBeInstanceOf(RateLimitError);
    expect(e!.status).toBe(429);
    expect(e!.code).toBe('quota_exceeded');
    const body = e!.error as Record<string, any>;
    expect(body.level).toBe('team');
    expect(body.team).toEqual({ id: team, name: 'Research' });
    expect(body.limit).toBe('monthly_tokens');
    expect(body.limit_value).toBe(60);
    expect(e!.message).toContain('team Research');
    // The tenant still has room: a key outside the team is admitted.
    expect((await chat(noTeam)).choices[0]!.message.content).toBeTruthy();
    // The team's usage records carry the team (the refused call's too); what it used stays within its budget.
    const all = (await env.usage()).filter((u) => u.teamId === team);
    expect(all.filter((u) => u.errorCode === 'quota_exceeded')).toHaveLength(1);
    const records = all.filter((u) => u.status === 'ok');
    expect(records).toHaveLength(ok);
    const used = records.reduce((t, u) => t + u.promptTokens + u.completionTokens, 0);
    expect(used).toBeLessThanOrEqual(60);
    // Self-service usage with the team key shows the team level and what the whole team has left.
    const self = await call(env.app.url, '/v1/enclave/usage', { key: k.secret });
    expect(self.status).toBe(200);
    const teamLevel = self.body.levels.find((l: { level: string }) => l.level === 'team');
    expect(teamLevel).toMatchObject({ team: { id: team, name: 'Research' }, limits: { monthly_tokens: 60 }, used: { tokens: used } });
    expect(self.body.remaining.monthly_tokens).toBe(Math.max(0, 60 - used));
  });

  it('a model the team may not use is refused for a team key and for a team member (team_model_not_allowed); others may use it', async () => {
    const team = await newTeam({ name: 'Support', allowed_models: ['llama3.1:8b'] });
    const k = await teamKey(team);
    expect((await chat(k.client)).model).toBeTruthy();
    const e = await refusal(chat(k.client, 'qwen2.5:0.5b'));
    expect(e.status).toBe(403);
    expect(e.code).toBe('team_model_not_allowed');
    expect(e.message).toContain('Support');
    // A member's own key (not a team key): their first team's rules apply.
    const other = await call(env.app.url, `${tenantPath()}/teams`, { method: 'POST', session: owner, body: { name: 'Members' } });
    expect(other.status).toBe(201);
    const personal = await s().identity.keys.create(env.tenant.ctx, { name: 'member own', ownerUserId: teamAdminId });
    const client = new OpenAI({ baseURL: `${env.app.url}/v1`, apiKey: personal.secret, maxRetries: 0 });
    expect((await chat(client, 'qwen2.5:0.5b')).model).toBeTruthy(); // not in a team yet
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}/members/${teamAdminId}`, { method: 'PUT', session: owner, body: { role: 'member' } })).status).toBe(200);
    const e2 = await refusal(chat(client, 'qwen2.5:0.5b'));
    expect(e2.code).toBe('team_model_not_allowed');
    // The refusal is audited with the reason.
    // Removing the membership lifts it (the team cache follows the change at once in this process).
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}/members/${teamAdminId}`, { method: 'DELETE', session: owner })).status).toBe(204);
    expect((await chat(client, 'qwen2.5:0.5b')).model).toBeTruthy();
    await s().identity.keys.revoke(env.tenant.ctx, personal.key.id);
  });

  it('data above the team’s classification ceiling is refused (team_classification_exceeded); at or below it passes', async () => {
    const team = await newTeam({ name: 'Interns', max_classification: 'internal' });
    const k = await teamKey(team);
    const ask = (c: string) => k.client.chat.completions.create({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, { headers: { 'X-Enclave-Classification': c } });
    expect((await ask('internal')).choices).toHaveLength(1);
    const e = await refusal(ask('confidential'));
    expect(e.status).toBe(403);
    expect(e.code).toBe('team_classification_exceeded');
    expect(e.message).toContain('Interns');
    // Without the ceiling (a tenant admin lifts it) the same call passes.
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}`, { method: 'PATCH', session: owner, body: { max_classification: null } })).status).toBe(200);
    expect((await ask('confidential')).choices).toHaveLength(1);
  });

  it('a team admin sees and manages only their team: every team route with another team’s id is an audited 404', async () => {
    const mine = await newTeam({ name: 'Platform' });
    const theirs = await newTeam({ name: 'Finance' });
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/members/${teamAdminId}`, { method: 'PUT', session: owner, body: { role: 'admin' } })).status).toBe(200);
    const theirKey = await teamKey(theirs);
    // Lists: only the own team, with the role.
    const list = await call(env.app.url, `${tenantPath()}/teams`, { session: teamAdmin });
    expect(list.status).toBe(200);
    expect(list.body.data.map((t: { id: string; role: string }) => [t.id, t.role])).toEqual([[mine, 'admin']]);
    // Own team: members, keys, usage; adds a member; creates and revokes a team key.
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/members/${memberId}`, { method: 'PUT', session: teamAdmin, body: { role: 'member' } })).status).toBe(200);
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/members`, { session: teamAdmin })).body.data.map((m: { email: string }) => m.email).sort()).toEqual(['lead@gw.test', 'member@gw.test']);
    const k = await teamKey(mine, teamAdmin);
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/keys`, { session: teamAdmin })).body.data.map((x: { id: string }) => x.id)).toEqual([k.id]);
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/usage`, { session: teamAdmin })).status).toBe(200);
    // Not theirs to raise: the team's budget, models, or making someone a team admin.
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}`, { method: 'PATCH', session: teamAdmin, body: { limits: { monthly_tokens: 1 } } })).status).toBe(403);
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/members/${memberId}`, { method: 'PUT', session: teamAdmin, body: { role: 'admin' } })).status).toBe(403);
    // Nor the tenant's usage report, keys or members.
    expect((await call(env.app.url, `${tenantPath()}/usage?by=team`, { session: teamAdmin })).status).toBe(403);
    expect((await call(env.app.url, `${tenantPath()}/keys`, { session: teamAdmin })).body.data?.some((x: { id: string }) => x.id === theirKey.id) ?? false).toBe(false);

    // Every team route of the app (from its router stack) with the other team's id: 404, audited, nothing changes.
    const routes = appRoutes(() => buildApp(s())).filter((r) => r.includes('/teams/:teamId'));
    expect(routes.length).toBeGreaterThanOrEqual(10);
    const before = JSON.stringify(await call(env.app.url, `${tenantPath()}/teams/${theirs}`, { session: owner }));
    const keysBefore = JSON.stringify((await call(env.app.url, `${tenantPath()}/teams/${theirs}/keys`, { session: owner })).body);
    for (const route of routes) {
      const [method, tpl] = route.split(' ') as [string, string];
      const path = tpl.replace(':tenantId', env.tenant.tenant.id).replace(':teamId', theirs).replace(':userId', memberId).replace(':keyId', theirKey.id);
      const body = method === 'POST' ? { name: 'intruder' } : method === 'PUT' ? { role: 'member' } : method === 'PATCH' ? { name: 'pwned' } : undefined;
      const auditBefore = await s().identity.audit.count();
      const r = await call(env.app.url, path, { method, session: teamAdmin, ...(body ? { body } : {}) });
      expect(r.status, `${route}: ${JSON.stringify(r.body)}`).toBe(404);
      expect(JSON.stringify(r.body)).not.toContain('Finance');
      expect(await s().identity.audit.count()).toBeGreaterThan(auditBefore);
      const denied = await s().identity.audit.list({ actorId: teamAdminId, outcome: 'denied', limit: 1 });
      expect(denied[0]!.targetId).toBe(theirs);
    }
    expect(JSON.stringify(await call(env.app.url, `${tenantPath()}/teams/${theirs}`, { session: owner }))).toBe(before);
    expect(JSON.stringify((await call(env.app.url, `${tenantPath()}/teams/${theirs}/keys`, { session: owner })).body)).toBe(keysBefore);
    // The team admin revokes their own team's key; another team's key through their team's path is a 404.
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/keys/${theirKey.id}`, { method: 'DELETE', session: teamAdmin })).status).toBe(404);
    expect((await call(env.app.url, `${tenantPath()}/teams/${mine}/keys/${k.id}`, { method: 'DELETE', session: teamAdmin })).status).toBe(204);
    const rev = await refusal(chat(k.client));
    expect(rev.status).toBe(401);
  });

  it('usage reports group by team (the report endpoint; totals equal the usage records of each team)', async () => {
    await nextMonth();
    const a = await newTeam({ name: 'Alpha analytics' });
    const b = await newTeam({ name: 'Beta analytics' });
    const ka = await teamKey(a);
    const kb = await teamKey(b);
    for (let i = 0; i < 3; i++) await chat(ka.client);
    await chat(kb.client);
    await chat(noTeam); // no team: not in the by-team report
    const month = new Date(clock.t).toISOString().slice(0, 7);
    const r = await call(env.app.url, `${tenantPath()}/usage?by=team&month=${month}`, { session: owner });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.by).toBe('team');
    const records = (await env.usage()).filter((u) => new Date(u.createdAt).toISOString().startsWith(month));
    const sum = (team: string) => records.filter((u) => u.teamId === team).reduce((t, u) => t + u.promptTokens + u.completionTokens, 0);
    const rows = Object.fromEntries(r.body.rows.map((x: { group: string }) => [x.group, x]));
    expect(Object.keys(rows).sort()).toEqual([a, b].sort());
    expect(rows[a].label).toBe('Alpha analytics');
    expect(rows[a].requests).toBe(3);
    expect(rows[a].total_tokens).toBe(sum(a));
    expect(rows[b].requests).toBe(1);
    expect(rows[b].total_tokens).toBe(sum(b));
    const csv = await fetch(`${env.app.url}${tenantPath()}/usage?by=team&month=${month}&format=csv`, { headers: { cookie: owner.cookie } });
    expect((await csv.text()).split('\n')[0]).toBe('team,requests,errors,prompt_tokens,completion_tokens,total_tokens,cost_micros');
    // The team's own usage view (team admins read it) agrees.
    const own = await call(env.app.url, `${tenantPath()}/teams/${a}/usage?month=${month}`, { session: owner });
    expect(own.body.usage.tokens).toBe(sum(a));
    expect(own.body.by_model[0].group).toBe('llama3.1:8b');
  });

  it('bad input loses nothing: duplicate names, unknown members, limits of the wrong shape, deleting a team that still has live keys', async () => {
    const team = await newTeam({ name: 'Legal' });
    const dup = await call(env.app.url, `${tenantPath()}/teams`, { method: 'POST', session: owner, body: { name: 'Legal' } });
    expect([dup.status, dup.body.error.code]).toEqual([409, 'team_exists']);
    const bad = await call(env.app.url, `${tenantPath()}/teams/${team}`, { method: 'PATCH', session: owner, body: { limits: { monthly_tokens: -1 } } });
    expect(bad.status).toBe(400);
    const unknown = await call(env.app.url, `${tenantPath()}/teams/${team}/members/usr_00000000000000000000000000`, { method: 'PUT', session: owner, body: { role: 'member' } });
    expect(unknown.status).toBe(404);
    const k = await teamKey(team);
    const del = await call(env.app.url, `${tenantPath()}/teams/${team}`, { method: 'DELETE', session: owner });
    expect([del.status, del.body.error.code]).toEqual([409, 'team_has_keys']);
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}`, { session: owner })).body.name).toBe('Legal');
    await s().identity.keys.revoke(env.tenant.ctx, k.id);
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}`, { method: 'DELETE', session: owner })).status).toBe(204);
    expect((await call(env.app.url, `${tenantPath()}/teams/${team}`, { session: owner })).status).toBe(404);
  });

  it('SCIM groups → teams: members of the group whose displayName is the team’s IdP group are its members (source scim), following every change; manual memberships stay', async () => {
    const T = await scimTenant(env.app, 'scimteams');
    const team = await s().teams.create(T.ctx, { name: 'Data', idp_group: 'Data Science' });
    const members = async () => (await s().teams.members(T.ctx, team.id)).map((m) => `${m.email}:${m.source}`).sort();
    const ana = (await T.client('POST', '/Users', { userName: `ana@${T.domain}` })).body.id as string;
    const bo = (await T.client('POST', '/Users', { userName: `bo@${T.domain}` })).body.id as string;
    await s().teams.setMember(T.ctx, team.id, T.users.member!.id, 'member'); // by hand
    const group = (await T.client('POST', '/Groups', { displayName: 'data science', members: [{ value: ana }, { value: bo }] })).body.id as string;
    expect(await members()).toEqual([`ana@${T.domain}:scim`, `bo@${T.domain}:scim`, 'member@scimteams.test:manual']);
    // Okta's shape: remove a member by filter.
    const r = await T.client('PATCH', `/Groups/${group}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'remove', path: `members[value eq "${bo}"]` }] });
    expect(r.status).toBe(200);
    expect(await members()).toEqual([`ana@${T.domain}:scim`, 'member@scimteams.test:manual']);
    // ana's calls now count against the team (her first team).
    expect((await s().teams.resolve(T.tenant.id, ana, undefined))?.id).toBe(team.id);
    expect(await s().teams.resolve(T.tenant.id, bo, undefined)).toBeUndefined();
    expect((await T.client('DELETE', `/Groups/${group}`)).status).toBe(204);
    expect(await members()).toEqual(['member@scimteams.test:manual']);
  });

  it('near the team limit every call is exact: a 30/min team admits exactly 30 of 40', async () => {
    await nextMonth();
    const team = await newTeam({ name: 'Rate', limits: { requests_per_minute: 30 } });
    const k = await teamKey(team);
    const results = await Promise.all(Array.from({ length: 40 }, () => chat(k.client).then(() => 'ok', (e: APIError) => `${e.status}:${e.code}:${(e.error as { level?: string })?.level}`)));
    expect(results.filter((r) => r === 'ok')).toHaveLength(30);
    expect(results.filter((r) => r !== 'ok')).toEqual(Array(10).fill('429:rate_limit_exceeded:team'));
  });
});
