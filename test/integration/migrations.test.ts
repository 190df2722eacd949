import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { loadMigrations, migrate, migrationStatus, SchemaTooNewError } from '../../server/db/migrator.js';
import { testConfig, tempDir } from '../helpers/app.js';
import { nodeArgs } from '../helpers/compiled.js';
import pino from 'pino';

const run = promisify(execFile);

function freshDb() {
  return openDatabase(path.join(tempDir(), 'enclave.db'));
}

/** A migrations dir in drizzle-kit's layout with `n` migrations that each take some work. */
function fixtureMigrations(n: number): string {
  const dir = tempDir('enclave-mig-');
  mkdirSync(path.join(dir, 'meta'));
  const entries = [];
  for (let i = 0; i < n; i++) {
    const tag = `000${i}_step${i}`;
    entries.push({ idx: i, version: '6', when: 1700000000000 + i, tag, breakpoints: true });
    writeFileSync(
      path.join(dir, `${tag}.sql`),
      `CREATE TABLE t${i} (id INTEGER PRIMARY KEY, v TEXT);\n--> statement-breakpoint\n` +
        `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) INSERT INTO t${i} (v) SELECT hex(randomblob(16)) FROM c;`,
    );
  }
  writeFileSync(path.join(dir, 'meta', '_journal.json'), JSON.stringify({ version: '7', dialect: 'sqlite', entries }));
  return dir;
}

describe('migrations', () => {
  it('apply on a fresh database, then a re-run does nothing', () => {
    const db = freshDb();
    const first = migrate(db.$client, { appVersion: 'test' });
    expect(first.applied).toEqual(loadMigrations().map((m) => m.tag));
    expect(first.status.pending).toEqual([]);
    const tables = db.$client.prepare("SELECT name FROM sqlite_master WHERE type='table'").all() as { name: string }[];
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['settings', 'tenants', 'tenant_settings', 'schema_migrations']));
    const second = migrate(db.$client, { appVersion: 'test' });
    expect(second.applied).toEqual([]);
    db.$client.close();
  });

  it('a dry run lists pending migrations and changes nothing', () => {
    const db = freshDb();
    const dry = migrate(db.$client, { dryRun: true });
    expect(dry.applied).toEqual([]);
    expect(dry.status.pending.length).toBe(loadMigrations().length);
    expect(db.$client.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type='table'").get()).toEqual({ n: 0 });
    db.$client.close();
  });

  it('refuses a database that is newer than the code and names what it needs', async () => {
    const config = testConfig();
    const db = openDatabase(databaseFile(config.dataDir));
    migrate(db.$client, { appVersion: 'test' });
    db.$client
      .prepare('INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES (999, ?, ?, 0, ?)')
      .run('0999_from_the_future', 'x', '9.9.9');
    expect(() => migrate(db.$client)).toThrow(SchemaTooNewError);
    const head = loadMigrations().at(-1)!.tag;
    expect(() => migrate(db.$client)).toThrow(`has migration 0999_from_the_future but this version only knows up to ${head}`);
    expect(migrationStatus(db.$client).unknown).toEqual(['0999_from_the_future']);
    db.$client.close();
    await expect(createServices(config, { log: pino({ level: 'silent' }) })).rejects.toThrow(SchemaTooNewError);
  });

  it('refuses a released migration that was edited after it was applied', () => {
    const dir = fixtureMigrations(1);
    const db = freshDb();
    migrate(db.$client, { migrations: loadMigrations(dir) });
    writeFileSync(path.join(dir, '0000_step0.sql'), 'CREATE TABLE t0 (id INTEGER);');
    expect(migrationStatus(db.$client, loadMigrations(dir)).changed).toEqual(['0000_step0']);
    expect(() => migrate(db.$client, { migrations: loadMigrations(dir) })).toThrow(/was changed after it was applied/);
    db.$client.close();
  });

  it('two processes migrating the same file at once apply each migration exactly once', async () => {
    const dir = fixtureMigrations(4);
    const file = path.join(tempDir(), 'enclave.db');
    const child = () => run(process.execPath, [...nodeArgs('test/fixtures/migrate-child.ts'), file, dir], { cwd: process.cwd() });
    const [a, b] = await Promise.all([child(), child()]);
    const appliedA = JSON.parse(a.stdout) as string[];
    const appliedB = JSON.parse(b.stdout) as string[];
    expect([...appliedA, ...appliedB].sort()).toEqual(['0000_step0', '0001_step1', '0002_step2', '0003_step3']);
    const db = openDatabase(file);
    const rows = db.$client.prepare('SELECT tag FROM schema_migrations ORDER BY idx').all();
    expect(rows).toHaveLength(4);
    for (let i = 0; i < 4; i++) expect(db.$client.prepare(`SELECT count(*) AS n FROM t${i}`).get()).toEqual({ n: 20000 });
    db.$client.close();
  });
});
