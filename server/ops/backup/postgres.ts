import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { getTableColumns, sql, type Column } from 'drizzle-orm';
import pino from 'pino';
import { LicenseService } from '../../../license/service.js';
import { ChainWalker, type AuditRow, type VerifyResult as ChainResult } from '../../audit/log.js';
import { systemClock } from '../../clock.js';
import { describeConfig } from '../../config/load.js';
import { resolveMasterKey } from '../../config/master-key.js';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import type { SecretBox } from '../../config/secret-box.js';
import type { Config } from '../../config/settings.js';
import { databaseTarget, redactDatabaseUrl } from '../../db/dialect.js';
import { checkPostgres, openPostgres, type PgDb } from '../../db/pg/connection.js';
import { assertPgSchemaCurrent, loadPgMigrations, migratePostgres, pgMigrationStatus } from '../../db/pg/migrator.js';
import { postgresStore, type Store } from '../../db/store.js';
import { SECRET_COLUMNS, secretAad } from '../../db/secret-columns.js';
import { SELFTEST_KEY } from '../../config/runtime-settings.js';
import { secretPage } from '../../config/rotate-master-key.js';
import { APP_VERSION } from '../../paths.js';
import type { TarEntry } from '../archive/tar.js';
import { copyOrder, nonEmptyTables, SEEDED, verifyPgChain, type TablePair } from '../db-migrate/to-postgres.js';
import { writeArchive } from './archive.js';
import { BackupError, MANIFEST_FORMAT, MANIFEST_VERSION, prune, SKIPPED_PATHS, stageFiles, type BackupManifest, type CreateBackupOptions, type CreateBackupResult, type ManifestPart } from './create.js';
import { sealer } from './envelope.js';
import { BACKUP_RECORD_KEYS, type BackupRecord } from './records.js';
import { signingBox, storeInstallation, storeSigner, type SignerTrust } from './signature.js';
import type { SecretCheckResult } from './secrets.js';
import type { VerifyCheck } from './verify.js';

/**
 * Backups of an Enclave on PostgreSQL (issue 22): a logical backup of Enclave's own tables in
 * the same signed, optionally encrypted archive as the SQLite backups.
 *
 * Why logical rows and not pg_dump: the archive must be verifiable and restorable by Enclave
 * alone (no pg_dump/pg_restore of the right major version on the host, no superuser), carry
 * the installation's signature over every part, and restore only Enclave's tables into an
 * empty database at the same migration level. The customer's own PITR (RDS, Cloud SQL,
 * Patroni + pgBackRest) remains the answer for point-in-time recovery; this is the portable,
 * signed copy an operator can verify offline.
 *
 * Create: one REPEATABLE READ READ ONLY transaction (one snapshot while replicas keep
 * writing); every table (foreign-key order, copyOrder) is read through a server-side cursor
 * (linear in the table's size, bounded memory) and written as `db/postgres/<table>.ndjson`: one
 * JSON object per row, the TypeScript values of the shared row types (times in ms, flags as
 * booleans, JSON columns as their text) — the values the repositories read on either dialect.
 * The manifest records the row count of every table, the migration head and the PostgreSQL
 * version, and is signed by the installation key kept in the database (signature.ts).
 *
 * Verify needs no database: decrypt, signature, every part's size and SHA-256, every table
 * part parses and has the manifest's row count, and the audit chain recomputes over the
 * audit_log rows up to audit_head (the same ChainWalker as `enclave audit verify`).
 *
 * Restore: only into a database that has no Enclave rows (the migrations' seeded rows do not
 * count) and is at the backup's migration level (an empty database without Enclave's schema is
 * migrated first); tables are inserted in foreign-key order in ONE transaction, row counts and
 * the audit chain are checked on the restored rows before it commits (otherwise nothing is
 * written), then every stored secret is decrypted with the configured master key and the
 * licence re-checked, as after an SQLite restore.
 */

export const PG_PARTS_DIR = 'db/postgres';
const FETCH = 1000;

