import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, statSync } from 'node:fs';
import { arch, hostname, platform, release } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { LicenseService } from '../../../license/service.js';
import { systemClock } from '../../clock.js';
import { resolveMasterKey } from '../../config/master-key.js';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import { sqliteStore } from '../../db/store.js';
import { SecretBox } from '../../config/secret-box.js';
import { SETTINGS, type Config, type SettingKey } from '../../config/settings.js';
import { databaseFile, openDatabase } from '../../db/connection.js';
import { loadMigrations, migrationStatus } from '../../db/migrator.js';
import { SECRET_COLUMNS, secretAad } from '../../db/secret-columns.js';
import { redisTarget, runDoctor, type DoctorOptions } from '../../doctor/checks.js';
import { queueSnapshot } from '../../doctor/queue-check.js';
import { APP_VERSION } from '../../paths.js';
import type { TarEntry } from '../archive/tar.js';
import { writeArchive } from '../backup/archive.js';
import { tableCounts } from '../backup/create.js';
import { MASK, Redactor, type Redaction } from './redact.js';
import { postgresFacts, postgresLicenceClaims, postgresStoredSecrets } from './postgres.js';

/**
 * `enclave support-bundle`: what support needs to diagnose an installation, and nothing it
 * must not see. Collectors: versions, doctor results, config redacted by allow-list (only
 * non-secret settings keep a value), recent logs (when a log dir is given; field and pattern
 * redaction), a metrics snapshot from the running server, queue counts, database statistics
 * (tables, row counts, sizes — never rows), licence claims without the signature. Every file
 * then passes a final scan for known secret values (master keys, secret settings, every
 * decrypted stored secret). Never: prompts, completions, the database, any secret.
 * redactions.json says what was redacted where; SUMMARY.md is for humans.
 */
export interface BundleOptions {
  readonly out?: string;
  readonly logDir?: string;
  /** Newest bytes taken from each log file. */
  readonly logBytes?: number;
  readonly metricsUrl?: string;
  readonly doctor?: DoctorOptions;
  readonly now?: () => number;
}

export interface BundleFile {
  readonly name: string;
  readonly description: string;
  readonly size?: number;
}

export interface BundleResult {
  readonly file?: string;
  readonly files: readonly BundleFile[];
  readonly redactions: readonly Redaction[];
  readonly notes: readonly string[];
}

const LOG_BYTES = 2 * 1024 * 1024;

/** Every secret value this installation knows, for the final scan. */
export function knownSecrets(config: Config): string[] {
  const out: string[] = [];
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const s = SETTINGS[key];
    const v = config[key];
    if (!('secret' in s && s.secret) || v === undefined) continue;
    const text = String(v);
    out.push(text, ...text.split(',').map((x) => x.trim()));
    try {
      const u = new URL(text);
      if (u.password) out.push(decodeURIComponent(u.password), u.password);
    } catch {
      /* not a URL */
    }
  }
  const files = [config.oidcClientSecretFile, config.masterKeyFile];
  for (const f of files) {
    try {
      if (f) out.push(readFileSync(f, 'utf8').trim());
    } catch {
      /* unreadable: nothing to hide */
    }
  }
  for (const f of ['master.key', 'master.key.previous', 'master.key.next']) {
    try {
      out.push(readFileSync(path.join(config.dataDir, 'secrets', f), 'utf8').trim());
    } catch {
      /* absent */
    }
  }
  // every key also in hex (some tools print keys that way)
  for (const k of [...out]) if (/^[A-Za-z0-9+/]{43}=$/.test(k)) out.push(Buffer.from(k, 'base64').toString('hex'));
  return out;
}

