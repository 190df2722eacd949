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
import { TENANT_OWNED, type tenantSettings } from '../../server/db/schema.js';
import { testConfig } from '../helpers/app.js';

let s: Services;
let a: RequestContext;
let b: RequestContext;
let none: RequestContext;

async function tenant(slug: string): Promise<RequestContext> {
  const id = newId('ten');
  await s.store.run(s.store.q.insert(s.store.t.tenants).values({ id, slug, name: slug, createdAt: 0, updatedAt: 0 }));
  return createContext({ requestId: 'req_test', log: s.log, clock: systemClock, tenant: { id, slug } });
}

beforeAll(async () => {
  s = await createServices(testConfig(), { log: pino({ level: 'silent' }) });
  a = await tenant('alpha');
  b = await tenant('beta');
  none = createContext({ requestId: 'req_none', log: s.log, clock: systemClock });
  for (const [ctx, v] of [[a, 'A'], [b, 'B']] as const) {
    await s.tenantStore.tenantSettings.insert(ctx, { key: 'theme', value: JSON.stringify(v), updatedAt: 1 });
    await s.tenantStore.tenantSettings.insert(ctx, { key: `only-${v}`, value: '1', updatedAt: 1 });
  }
});
afterAll(() => s.close());

describe('tenant-scoped data access', () => {
  const settings = () => s.tenantStore.tenantSettings;
  const keyIs = (k: string) => (t: typeof tenantSettings) => eq(t.key, k);

  it('lists, gets and counts only the context tenant rows', async () => {
    const rows = await settings().list(a);
    expect(rows.map((r) => r.key).sort()).toEqual(['only-A', 'theme']);
    expect(rows.every((r) => r.tenantId === a.tenant!.id)).toBe(true);
    expect(await settings().get(a, keyIs('only-B'))).toBeUndefined();
    expect((await settings().get(b, keyIs('theme')))?.value).toBe('"B"');
    expect(await settings().count(a)).toBe(2);
  });

  it('cannot update or delete another tenant row, even by its exact key', async () => {
    expect(await settings().update(a, keyIs('only-B'), { value: '"hacked"' })).toBe(0);
    expect(await settings().delete(a, keyIs('only-B'))).toBe(0);
    expect((await settings().get(b, keyIs('only-B')))?.value).toBe('1');
    // Updating the shared key name in A touches only A's row.
    expect(await settings().update(a, keyIs('theme'), { value: '"dark"' })).toBe(1);
    expect((await settings().get(b, keyIs('theme')))?.value).toBe('"B"');
  });

  it('ignores a tenantId smuggled into inserts, upserts and patches', async () => {
    // Into a tenant of its own: the rows it adds must not change what the other tests count in A.
    const c = await tenant('gamma');
    const smuggled = { key: 'smuggle', value: '1', updatedAt: 1, tenantId: b.tenant!.id } as unknown as {
      key: string;
      value: string;
      updatedAt: number;
    };
    const row = await settings().insert(c, smuggled);
    expect(row.tenantId).toBe(c.tenant!.id);
    const up = await settings().upsert(c, smuggled, (t) => [t.key], { value: '2', tenantId: b.tenant!.id } as never);
    expect(up.tenantId).toBe(c.tenant!.id);
    expect(up.value).toBe('2');
    await settings().update(c, keyIs('smuggle'), { tenantId: b.tenant!.id } as never);
    expect(await settings().get(b, keyIs('smuggle'))).toBeUndefined();
  });

  it('refuses every operation without a tenant in the context', async () => {
    const ops: (() => Promise<unknown>)[] = [
      () => settings().list(none),
      () => settings().get(none, keyIs('theme')),
      () => settings().insert(none, { key: 'x', value: '1', updatedAt: 1 }),
      () => settings().upsert(none, { key: 'x', value: '1', updatedAt: 1 }, (t) => [t.key], { value: '2' }),
      () => settings().update(none, keyIs('theme'), { value: '1' }),
      () => settings().delete(none, keyIs('theme')),
      () => settings().count(none),
    ];
    for (const op of ops) {
      // Refused before any SQL: thrown synchronously or as a rejection, never a row of any tenant.
      const err = await Promise.resolve().then(op).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as Error).message).toMatch(/needs a tenant/);
    }
  });

  it('every table with a tenant_id column is registered as tenant-owned', () => {
    const tables = s.sqlite!.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
    const withTenant = tables
      .filter((t) => (s.sqlite!.$client.prepare(`PRAGMA table_info("${t.name}")`).all() as { name: string }[]).some((c) => c.name === 'tenant_id'))
      .map((t) => t.name)
      .sort();
    const registered = Object.values(TENANT_OWNED)
      .map((t) => (t as unknown as Record<symbol, string>)[Symbol.for('drizzle:Name')])
      .sort();
    expect(withTenant).toEqual(registered);
    for (const name of withTenant) {
      const cols = s.sqlite!.$client.prepare(`PRAGMA table_info("${name}")`).all() as { name: string; notnull: number }[];
      expect(cols.find((c) => c.name === 'tenant_id')?.notnull, `${name}.tenant_id must be NOT NULL`).toBe(1);
    }
  });

  it('no code outside server/db imports a tenant-owned table directly, or names one in raw SQL', () => {
    const names = Object.keys(TENANT_OWNED);
    const sqlNames = Object.values(TENANT_OWNED).map((t) => getTableName(t));
    // Raw SQL on a tenant table: FROM/INTO/UPDATE/JOIN <table> in a prepare()/exec() string.
    const rawSql = new RegExp(`\\b(?:FROM|INTO|UPDATE|JOIN)\\s+"?(${sqlNames.join('|')})\\b`, 'gi');
    // Reviewed exceptions, each with why it cannot leak across tenants.
    const allowed = new Map([
      ['server/keys/growth.ts: api_keys', 'counts live keys for the licence growth check (per tenant_id, or all); reads no row'],
      ['server/keys/growth.ts: t.apiKeys', 'the same count through the store'],
      ['license/service.ts: t.apiKeys', "the licence's usage: counts live keys of all tenants (a number, no row)"],
    ]);
    const offenders: string[] = [];
    let files = 0;
    let schemaImports = 0;
    let tableRefs = 0;
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
          // The async store hands out every table as `store.t.<name>` (or `const { t } = store`):
          // a tenant-owned one reached that way outside server/db would skip the tenant filter.
          for (const m of text.matchAll(new RegExp(`\\bt\\.(${names.join('|')})\\b`, 'g'))) {
            const hit = `${p}: t.${m[1]}`;
            if (allowed.has(hit)) continue;
            tableRefs++;
            if (!offenders.includes(hit)) offenders.push(hit);
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
    // Most code now reaches tables through the store (store.t); a few files still import row types.
    expect(schemaImports, 'the import pattern matches the code base').toBeGreaterThan(0);
    expect(offenders).toEqual([]);
    expect(tableRefs, 'no store.t.<tenant-owned table> outside server/db').toBe(0);
  });

  it('the store-table rule above can fail: a reference in a string of the same shape is caught', () => {
    const names = Object.keys(TENANT_OWNED);
    const sample = 'const rows = await store.all(store.q.select().from(store.t.conversations));';
    expect([...sample.matchAll(new RegExp(`\\bt\\.(${names.join('|')})\\b`, 'g'))].map((m) => m[1])).toEqual(['conversations']);
  });
});