/** What a PostgreSQL backup's manifest says about its database. */
export interface PostgresPart {
  readonly dialect: 'postgres';
  /** The server's version at backup time (SHOW server_version). */
  readonly serverVersion: string;
  /** `rows-ndjson`: one table per part, one JSON row per line, tables in `order` (foreign keys). */
  readonly format: 'rows-ndjson';
  readonly order: readonly string[];
}

function partName(table: string): string {
  return `${PG_PARTS_DIR}/${table}.ndjson`;
}

function urlOf(config: Config): string {
  const t = databaseTarget(config);
  if (t.dialect !== 'postgres') throw new BackupError('not a PostgreSQL installation (ENCLAVE_DATABASE_URL is not set)');
  return t.url;
}

function openPg(config: Config, applicationName: string): PgDb {
  // No statement timeout: a large table's cursor or restore insert may take longer than the
  // server's 30 s default, and this is an operator's command, not a request.
  return openPostgres({ url: urlOf(config), poolMax: 2, caFile: config.databaseCaFile, statementTimeoutMs: 0, applicationName });
}

/** A row as the driver returned it (column names, driver values) → the row type's values (property names, mapped). */
function rowMapper(p: TablePair): (raw: Record<string, unknown>) => Record<string, unknown> {
  const cols = Object.entries(getTableColumns(p.pg)) as [string, Column][];
  return (raw) => {
    const row: Record<string, unknown> = {};
    for (const [key, col] of cols) {
      const v = raw[col.name];
      row[key] = v === null || v === undefined ? null : col.mapFromDriverValue(v);
    }
    return row;
  };
}

interface Snapshot {
  readonly tables: Record<string, number>;
  readonly audit: ChainResult;
  readonly installationId: string | null;
  readonly license?: string;
}

