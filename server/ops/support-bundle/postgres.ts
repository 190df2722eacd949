import pino from 'pino';
import { LicenseService } from '../../../license/service.js';
import { systemClock } from '../../clock.js';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import { secretPage } from '../../config/rotate-master-key.js';
import type { SecretBox } from '../../config/secret-box.js';
import type { Config } from '../../config/settings.js';
import { redactDatabaseUrl } from '../../db/dialect.js';
import { openPostgres, type PgDb } from '../../db/pg/connection.js';
import { loadPgMigrations } from '../../db/pg/migrator.js';
import { SECRET_COLUMNS, secretAad } from '../../db/secret-columns.js';
import { postgresStore } from '../../db/store.js';
import { postgresStatus } from '../db-migrate/status.js';
import { copyOrder } from '../db-migrate/to-postgres.js';

/**
 * The support bundle's view of an Enclave on PostgreSQL (issue 22): what support needs to know
 * about the database — server version, primary or standby, TLS, connections (Enclave's by
 * application name, the database's, the server's, against max_connections), replicas streaming
 * from it, migration level, per-table row estimates and sizes — and never a row, never the URL's
 * password (the URL is shown redacted; the bundle's final scan also hides the password, which
 * knownSecrets takes from the URL).
 */

function open(config: Config): PgDb {
  return openPostgres({ url: config.databaseUrl!, poolMax: 1, caFile: config.databaseCaFile, statementTimeoutMs: 10_000, applicationName: 'enclave support-bundle' });
}

export async function postgresFacts(config: Config): Promise<Record<string, unknown>> {
  const url = config.databaseUrl!;
  const base = { dialect: 'postgres', database: redactDatabaseUrl(url) };
  let status;
  try {
    status = await postgresStatus({ url, caFile: config.databaseCaFile, statementTimeoutMs: 10_000 });
  } catch (e) {
    // checkPostgres' one line: names the server and what failed, never the password
    return { ...base, reachable: false, error: (e as Error).message };
  }
  const db = open(config);
  try {
    const names = copyOrder().map((p) => p.name);
    const extra = await db.$client.query<{ size: string; apps: string | null; replicas: string }>(
      `SELECT pg_database_size(current_database()) AS size,
              (SELECT json_agg(json_build_object('app', app, 'n', n)) FROM (
                 SELECT coalesce(nullif(application_name, ''), '(none)') AS app, count(*) AS n
                 FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1 ORDER BY 1) a) AS apps,
              (SELECT count(*) FROM pg_stat_replication) AS replicas`,
    );
    // Estimates (the statistics collector's live tuples), not count(*): a bundle must stay cheap on a large database.
    const tables = await db.$client.query<{ name: string; rows: string; bytes: string }>(
      `SELECT c.relname AS name, coalesce(s.n_live_tup, 0) AS rows, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
       WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname = ANY($1) ORDER BY c.relname`,
      [names],
    );
    const row = extra.rows[0]!;
    // json arrives as its text (server/db/pg/connection.ts sets the parser for Enclave's columns)
    const apps = (row.apps ? JSON.parse(row.apps) : []) as { app: string; n: number }[];
    const m = status.migrations;
    return {
      ...base,
      reachable: true,
      version: status.version,
      role: status.inRecovery ? 'standby (read-only: Enclave needs the primary)' : 'primary',
      streamingReplicas: Number(row.replicas),
      tls: status.tls,
      connections: { ...status.connections, byApplication: Object.fromEntries(apps.map((a) => [a.app, Number(a.n)])) },
      databaseBytes: Number(row.size),
      migrations: { applied: m.applied.length, databaseHead: m.databaseHead, codeHead: loadPgMigrations().at(-1)?.tag ?? null, pending: m.pending, unknown: m.unknown },
      tables: Object.fromEntries(tables.rows.map((t) => [t.name, { rowsEstimate: Number(t.rows), bytes: Number(t.bytes) }])),
    };
  } catch (e) {
    return { ...base, reachable: true, version: status.version, error: (e as Error).message };
  } finally {
    await db.$client.end();
  }
}

/** Every stored secret's ciphertext and plaintext (the final scan hides them), from PostgreSQL; content columns never read. */
export async function postgresStoredSecrets(config: Config, box: SecretBox | undefined, jsonValues: (text: string) => string[]): Promise<string[]> {
  const out: string[] = [];
  if (!box) return out;
  const db = open(config);
  try {
    const store = postgresStore(db);
    for (const c of SECRET_COLUMNS) {
      if (c.kind === 'content') continue;
      let after = '';
      for (;;) {
        const rows = await secretPage(store, c, after);
        for (const r of rows) {
          if (!r.v) continue;
          out.push(r.v);
          try {
            const plain = box.decrypt(r.v, secretAad(c.table, c.column, String(r.id)));
            out.push(plain);
            if (plain.startsWith('{')) out.push(...jsonValues(plain));
          } catch {
            /* cannot decrypt: the ciphertext itself is hidden */
          }
        }
        if (rows.length < 500) break;
        after = rows.at(-1)!.id;
      }
    }
  } catch {
    /* unreachable: nothing stored to hide beyond the known secrets */
  } finally {
    await db.$client.end();
  }
  return out;
}

/** Licence claims (never its text or signature) from the database. */
export async function postgresLicenceClaims(config: Config, box: SecretBox): Promise<Record<string, unknown>> {
  const db = open(config);
  try {
    const store = postgresStore(db);
    const settings = new RuntimeSettings(store, box, systemClock);
    const svc = await new LicenseService({ store, settings, clock: systemClock, log: pino({ level: 'silent' }), mode: config.licenseMode, environment: config.licenseEnvironment, pollMs: 0 }).start();
    try {
      return (await svc.status()) as unknown as Record<string, unknown>;
    } finally {
      await svc.stop();
    }
  } catch (e) {
    return { state: 'unknown', error: (e as Error).message };
  } finally {
    await db.$client.end();
  }
}