function storedSecrets(sqlite: Database.Database, box: SecretBox | undefined): string[] {
  const out: string[] = [];
  if (!box) return out;
  for (const c of SECRET_COLUMNS) {
    // Customer content (prompts, completions) is never read here: the bundle holds no rows,
    // so there is nothing to mask, and decrypting every stored call would be slow and pointless.
    if (c.kind === 'content') continue;
    try {
      const rows = sqlite.prepare(`SELECT "${c.idColumn}" AS id, "${c.column}" AS v FROM "${c.table}"${c.where ? ` WHERE ${c.where}` : ''}`).all() as { id: string; v: string | null }[];
      for (const r of rows) {
        if (!r.v) continue;
        out.push(r.v);
        try {
          const plain = box.decrypt(r.v, secretAad(c.table, c.column, String(r.id)));
          out.push(plain);
          // A JSON object of secrets (provider_deployments.credentials): each value is one to mask.
          if (plain.startsWith('{')) out.push(...jsonSecretValues(plain));
        } catch {
          /* cannot decrypt: the ciphertext itself is hidden */
        }
      }
    } catch {
      /* table not there */
    }
  }
  return out;
}

function jsonSecretValues(text: string): string[] {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' ? Object.values(v).filter((x): x is string => typeof x === 'string' && x.length >= 4) : [];
  } catch {
    return [];
  }
}

function tail(file: string, bytes: number): string {
  const size = statSync(file).size;
  const start = Math.max(0, size - bytes);
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(size - start);
    readSync(fd, b, 0, b.length, start);
    let text = b.toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    return text;
  } finally {
    closeSync(fd);
  }
}

/** Config by allow-list: non-secret settings keep their value, secret ones only say whether they are set. */
function redactedConfig(config: Config, r: Redactor): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const s = SETTINGS[key];
    const v = config[key];
    if ('secret' in s && s.secret) {
      out[s.env] = v === undefined ? null : MASK;
      if (v !== undefined) r.record('config.json', `secret-setting:${s.env}`);
    } else {
      out[s.env] = v === undefined ? null : typeof v === 'string' ? r.text('config.json', v) : v;
    }
  }
  return out;
}

function databaseStats(config: Config): Record<string, unknown> {
  const file = databaseFile(config.dataDir);
  if (!existsSync(file)) return { present: false };
  const sqlite = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const size = (f: string): number | null => (existsSync(f) ? statSync(f).size : null);
    const s = migrationStatus(sqlite);
    return {
      present: true,
      fileBytes: size(file),
      walBytes: size(`${file}-wal`),
      pageSize: sqlite.pragma('page_size', { simple: true }),
      pageCount: sqlite.pragma('page_count', { simple: true }),
      freelistCount: sqlite.pragma('freelist_count', { simple: true }),
      journalMode: sqlite.pragma('journal_mode', { simple: true }),
      quickCheck: sqlite.pragma('quick_check', { simple: true }),
      migrations: { applied: s.applied.length, databaseHead: s.databaseHead, codeHead: s.head, pending: s.pending, unknown: s.unknown },
      tables: tableCounts(sqlite),
    };
  } finally {
    sqlite.close();
  }
}

async function metricsSnapshot(config: Config, url: string | undefined, notes: string[]): Promise<string | undefined> {
  const target = url ?? (config.port ? `http://127.0.0.1:${config.port}/metrics` : undefined);
  if (!target) {
    notes.push('metrics: no server port configured (PORT=0); pass --metrics-url');
    return undefined;
  }
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(3000), headers: config.metricsToken ? { authorization: `Bearer ${config.metricsToken}` } : {} });
    if (!res.ok) {
      notes.push(`metrics: ${target} answered HTTP ${res.status}`);
      return undefined;
    }
    return await res.text();
  } catch (e) {
    notes.push(`metrics: ${target} not reachable (${(e as Error).message}); is the server running?`);
    return undefined;
  }
}

