import type { Services } from '../../server/app.js';
import type { Clock } from '../../server/clock.js';
import type { Role } from '../../server/access/permissions.js';
import { systemContext } from '../../server/identity/index.js';
import type { RequestContext } from '../../server/context.js';

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(public t = Date.UTC(2030, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export const PASSWORD = 'correct horse battery staple';

export interface Session {
  readonly cookie: string;
  readonly csrf: string;
}

export interface Call {
  method?: string;
  body?: unknown;
  session?: Session;
  /** Send the session cookie but not the CSRF header. */
  noCsrf?: boolean;
  key?: string;
  headers?: Record<string, string>;
}

export async function call(url: string, path: string, c: Call = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...c.headers };
  if (c.body !== undefined) headers['content-type'] = 'application/json';
  if (c.session) {
    headers.cookie = c.session.cookie;
    if (!c.noCsrf) headers['x-csrf-token'] = c.session.csrf;
  }
  if (c.key) headers.authorization = `Bearer ${c.key}`;
  const res = await fetch(url + path, { method: c.method ?? 'GET', headers, ...(c.body !== undefined ? { body: JSON.stringify(c.body) } : {}) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, headers: res.headers };
}

export async function login(url: string, email: string, password = PASSWORD, extra: { tenant?: string; headers?: Record<string, string> } = {}): Promise<Session & { body: any; status: number }> {
  const res = await fetch(url + '/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...extra.headers },
    body: JSON.stringify({ email, password, ...(extra.tenant ? { tenant: extra.tenant } : {}) }),
  });
  const body = (await res.json()) as any;
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0] ?? '';
  return { status: res.status, body, cookie, csrf: body.csrf_token };
}

export function sys(s: Services): RequestContext {
  return systemContext(s.log, s.clock, 'test');
}

/** Creates a tenant with members of the given roles (password PASSWORD); returns ids. */
export async function seedTenant(s: Services, slug: string, roles: Role[] = ['owner', 'admin', 'member', 'viewer']) {
  const ctx = sys(s);
  const tenant = await s.identity.tenants.create(ctx, { slug, name: slug.toUpperCase() });
  const tctx = await s.identity.tenants.scopeTo(ctx, tenant.id);
  const users: Record<string, { id: string; email: string }> = {};
  for (const role of roles) {
    const email = `${role}@${slug}.test`;
    const u = await s.identity.users.create(ctx, { email, password: PASSWORD });
    await s.identity.users.grant(tctx, u.id, role);
    users[role] = { id: u.id, email };
  }
  return { tenant, ctx: tctx, users };
}
