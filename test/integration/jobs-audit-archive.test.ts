import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { sql } from 'drizzle-orm';
import { ARCHIVE_DIR, archiveAudit, archiveFiles, verifyArchive } from '../../server/jobs/audit-archive.js';
import { workerSchedules } from '../../server/jobs/runtime.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { ManualClock, sys } from '../helpers/identity.js';
import { rawRows } from '../helpers/stores.js';

const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2030, 0, 1));
let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted, clock, env: { ENCLAVE_AUDIT_ARCHIVE_DAYS: '30' } });
});
afterAll(async () => app?.close());

const count = async (): Promise<number> => Number((await rawRows(app.services.store, sql`SELECT COUNT(*) AS n FROM audit_log`))[0]!.n);
const record = async (n: number, tag: string): Promise<void> => {
  for (let i = 0; i < n; i++) await app.services.identity.audit.record(sys(app.services), { action: 'test.event', tenantId: null, details: { tag, i } });
};

describe('audit archive (export only)', () => {
  it('the daily schedule exists when ENCLAVE_AUDIT_ARCHIVE_DAYS is set and exports entries past it; the database chain stays verifiable', async () => {
    const s = app.services;
    const dataDir = s.config.dataDir;
    await record(5, 'old');
    const oldCount = await count();
    clock.advance(40 * DAY);
    await record(3, 'recent');

    const schedule = workerSchedules(s).find((x) => x.id === 'audit-archive');
    expect(schedule?.every).toBe(DAY);
    const out = (await schedule!.run({} as never, {} as never)) as { archived: number; through: number; files: string[] };
    expect(out.archived).toBe(oldCount);
    expect(out.through).toBe(oldCount);
    expect(out.files).toHaveLength(1);
    expect(path.basename(out.files[0]!)).toBe(`audit-${'1'.padStart(12, '0')}-${String(oldCount).padStart(12, '0')}.jsonl`);
    expect(statSync(out.files[0]!).mode & 0o777).toBe(0o600);
    const lines = readFileSync(out.files[0]!, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: oldCount }, (_, i) => i + 1));
    expect(lines[0]).toMatchObject({ seq: 1, prev_hash: '0'.repeat(64) });
    expect(lines.at(-1)).toMatchObject({ action: 'test.event', details: JSON.stringify({ tag: 'old', i: 4 }) });

    // Nothing was deleted: the database chain verifies as before.
    expect(await count()).toBe(oldCount + 3);
    expect(await s.identity.audit.verify()).toMatchObject({ ok: true, checked: oldCount + 3 });
    expect(await verifyArchive(dataDir, s.store)).toEqual({ ok: true, entries: oldCount, through: oldCount });

    // Idempotent: a second run the same day exports nothing.
    expect(await archiveAudit(s.store, dataDir, clock.now() - 30 * DAY)).toEqual({ archived: 0, files: [], through: oldCount });

    // Later runs continue the chain in a new file.
    clock.advance(40 * DAY);
    const next = (await schedule!.run({} as never, {} as never)) as { archived: number; through: number };
    expect(next).toMatchObject({ archived: 3, through: oldCount + 3 });
    expect(archiveFiles(dataDir)).toHaveLength(2);
    expect(await verifyArchive(dataDir, s.store)).toEqual({ ok: true, entries: oldCount + 3, through: oldCount + 3 });
    expect((await s.identity.audit.verify()).ok).toBe(true);
  });

  it('verifyArchive names an edited archived entry; an archive from another database stops the export', async () => {
    const s = app.services;
    const dataDir = s.config.dataDir;
    const [first] = archiveFiles(dataDir);
    const original = readFileSync(first!.file, 'utf8');
    const lines = original.trimEnd().split('\n');
    const e = JSON.parse(lines[1]!);
    e.details = JSON.stringify({ tampered: true });
    lines[1] = JSON.stringify(e);
    writeFileSync(first!.file, lines.join('\n') + '\n');
    const r = await verifyArchive(dataDir, s.store);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.problem).toMatch(/entry 2: its content does not match its hash/);
    writeFileSync(first!.file, original);
    expect((await verifyArchive(dataDir, s.store)).ok).toBe(true);

    // The newest file's tail is not this database's entry: refuse rather than fork the chain.
    const last = archiveFiles(dataDir).at(-1)!;
    const tail = readFileSync(last.file, 'utf8');
    const tl = tail.trimEnd().split('\n');
    const x = JSON.parse(tl.at(-1)!);
    x.hash = 'f'.repeat(64);
    tl[tl.length - 1] = JSON.stringify(x);
    writeFileSync(last.file, tl.join('\n') + '\n');
    await expect(archiveAudit(s.store, dataDir, clock.now())).rejects.toThrow(/audit_archive_mismatch/);
    writeFileSync(last.file, tail);
    expect(path.basename(path.dirname(last.file))).toBe(ARCHIVE_DIR);
  });
});