async function licenceClaims(config: Config, box: SecretBox | undefined): Promise<Record<string, unknown>> {
  if (config.databaseUrl) return postgresLicenceClaims(config, box ?? new SecretBox(randomBytes(32)));
  const file = databaseFile(config.dataDir);
  if (!existsSync(file)) return { state: 'no database' };
  const db = openDatabase(file);
  try {
    const store = sqliteStore(db);
    const settings = new RuntimeSettings(store, box ?? new SecretBox(randomBytes(32)), systemClock);
    const svc = await new LicenseService({ store, settings, clock: systemClock, log: pino({ level: 'silent' }), mode: config.licenseMode, environment: config.licenseEnvironment, pollMs: 0 }).start();
    try {
      // status() carries the claims (customer, plan, limits, dates) but never the licence text or its signature
      return (await svc.status()) as unknown as Record<string, unknown>;
    } finally {
      await svc.stop();
    }
  } catch (e) {
    return { state: 'unknown', error: (e as Error).message };
  } finally {
    db.$client.close();
  }
}

export function bundleFileName(at: Date): string {
  return `enclave-support-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}.tar.gz`;
}

/** Plans (dry run) or writes the bundle. */
export async function supportBundle(config: Config, opts: BundleOptions & { dryRun?: boolean } = {}): Promise<BundleResult> {
  const at = new Date((opts.now ?? Date.now)());
  const notes: string[] = [];
  let box: SecretBox | undefined;
  try {
    box = resolveMasterKey(config, undefined, { create: false }).box;
  } catch (e) {
    notes.push(`master key not available (${(e as Error).message}); stored secrets are hidden by pattern only`);
  }
  const secrets = knownSecrets(config);
  const dbFile = databaseFile(config.dataDir);
  if (config.databaseUrl) secrets.push(...(await postgresStoredSecrets(config, box, jsonSecretValues)));
  else if (existsSync(dbFile)) {
    const sqlite = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      secrets.push(...storedSecrets(sqlite, box));
    } finally {
      sqlite.close();
    }
  }
  const r = new Redactor(secrets);
  const files: { name: string; description: string; data?: () => Promise<string | undefined> | string | undefined }[] = [];
  const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

  files.push({
    name: 'versions.json',
    description: 'Enclave, Node.js, SQLite and OS versions; migration heads',
    data: () =>
      json({
        enclave: APP_VERSION,
        node: process.versions.node,
        sqlite: new Database(':memory:').prepare('SELECT sqlite_version() AS v').pluck().get(),
        os: { platform: platform(), release: release(), arch: arch() },
        host: hostname(),
        migrationHead: loadMigrations().at(-1)?.tag ?? null,
        createdAt: at.toISOString(),
      }),
  });
  files.push({ name: 'doctor.json', description: 'enclave doctor results (every check, status, message)', data: async () => json(await runDoctor(config, opts.doctor ?? {})) });
  files.push({ name: 'config.json', description: 'effective bootstrap config; secret settings replaced by [redacted] (allow-list: non-secret settings only)', data: () => json(redactedConfig(config, r)) });
  files.push(
    config.databaseUrl
      ? { name: 'database.json', description: 'PostgreSQL: version, primary or standby, TLS, connections, replicas, migration level, table estimates and sizes (no rows, no password)', data: async () => json(await postgresFacts(config)) }
      : { name: 'database.json', description: 'database statistics: tables, row counts, sizes, integrity (no rows)', data: () => json(databaseStats(config)) },
  );
  files.push({ name: 'license.json', description: 'licence state and claims (no licence text, no signature)', data: async () => json(await licenceClaims(config, box)) });
  files.push({
    name: 'queues.json',
    description: 'job queue counts by lane and state, oldest waiting age, live workers (no job data)',
    data: async () => {
      const url = redisTarget(config).url;
      if (!url) return json({ note: 'Redis not running (embedded mode, server stopped)' });
      try {
        return json(await queueSnapshot(config, url, at.getTime()));
      } catch (e) {
        notes.push(`queues: cannot read them (${(e as Error).message})`);
        return json({ error: (e as Error).message });
      }
    },
  });
  files.push({ name: 'metrics.txt', description: 'Prometheus snapshot of the running server', data: () => metricsSnapshot(config, opts.metricsUrl, notes) });
  if (opts.logDir) {
    if (!existsSync(opts.logDir)) notes.push(`logs: ${opts.logDir} does not exist`);
    else {
      for (const name of readdirSync(opts.logDir).filter((n) => /\.(log|jsonl|txt)$/.test(n) && statSync(path.join(opts.logDir!, n)).isFile()).sort()) {
        files.push({
          name: `logs/${name}`,
          description: `newest ${Math.round((opts.logBytes ?? LOG_BYTES) / 1024)} KiB of ${name}; secret and content fields redacted`,
          data: () =>
            tail(path.join(opts.logDir!, name), opts.logBytes ?? LOG_BYTES)
              .split('\n')
              .map((l) => (l ? r.logLine(`logs/${name}`, l) : l))
              .join('\n'),
        });
      }
    }
  } else notes.push('logs: no log dir given (--log-dir); container logs: docker compose logs --since 24h');
  const planned: BundleFile[] = [
    ...files.map((f) => ({ name: f.name, description: f.description })),
    { name: 'redactions.json', description: 'what was redacted, per file and rule (counts only)' },
    { name: 'SUMMARY.md', description: 'human-readable summary' },
  ];
  if (opts.dryRun) return { files: planned, redactions: [], notes };

  const entries: TarEntry[] = [];
  const written: BundleFile[] = [];
  for (const f of files) {
    const text = await f.data?.();
    if (text === undefined) continue;
    // final scan of every file for known secret values and patterns (logs were done line by line)
    const clean = f.name.startsWith('logs/') ? r.known(f.name, text) : r.text(f.name, text);
    const data = Buffer.from(clean);
    entries.push({ name: f.name, data, size: data.length, mtime: at.getTime() });
    written.push({ name: f.name, description: f.description, size: data.length });
  }
  const redactions = r.report();
  const doctor = JSON.parse(entries.find((e) => e.name === 'doctor.json')!.data!.toString()) as { status: string; checks: { id: string; status: string; message: string }[] };
  const summary = [
    `# Enclave support bundle`,
    '',
    `- created: ${at.toISOString()} on ${hostname()}`,
    `- Enclave ${APP_VERSION}, Node.js ${process.versions.node}`,
    `- doctor: **${doctor.status}**`,
    ...doctor.checks.filter((c) => c.status !== 'ok').map((c) => `  - ${c.id} ${c.status}: ${c.message}`),
    '',
    '## Files',
    ...written.map((f) => `- \`${f.name}\` (${f.size} bytes): ${f.description}`),
    '- `redactions.json`: what was redacted',
    '',
    '## Redactions',
    redactions.length ? `${redactions.reduce((n, x) => n + x.count, 0)} value(s) redacted in ${new Set(redactions.map((x) => x.file)).size} file(s); see redactions.json.` : 'nothing needed redaction.',
    '',
    '## Notes',
    ...(notes.length ? notes.map((n) => `- ${n}`) : ['- none']),
    '',
    'Never included: the database, prompts, completions, API keys, passwords, the master key or any other secret.',
    'Review before sharing; do not put support bundles on public shares.',
    '',
  ].join('\n');
  for (const [name, text] of [
    ['redactions.json', json({ redactions, notes })],
    ['SUMMARY.md', r.known('SUMMARY.md', summary)],
  ] as const) {
    const data = Buffer.from(text);
    entries.push({ name, data, size: data.length, mtime: at.getTime() });
  }
  let out = opts.out ?? path.join(process.cwd(), bundleFileName(at));
  if (out.endsWith('/') || (existsSync(out) && statSync(out).isDirectory())) {
    mkdirSync(out, { recursive: true });
    out = path.join(out, bundleFileName(at));
  }
  out = path.resolve(out);
  if (existsSync(out)) throw new Error(`${out} already exists; choose another --out`);
  mkdirSync(path.dirname(out), { recursive: true });
  await writeArchive(out, entries);
  return { file: out, files: planned, redactions, notes };
}