/** Every table into `<dir>/<table>.ndjson` from one snapshot; the audit chain checked on the way. */
async function dumpTables(pg: PgDb, dir: string, onTable?: (done: number, total: number) => void): Promise<Snapshot> {
  const pairs = copyOrder();
  const tables: Record<string, number> = {};
  let audit: ChainResult = { ok: true, checked: 0, head: null };
  let installationId: string | null = null;
  let license: string | undefined;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await pg.transaction(
    async (tx) => {
      const walker = new ChainWalker();
      let head: { seq: number; hash: string } | undefined;
      for (const [i, p] of pairs.entries()) {
        const map = rowMapper(p);
        const base = tx.select().from(p.pg);
        // The audit chain is walked in seq order; other tables in the order the heap has them.
        const q = (p.name === 'audit_log' ? base.orderBy(sql`seq`) : base).toSQL();
        if (q.params.length) throw new Error(`internal: the select of ${p.name} has parameters`);
        await tx.execute(sql`DECLARE enclave_backup NO SCROLL CURSOR FOR ${sql.raw(q.sql)}`);
        const fd = openSync(path.join(dir, `${p.name}.ndjson`), 'wx', 0o600);
        let n = 0;
        try {
          for (;;) {
            const page = await tx.execute<Record<string, unknown>>(sql.raw(`FETCH FORWARD ${FETCH} FROM enclave_backup`));
            let text = '';
            for (const raw of page.rows) {
              const row = map(raw);
              text += `${JSON.stringify(row)}\n`;
              if (p.name === 'audit_log' && audit.ok) audit = walker.next(row as unknown as AuditRow) ?? audit;
              if (p.name === 'audit_head' && row.id === 1) head = { seq: Number(row.seq), hash: String(row.hash) };
              if (p.name === 'settings' && row.secret === false) {
                if (row.key === 'license.installation') installationId = (JSON.parse(String(row.value)) as { id?: string }).id ?? null;
                if (row.key === 'license.current') license = (JSON.parse(String(row.value)) as { text?: string }).text;
              }
            }
            if (text) writeSync(fd, text);
            n += page.rows.length;
            if (page.rows.length < FETCH) break;
          }
        } finally {
          closeSync(fd);
        }
        await tx.execute(sql.raw('CLOSE enclave_backup'));
        tables[p.name] = n;
        onTable?.(i + 1, pairs.length);
      }
      if (audit.ok) audit = walker.finish(head);
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
  return { tables, audit, installationId, ...(license ? { license } : {}) };
}

/** `enclave backup create` on PostgreSQL (see the module comment). */
export async function createPostgresBackup(config: Config, opts: CreateBackupOptions, out: { file: string; generated: boolean }): Promise<CreateBackupResult> {
  const started = Date.now();
  const now = opts.now ?? Date.now;
  const at = new Date(now());
  const { file, generated } = out;
  const outDir = path.dirname(file);
  const url = urlOf(config);
  const pg = openPg(config, 'enclave backup');
  const staging = path.join(outDir, `.enclave-backup-staging-${process.pid}`);
  try {
    let version: string;
    let head: string | null;
    try {
      ({ version } = await checkPostgres(pg.$client, url));
      head = (await assertPgSchemaCurrent(pg.$client)).databaseHead;
    } catch (e) {
      throw new BackupError((e as Error).message);
    }
    const store = postgresStore(pg);
    // The installation key first (it may be created now; the snapshot then contains it).
    let signer;
    try {
      signer = await storeSigner(store, signingBox(config));
    } catch (e) {
      throw new BackupError((e as Error).message);
    }
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    opts.onProgress?.('snapshot', 0, 1);
    const snap = await dumpTables(pg, path.join(staging, ...PG_PARTS_DIR.split('/')));
    if (!snap.audit.ok) {
      throw new BackupError(`the audit chain in the database does not verify at entry ${snap.audit.broken.seq}: ${snap.audit.broken.problem}; run enclave audit verify before backing up`);
    }
    opts.onProgress?.('snapshot', 1, 1);

    const entries: TarEntry[] = [];
    const parts: ManifestPart[] = [];
    const addFile = async (name: string, kind: ManifestPart['kind'], f: string): Promise<void> => {
      const st = statSync(f);
      parts.push({ name, kind, size: st.size, sha256: await sha256(f) });
      entries.push({ name, file: f, size: st.size, mtime: st.mtimeMs });
    };
    const addData = (name: string, kind: ManifestPart['kind'], data: Buffer): void => {
      parts.push({ name, kind, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
      entries.push({ name, data, size: data.length, mtime: at.getTime() });
    };
    const order = copyOrder().map((p) => p.name);
    for (const t of order) await addFile(partName(t), 'database', path.join(staging, ...PG_PARTS_DIR.split('/'), `${t}.ndjson`));
    addData('config/config.json', 'config', Buffer.from(JSON.stringify(describeConfig(config), null, 2) + '\n'));
    if (snap.license) addData('license/license.lic', 'license', Buffer.from(snap.license));
    // Uploaded and batch files still live under the data dir (a shared volume for replicas).
    const vanished = await stageFiles(config.dataDir, staging, addFile);

    const database: PostgresPart = { dialect: 'postgres', serverVersion: version, format: 'rows-ndjson', order };
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_VERSION,
      appVersion: APP_VERSION,
      migrationHead: head,
      codeMigrationHead: loadPgMigrations().at(-1)?.tag ?? null,
      installationId: snap.installationId ?? signer.installationId,
      createdAt: at.toISOString(),
      host: hostname(),
      // PostgreSQL checks its own pages and foreign keys; what this backup checked is the audit chain.
      integrityCheck: 'ok',
      foreignKeyViolations: 0,
      tables: snap.tables,
      parts,
      skipped: [...SKIPPED_PATHS.filter((s) => !s.path.startsWith('enclave.db')), ...vanished],
      secretsIncluded: false,
      database,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    const seal = opts.encrypt ? sealer('backup', opts.encrypt) : undefined;
    const signed = signer.sign(manifestBytes, seal?.contentKey.macKey);
    const sigBytes = Buffer.from(JSON.stringify(signed, null, 2) + '\n');
    const written = await writeArchive(
      file,
      [
        { name: 'manifest.json', data: manifestBytes, size: manifestBytes.length, mtime: at.getTime() },
        { name: 'manifest.sig', data: sigBytes, size: sigBytes.length, mtime: at.getTime() },
        ...entries,
      ],
      { ...(seal ? { sealer: seal } : {}), content: 'backup', onProgress: (d, t) => opts.onProgress?.('archive', d, t) },
    );
    const encryption = !opts.encrypt ? 'none' : 'passphrase' in opts.encrypt ? 'passphrase' : `x25519 ${opts.encrypt.recipient}`;
    const record: BackupRecord = { at: now(), file, size: written.size, sha256: written.sha256, encryption };
    let verified: CreateBackupResult['verified'];
    if (opts.verify) {
      const { verifyBackup } = await import('./verify.js');
      const keys = { ...(opts.encrypt && 'passphrase' in opts.encrypt ? { passphrase: opts.encrypt.passphrase } : {}), ...(written.contentKey ? { contentKey: written.contentKey } : {}) };
      const v = await verifyBackup(file, { keys, trust: { local: await storeInstallation(store) } });
      verified = { ok: v.ok, checks: v.checks };
      if (!v.ok) throw new BackupError(`the backup written to ${file} did not verify: ${v.checks.filter((c) => c.status === 'fail').map((c) => c.message).join('; ')}`);
    }
    const settings = new RuntimeSettings(store, signingBox(config), systemClock);
    await settings.set(BACKUP_RECORD_KEYS.lastSuccess, record);
    if (verified?.ok) await settings.set(BACKUP_RECORD_KEYS.lastVerified, { ...record, at: now() });
    const pruned = opts.keep !== undefined && generated ? prune(outDir, opts.keep, file) : [];
    return { file, size: written.size, sha256: written.sha256, manifest, encryption, pruned, durationMs: Date.now() - started, ...(verified ? { verified } : {}) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    await pg.$client.end();
  }
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The JSON rows of one table part, one at a time (a part may be larger than memory). */
async function* rowsOf(file: string): AsyncGenerator<Record<string, unknown>> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new Error(`${path.basename(file)} line ${n} is not a JSON row`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new Error(`${path.basename(file)} line ${n} is not a JSON object`);
    yield row as Record<string, unknown>;
  }
}

/**
 * The database checks of `backup verify` for a PostgreSQL backup, on the extracted parts
 * (no database needed): every table of the manifest's order has a part whose rows parse and
 * number what the manifest says; the audit chain recomputes up to the recorded head; the
 * schema is this code's (older: restore it with that release; newer: refused).
 */
export async function verifyPostgresParts(scratch: string, manifest: BackupManifest, checks: VerifyCheck[], secretsBox?: SecretBox): Promise<{ older: boolean; newer: boolean }> {
  const db = manifest.database as PostgresPart;
  const problems: string[] = [];
  const walker = new ChainWalker();
  let chain: ChainResult | undefined;
  let head: { seq: number; hash: string } | undefined;
  for (const t of db.order) {
    const f = path.join(scratch, ...partName(t).split('/'));
    if (!existsSync(f)) {
      problems.push(`table ${t} has no part`);
      continue;
    }
    let n = 0;
    try {
      for await (const row of rowsOf(f)) {
        n++;
        if (t === 'audit_log' && !chain) chain = walker.next(row as unknown as AuditRow);
        if (t === 'audit_head' && row.id === 1) head = { seq: Number(row.seq), hash: String(row.hash) };
      }
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    if (manifest.tables[t] !== n) problems.push(`${t} ${n} != ${manifest.tables[t] ?? 'missing'}`);
  }
  if (problems.length) {
    checks.push({ id: 'database', status: 'fail', message: `the table parts do not match the manifest: ${problems.join(', ')}` });
  } else {
    checks.push({ id: 'database', status: 'ok', message: `${db.order.length} tables (PostgreSQL ${db.serverVersion}, logical rows) with the row counts of the manifest` });
  }
  const audit = chain ?? walker.finish(head);
  if (audit.ok) checks.push({ id: 'audit', status: 'ok', message: `the audit chain verifies: ${audit.checked} entries up to the head` });
  else checks.push({ id: 'audit', status: 'fail', message: `the audit chain is broken at entry ${audit.broken.seq}: ${audit.broken.problem}` });

  if (secretsBox) {
    const r = await checkPartSecrets(scratch, secretsBox);
    if (r.failed.length || r.selfTest !== 'ok') {
      const first = r.failed.slice(0, 5).map((f) => `${f.table}.${f.column}:${f.id} (${f.reason})`).join('; ');
      checks.push({ id: 'secrets', status: 'fail', message: `the master key does not decrypt ${r.failed.length} of ${r.checked} stored secret(s), self-test ${r.selfTest}${first ? `: ${first}` : ''}` });
    } else {
      checks.push({ id: 'secrets', status: 'ok', message: `the master key decrypts all ${r.checked} stored secret(s)` });
    }
  }

  const tags = loadPgMigrations().map((m) => m.tag);
  const codeHead = tags.at(-1) ?? null;
  if (manifest.migrationHead === codeHead) {
    checks.push({ id: 'schema', status: 'ok', message: `schema ${manifest.migrationHead} matches this Enclave` });
    return { older: false, newer: false };
  }
  if (manifest.migrationHead && !tags.includes(manifest.migrationHead)) {
    checks.push({ id: 'schema', status: 'fail', message: `backup schema ${manifest.migrationHead} is newer than this Enclave ${APP_VERSION} (head ${codeHead}); restore it with Enclave ${manifest.appVersion} or newer` });
    return { older: false, newer: true };
  }
  // Older: the rows have the columns of that release. Restore them with the release that made
  // the backup (into an empty database), then upgrade it: the migrations move rows, not this code.
  checks.push({ id: 'schema', status: 'warn', message: `backup schema ${manifest.migrationHead} is older than ${codeHead}: restore it with Enclave ${manifest.appVersion}, then upgrade` });
  return { older: true, newer: false };
}

/**
 * checkStoredSecrets over a backup's table parts: every value of SECRET_COLUMNS decrypted with
 * `box`. The parts hold rows by property name, so each column is found through the table's
 * PostgreSQL definition; the registry's SQL conditions are the flag test (`secret`) or a
 * null test (a null is never a secret), and any other condition is refused rather than guessed.
 */
async function checkPartSecrets(scratch: string, box: SecretBox): Promise<SecretCheckResult> {
  const pairs = new Map(copyOrder().map((p) => [p.name, p]));
  let checked = 0;
  const failed: { table: string; column: string; id: string; reason: string }[] = [];
  let selfTest: SecretCheckResult['selfTest'] = 'missing';
  for (const c of SECRET_COLUMNS) {
    const p = pairs.get(c.table);
    const f = path.join(scratch, ...partName(c.table).split('/'));
    const keyOf = (column: string) => (p ? Object.entries(getTableColumns(p.pg)).find(([, col]) => (col as Column).name === column)?.[0] : undefined);
    const [valueKey, idKey] = [keyOf(c.column), keyOf(c.idColumn)];
    const flag = c.where === undefined || / IS NOT NULL$/.test(c.where) ? undefined : keyOf(c.where);
    if (!valueKey || !idKey || !existsSync(f) || (c.where !== undefined && !/ IS NOT NULL$/.test(c.where) && !flag)) {
      failed.push({ table: c.table, column: c.column, id: '*', reason: 'cannot read this column from the backup' });
      continue;
    }
    for await (const row of rowsOf(f)) {
      const v = row[valueKey];
      if (typeof v !== 'string' || (flag && row[flag] !== true)) continue;
      checked++;
      const id = String(row[idKey]);
      const isSelfTest = c.table === 'settings' && id === SELFTEST_KEY;
      try {
        const plain = box.decrypt(v, secretAad(c.table, c.column, id));
        if (isSelfTest) selfTest = plain === 'enclave-master-key-selftest' ? 'ok' : 'failed';
      } catch (e) {
        if (isSelfTest) selfTest = 'failed';
        failed.push({ table: c.table, column: c.column, id, reason: (e as Error).message });
      }
    }
  }
  return { checked, failed, selfTest };
}

/** Whom a verify/restore on PostgreSQL trusts: the installation in the database (none in an empty one) and the named ones. */
export async function postgresTrust(config: Config, extra: readonly string[] = []): Promise<SignerTrust> {
  const pg = openPg(config, 'enclave backup');
  try {
    await checkPostgres(pg.$client, urlOf(config));
    const status = await pgMigrationStatus(pg.$client);
    const local = status.databaseHead ? await storeInstallation(postgresStore(pg)).catch(() => undefined) : undefined;
    return { local, extra };
  } finally {
    await pg.$client.end();
  }
}

/** Decrypts every stored secret (SECRET_COLUMNS) with `box` through the store, reporting each one it cannot. */
export async function checkStoreSecrets(store: Store, box: SecretBox): Promise<SecretCheckResult> {
  let checked = 0;
  const failed: { table: string; column: string; id: string; reason: string }[] = [];
  let selfTest: SecretCheckResult['selfTest'] = 'missing';
  for (const c of SECRET_COLUMNS) {
    let after = '';
    for (;;) {
      const rows = await secretPage(store, c, after);
      for (const r of rows) {
        if (r.v === null) continue;
        checked++;
        const isSelfTest = c.table === 'settings' && r.id === SELFTEST_KEY;
        try {
          const plain = box.decrypt(r.v, secretAad(c.table, c.column, String(r.id)));
          if (isSelfTest) selfTest = plain === 'enclave-master-key-selftest' ? 'ok' : 'failed';
        } catch (e) {
          if (isSelfTest) selfTest = 'failed';
          failed.push({ table: c.table, column: c.column, id: String(r.id), reason: (e as Error).message });
        }
      }
      if (rows.length < 500) break;
      after = rows.at(-1)!.id;
    }
  }
  return { checked, failed, selfTest };
}

export interface PostgresRestoreResult {
  readonly tables: Record<string, number>;
  readonly audit: ChainResult;
  readonly head: string | null;
  readonly migratedEmpty: readonly string[];
  readonly secrets: SecretCheckResult | { readonly error: string };
  readonly licence: { readonly state: string; readonly problem?: { code: string; message: string } };
  readonly database: string;
}

export class PostgresRestoreRefused extends Error {
  override readonly name = 'PostgresRestoreRefused';
}

/**
 * Inserts a verified PostgreSQL backup's table parts (extracted in `scratch`) into the
 * configured database: refused unless it is empty and at the backup's migration level; one
 * transaction, counts and the audit chain checked before the commit.
 */
export async function restorePostgresParts(config: Config, scratch: string, manifest: BackupManifest, opts: { batchSize?: number } = {}): Promise<PostgresRestoreResult> {
  const url = urlOf(config);
  const pg = openPg(config, 'enclave backup restore');
  try {
    await checkPostgres(pg.$client, url);
    let status = await pgMigrationStatus(pg.$client);
    let migratedEmpty: readonly string[] = [];
    if (status.databaseHead === null) {
      // A database without Enclave's schema: give it this code's (the backup's level: verify
      // refused any other) under the migrator's lock.
      migratedEmpty = (await migratePostgres(pg.$client, { appVersion: APP_VERSION })).applied;
      status = await pgMigrationStatus(pg.$client);
    }
    if (status.databaseHead !== manifest.migrationHead || status.pending.length || status.unknown.length) {
      throw new PostgresRestoreRefused(
        `refusing to restore: the database ${redactDatabaseUrl(url)} is at schema ${status.databaseHead}${status.pending.length ? ` with ${status.pending.length} pending migration(s)` : ''}, the backup at ${manifest.migrationHead}; restore into a new, empty database`,
      );
    }
    const pairs = copyOrder();
    const byName = new Map(pairs.map((p) => [p.name, p]));
    const order = (manifest.database as PostgresPart).order;
    const unknown = order.filter((t) => !byName.has(t));
    if (unknown.length) throw new PostgresRestoreRefused(`refusing to restore: the backup has tables this version does not know (${unknown.join(', ')})`);
    const nonEmpty = await nonEmptyTables(pg, pairs);
    if (nonEmpty.length) {
      throw new PostgresRestoreRefused(`refusing to restore: the database ${redactDatabaseUrl(url)} is not empty (rows in ${nonEmpty.slice(0, 5).join(', ')}${nonEmpty.length > 5 ? ', …' : ''}); nothing was changed; restore into a new, empty database`);
    }
    const tables: Record<string, number> = {};
    let audit: ChainResult = { ok: true, checked: 0, head: null };
    await pg.transaction(async (tx) => {
      // The backup's version of a seeded row wins (an administrator may have edited it).
      for (const [table, where] of Object.entries(SEEDED)) await tx.execute(sql`DELETE FROM ${sql.identifier(table)} WHERE ${where}`);
      // Rollups are restored as they were (they outlive purged raw records): no trigger.
      await tx.execute(sql`ALTER TABLE usage_records DISABLE TRIGGER usage_records_rollup`);
      await tx.execute(sql`ALTER TABLE usage_records DISABLE TRIGGER usage_records_team_rollup`); // usage_team_rollups is copied too (teams, issue 24)
      for (const t of order) {
        const p = byName.get(t)!;
        const perRow = Object.keys(getTableColumns(p.pg)).length;
        const size = Math.max(1, Math.min(opts.batchSize ?? 1000, Math.floor(60_000 / perRow)));
        let batch: Record<string, unknown>[] = [];
        let n = 0;
        const flush = async (): Promise<void> => {
          if (!batch.length) return;
          try {
            await tx.insert(p.pg).values(batch as never);
          } catch (e) {
            // PostgreSQL's own message names the column or constraint; never the row values (customer data).
            const cause = (e as { cause?: unknown }).cause ?? e;
            throw new Error(`restoring ${t} (rows ${n - batch.length + 1}–${n}) failed: ${(cause as Error).message}`);
          }
          batch = [];
        };
        for await (const row of rowsOf(path.join(scratch, ...partName(t).split('/')))) {
          batch.push(row);
          n++;
          if (batch.length >= size) await flush();
        }
        await flush();
      }
      await tx.execute(sql`ALTER TABLE usage_records ENABLE TRIGGER usage_records_rollup`);
      await tx.execute(sql`ALTER TABLE usage_records ENABLE TRIGGER usage_records_team_rollup`); // usage_team_rollups is copied too (teams, issue 24)
      const mismatched: string[] = [];
      for (const t of order) {
        const r = await tx.execute<{ n: string }>(sql`SELECT count(*) AS n FROM ${sql.identifier(t)}`);
        tables[t] = Number(r.rows[0]!.n);
        if (tables[t] !== manifest.tables[t]) mismatched.push(`${t} ${tables[t]} != ${manifest.tables[t]}`);
      }
      audit = await verifyPgChain(tx);
      if (mismatched.length || !audit.ok) {
        throw new PostgresRestoreRefused(
          `the restored rows did not verify, nothing was written (rolled back): ${mismatched.length ? `row counts differ: ${mismatched.join(', ')}` : ''}${!audit.ok ? `the audit chain breaks at entry ${audit.broken.seq}: ${audit.broken.problem}` : ''}`,
        );
      }
    });

    // After the commit, as after an SQLite restore: the configured master key must decrypt
    // every stored secret, and the licence is re-checked.
    const store = postgresStore(pg);
    let secrets: PostgresRestoreResult['secrets'];
    let box: SecretBox | undefined;
    try {
      box = resolveMasterKey(config, undefined, { create: false }).box;
      secrets = await checkStoreSecrets(store, box);
    } catch (e) {
      secrets = { error: (e as Error).message };
    }
    let licence: PostgresRestoreResult['licence'];
    try {
      if (!box) throw new Error('no master key');
      const settings = new RuntimeSettings(store, box, systemClock);
      const svc = await new LicenseService({ store, settings, clock: systemClock, log: pino({ level: 'silent' }), mode: config.licenseMode, environment: config.licenseEnvironment, pollMs: 0 }).start();
      try {
        const st = await svc.status();
        licence = { state: st.state, ...(st.problem ? { problem: st.problem } : {}) };
      } finally {
        await svc.stop();
      }
    } catch (e) {
      licence = { state: 'unknown', problem: { code: 'check_failed', message: (e as Error).message } };
    }
    return { tables, audit, head: status.databaseHead, migratedEmpty, secrets, licence, database: redactDatabaseUrl(url) };
  } finally {
    await pg.$client.end();
  }
}
