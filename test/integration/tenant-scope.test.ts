import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { eq, getTableName } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices, type Services } from '../../server/app.js';
import { systemClock } from '../../server/clock.js';
import { createContext, type RequestContext } from '../../server/context.js';
import { AppError } from '../../server/errors.js';
import { newId } from '../../server/ids.js';
import { TENANT_OWNED, tenantSettings, tenants } from '../../server/db/schema.js';
import { testConfig } from '../helpers/app.js';

let s: Services;
let a: RequestContext;
let b: RequestContext;
let none: RequestContext;

function tenant(slug: string): RequestContext {
  const id = newId('ten');
  s.db.insert(tenants).values({ id, slug, name: slug, createdAt: 0, updatedAt: 0 }).run();
  return createContext({ requestId: 'req_test', log: s.log, clock: systemClock, tenant: { id, slug } });
}

beforeAll(async () => {
  s = await createServices(testConfig(), { log: pino({ level: 'silent' }) });
  a = tenant('alpha');
  b = tenant('beta');
  none = createContext({ requestId: 'req_none', log: s.log, clock: systemClock });
  for (const [ctx, v] of [[a, 'A'], [b, 'B']] as const) {
    s.data.tenantSettings.insert(ctx, { key: 'theme', value: JSON.stringify(v), updatedAt: 1 });
    s.data.tenantSettings.insert(ctx, { key: `only-${v}`, value: '1', updatedAt: 1 });
  }
});
afterAll(() => s.close());

describe('tenant-scoped data access', () => {
  it('lists, gets and counts only the context tenant rows', () => {
    const rows = s.data.tenantSettings.list(a);
    expect(rows.map((r) => r.key).sort()).toEqual(['only-A', 'theme']);
    expect(rows.every((r) => r.tenantId === a.tenant!.id)).toBe(true);
    expect(s.data.tenantSettings.get(a, eq(tenantSettings.key, 'only-B'))).toBeUndefined();
    expect(s.data.tenantSettings.get(b, eq(tenantSettings.key, 'theme'))?.value).toBe('"B"');
    expect(s.data.tenantSettings.count(a)).toBe(2);
  });

  it('cannot update or delete another tenant row, even by its exact key', () => {
    expect(s.data.tenantSettings.update(a, eq(tenantSettings.key, 'only-B'), { value: '"hacked"' })).toBe(0);
    expect(s.data.tenantSettings.delete(a, eq(tenantSettings.key, 'only-B'))).toBe(0);
    expect(s.data.tenantSettings.get(b, eq(tenantSettings.key, 'only-B'))?.value).toBe('1');
    // Updating the shared key name in A touches only A's row.
    expect(s.data.tenantSettings.update(a, eq(tenantSettings.key, 'theme'), { value: '"dark"' })).toBe(1);
    expect(s.data.tenantSettings.get(b, eq(tenantSettings.key, 'theme'))?.value).toBe('"B"');
  });

  it('ignores a tenantId smuggled into inserts, upserts and patches', () => {
    // Into a tenant of its own: the rows it adds must not change what the other tests count in A.
    const c = tenant('gamma');
    const smuggled = { key: 'smuggle', value: '1', updatedAt: 1, tenantId: b.tenant!.id } as unknown as {
      key: string;
      value: string;
      updatedAt: number;
    };
    const row = s.data.tenantSettings.insert(c, smuggled);
    expect(row.tenantId).toBe(c.tenant!.id);
    const up = s.data.tenantSettings.upsert(c, smuggled, [tenantSettings.key], { value: '2', tenantId: b.tenant!.id } as never);
    expect(up.tenantId).toBe(c.tenant!.id);
    expect(up.value).toBe('2');
    s.data.tenantSettings.update(c, eq(tenantSettings.key, 'smuggle'), { tenantId: b.tenant!.id } as never);
    expect(s.data.tenantSettings.get(b, eq(tenantSettings.key, 'smuggle'))).toBeUndefined();
  });

  it('refuses every operation without a tenant in the context', () => {
    const ops = [
      () => s.data.tenantSettings.list(none),
      () => s.data.tenantSettings.get(none, eq(tenantSettings.key, 'theme')),
      () => s.data.tenantSettings.insert(none, { key: 'x', value: '1', updatedAt: 1 }),
      () => s.data.tenantSettings.upsert(none, { key: 'x', value: '1', updatedAt: 1 }, [tenantSettings.key], { value: '2' }),
      () => s.data.tenantSettings.update(none, eq(tenantSettings.key, 'theme'), { value: '1' }),
      () => s.data.tenantSettings.delete(none, eq(tenantSettings.key, 'theme')),
      () => s.data.tenantSettings.count(none),
    ];
    for (const op of ops) {
      expect(op).toThrow(AppError);
      expect(op).toThrow(/needs a tenant/);
    }
  });

  it('every table with a tenant_id column is registered as tenant-owned', () => {
    const tables = s.db.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
    const withTenant = tables
      .filter((t) => (s.db.$client.prepare(`PRAGMA table_info("${t.name}")`).all() as { name: string }[]).some((c) => c.name === 'tenant_id'))
      .map((t) => t.name)
      .sort();
    const registered = Object.values(TENANT_OWNED)
      .map((t) => (t as unknown as Record<symbol, string>)[Symbol.for('drizzle:Name')])
      .sort();
    expect(withTenant).toEqual(registered);
    for (const name of withTenant) {
      const cols = s.db.$client.prepare(`PRAGMA table_info("${name}")`).all() as { name: string; notnull: number }[];
      expect(cols.find((c) => c.name === 'tenant_id')?.notnull, `${name}.tenant_id must be NOT NULL`).toBe(1);
    }
  });

  it('no code outside server/db imports a tenant-owned table directly, or names one in raw SQL', () => {
    const names = Object.keys(TENANT_OWNED);
    const sqlNames = Object.values(TENANT_OWNED).map((t) => getTableName(t));
    // Raw SQL on a tenant table: FROM/INTO/UPDATE/JOIN <table> in a prepare()/exec() string.
    const rawSql = new RegExp(`\\b(?:FROM|INTO|UPDATE|JOIN)\\s+"?(${sqlNames.join('|')})\\b`, 'gi');
    // Reviewed exceptions, each with why it cannot leak across tenants.
    const allowed = new Map([['server/keys/growth.ts: api_keys', 'counts live keys for the licence growth check (per tenant_id, or all); reads no row']]);
    const offenders: string[] = [];
    let files = 0;
    let schemaImports = 0;
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir)) {
        const p = path.join(dir, e);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !p.startsWith(path.join('server', 'db') + path.sep)) {
          files++;
          const text = readFileSync(p, 'utf8');
          for (const imp of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'[^']*db\/schema\.js'/g)) {
            schemaImports++;
            for (const n of names) if (new RegExp(`\\b${n}\\b`).test(imp[1]!)) offenders.push(`${p}: ${n}`);
          }
          for (const q of text.matchAll(/\.(?:prepare|exec)\(\s*(['`"])([\s\S]*?)\1/g)) {
            for (const t of q[2]!.matchAll(rawSql)) {
              const hit = `${p}: ${t[1]}`;
              if (!allowed.has(hit) && !offenders.includes(hit)) offenders.push(hit);
            }
          }
        }
      }
    };
    // Every root must exist: a scan that read nothing would pass.
    for (const root of ['server', 'cli', 'license']) walk(root);
    expect(files).toBeGreaterThan(100);
    expect(schemaImports, 'the import pattern matches the code base').toBeGreaterThan(5);
    expect(offenders).toEqual([]);
  });
});
