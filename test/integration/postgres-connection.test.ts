import { existsSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkPostgres, DatabaseConnectionError, openPostgres, pgPoolConfig, type PgDb } from '../../server/db/pg/connection.js';
import { freePort } from '../../server/redis/ping.js';
import { tempDir } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { spawnServer } from '../helpers/process.js';
import { createCa, issueServerCert } from '../../installer/tls.js';
import { enableTls, freshDatabase, startPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The PostgreSQL connection settings (server/db/pg/connection.ts) against a real PostgreSQL:
 * URL and TLS options (libpq's sslmode meanings), one-line errors without credentials, the
 * statement timeout, the pool bound; and the server and CLI refusing ENCLAVE_DATABASE_URL
 * until the async repository layer serves it.
 */

const pools: PgDb[] = [];
function open(...args: Parameters<typeof openPostgres>): PgDb {
  const d = openPostgres(...args);
  pools.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(pools.map((p) => p.$client.end()));
});

function configError(url: string, extra: { caFile?: string } = {}): string {
  try {
    pgPoolConfig({ url, ...extra });
  } catch (e) {
    expect(e).toBeInstanceOf(DatabaseConnectionError);
    return (e as Error).message;
  }
  throw new Error(`accepted: ${url}`);
}

describe('PostgreSQL URL and TLS settings', () => {
  it('refuses a wrong URL with a one-line reason that carries no password', () => {
    expect(configError('not a url')).toMatch(/^invalid ENCLAVE_DATABASE_URL: not a URL; use a URL like postgres:/);
    expect(configError('mysql://u:pw@db/enclave')).toMatch(/scheme mysql: is not postgres: or postgresql:/);
    const noDb = configError('postgres://u:hunter2@127.0.0.1:5432/');
    expect(noDb).toMatch(/names no database \(postgres:\/\/u:\*\*\*@127\.0\.0\.1:5432\/\)/);
    expect(noDb).not.toContain('hunter2');
    expect(configError('postgres://u@127.0.0.1/db?sslrootcert=/x.pem')).toMatch(/parameter sslrootcert is not supported .* the CA file is ENCLAVE_DATABASE_CA_FILE/);
    expect(configError('postgres://u@db.example.com/db?sslmode=prefer')).toMatch(/sslmode=prefer is not supported; use verify-full \(recommended\), verify-ca, require or disable \(prefer may fall back to an unencrypted connection\)/);
    expect(configError('postgres://u@db.example.com/db')).toMatch(/^ENCLAVE_DATABASE_URL names the remote host db\.example\.com without sslmode: add \?sslmode=verify-full/);
    expect(configError('postgres://u@db.example.com/db?sslmode=verify-full', { caFile: '/nonexistent/ca.pem' })).toMatch(/^cannot read ENCLAVE_DATABASE_CA_FILE \/nonexistent\/ca\.pem \(ENOENT\)/);
    for (const m of [noDb]) expect(m.split('\n')).toHaveLength(1);
  });

  it('maps sslmode as libpq does: disable plain, require encrypted only, verify-ca the chain, verify-full chain and host', () => {
    const dir = tempDir('enclave-pg-ca-');
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const ssl = (url: string, caFile?: string) => pgPoolConfig({ url, caFile }).ssl;
    expect(ssl('postgres://u@127.0.0.1/db')).toBe(false); // loopback without sslmode: plain
    expect(ssl('postgres://u@db.example.com/db?sslmode=disable')).toBe(false);
    expect(ssl('postgres://u@db.example.com/db?sslmode=require')).toEqual({ rejectUnauthorized: false });
    const requireWithCa = ssl('postgres://u@db.example.com/db?sslmode=require', ca) as Record<string, unknown>;
    expect(requireWithCa).toMatchObject({ rejectUnauthorized: true, ca: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(typeof requireWithCa.checkServerIdentity).toBe('function');
    const verifyCa = ssl('postgres://u@db.example.com/db?sslmode=verify-ca', ca) as Record<string, unknown>;
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect((verifyCa.checkServerIdentity as () => unknown)()).toBeUndefined(); // host name not checked
    const full = ssl('postgres://u@db.example.com/db?sslmode=verify-full') as Record<string, unknown>;
    expect(full).toEqual({ rejectUnauthorized: true }); // node's own host name check stays
    const cfg = pgPoolConfig({ url: 'postgresql://app%40corp:p%23ss@db.example.com:6432/enc%20db?sslmode=verify-full&application_name=api-1', poolMax: 7, statementTimeoutMs: 1500 });
    expect(cfg).toMatchObject({ host: 'db.example.com', port: 6432, user: 'app@corp', password: 'p#ss', database: 'enc db', max: 7, statement_timeout: 1500, application_name: 'api-1' });
    expect(pgPoolConfig({ url: 'postgres://u@127.0.0.1/db', statementTimeoutMs: 0 })).not.toHaveProperty('statement_timeout');
  });
});

describe('PostgreSQL connection against a real server', () => {
  it('names what is wrong in one line: refused, no such database, a server without TLS — never the password', async () => {
    const server = await startPostgres();
    const port = await freePort();
    const refused = open({ url: `postgres://enclave:hunter2@127.0.0.1:${port}/enclave` });
    const e1 = await checkPostgres(refused.$client, `postgres://enclave:hunter2@127.0.0.1:${port}/enclave`).catch((e: Error) => e);
    expect((e1 as Error).message).toBe(`cannot reach PostgreSQL at 127.0.0.1:${port}: connection refused (is it running, and is the host/port right?)`);

    const missingUrl = `postgres://postgres:hunter2@127.0.0.1:${server.port}/no_such_db`;
    const e2 = await checkPostgres(open({ url: missingUrl }).$client, missingUrl).catch((e: Error) => e);
    expect((e2 as Error).message).toBe(`PostgreSQL at 127.0.0.1:${server.port} has no database "no_such_db": create it (CREATE DATABASE) or fix the URL`);

    // A server without TLS answers the client's SSLRequest with a single 'N' (the run's server may
    // have TLS on by now: the TLS test below turns it on, and files and tests may run shuffled).
    const plain = net.createServer((sock) => sock.once('data', () => sock.end('N')));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const plainPort = (plain.address() as AddressInfo).port;
    const tlsUrl = `postgres://postgres:hunter2@127.0.0.1:${plainPort}/postgres?sslmode=require`;
    const e3 = await checkPostgres(open({ url: tlsUrl }).$client, tlsUrl).catch((e: Error) => e);
    await new Promise((r) => plain.close(r));
    expect((e3 as Error).message).toBe(`PostgreSQL at 127.0.0.1:${plainPort} does not offer TLS but sslmode asks for it: enable ssl on the server, or use sslmode=disable on a trusted network`);
    for (const e of [e1, e2, e3]) {
      expect(e).toBeInstanceOf(DatabaseConnectionError);
      expect((e as Error).message).not.toContain('hunter2');
    }
    const ok = await checkPostgres(open({ url: server.url() }).$client, server.url());
    expect(ok.versionNum).toBeGreaterThanOrEqual(140000);
  });

  it('the statement timeout ends a long statement; the pool never opens more than its maximum', async () => {
    const url = await freshDatabase('conn');
    const slow = open({ url, statementTimeoutMs: 200, applicationName: 'enclave-test-timeout' });
    const started = performance.now();
    const err = await slow.$client.query('SELECT pg_sleep(5)').catch((e: { code?: string }) => e);
    expect((err as { code?: string }).code).toBe('57014'); // query_canceled by statement_timeout
    expect(performance.now() - started).toBeLessThan(4000); // far below the 5 s sleep

    const pool = open({ url, poolMax: 3, applicationName: 'enclave-test-pool' });
    const watcher = open({ url, poolMax: 1 });
    let most = 0;
    let done = false;
    const work = Promise.all(Array.from({ length: 10 }, () => pool.$client.query('SELECT pg_sleep(0.2)'))).finally(() => {
      done = true;
    });
    // Sample the server's view while the ten queries queue for three connections.
    await waitFor(
      async () => {
        const r = await watcher.$client.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'enclave-test-pool'");
        most = Math.max(most, Number(r.rows[0]!.n));
        return done;
      },
      { what: 'the ten queries done', interval: 5 },
    );
    await work;
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(3);
    expect(pool.$client.totalCount).toBeLessThanOrEqual(3);
  });
});

describe('PostgreSQL over TLS (the run\'s server with ssl turned on)', () => {
  it('verify-ca trusts the CA file; without it the certificate is refused; verify-full refuses a certificate for another host name; require encrypts', async () => {
    const server = await startPostgres();
    const ca = createCa('Enclave test database CA');
    const cert = issueServerCert(ca, ['db.internal']); // not 127.0.0.1: the host name check must fail
    await enableTls(cert.certPem, cert.keyPem);
    const caFile = path.join(tempDir('enclave-pg-tls-'), 'ca.pem');
    writeFileSync(caFile, ca.certPem);
    const url = (mode: string) => `postgres://postgres:hunter2@127.0.0.1:${server.port}/postgres?sslmode=${mode}`;
    const encrypted = async (d: PgDb) => (await d.$client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]!.ssl;

    const verifyCa = open({ url: url('verify-ca'), caFile });
    await checkPostgres(verifyCa.$client, url('verify-ca'));
    expect(await encrypted(verifyCa)).toBe(true);

    const untrusted = await checkPostgres(open({ url: url('verify-ca') }).$client, url('verify-ca')).catch((e: Error) => e);
    expect((untrusted as Error).message).toMatch(/^TLS to PostgreSQL at 127\.0\.0\.1:\d+ failed: .*(self[- ]signed|unable to (get|verify)|issuer).* \(set ENCLAVE_DATABASE_CA_FILE to the CA that signed the server certificate, or check sslmode\)$/i);

    const wrongHost = await checkPostgres(open({ url: url('verify-full'), caFile }).$client, url('verify-full')).catch((e: Error) => e);
    expect((wrongHost as Error).message).toMatch(/^TLS to PostgreSQL at 127\.0\.0\.1:\d+ failed: .*(altnames|does not match)/i);

    const require = open({ url: url('require') });
    await checkPostgres(require.$client, url('require'));
    expect(await encrypted(require)).toBe(true);
    for (const e of [untrusted, wrongHost]) {
      expect(e).toBeInstanceOf(DatabaseConnectionError);
      expect((e as Error).message).not.toContain('hunter2');
    }
  });
});

describe('ENCLAVE_DATABASE_URL: the server and the CLI on PostgreSQL', () => {
  it('the server migrates an empty database at start, gets ready, and stops cleanly on SIGTERM', async () => {
    const url = await freshDatabase('server');
    const s = await spawnServer({ env: { ENCLAVE_DATABASE_URL: url } });
    const ready = await fetch(`${s.url}/readyz`);
    const body = (await ready.json()) as { checks?: Record<string, { status: string; dialect?: string }> };
    expect(ready.status).toBe(200);
    expect(body.checks?.database).toMatchObject({ status: 'ok', dialect: 'postgres' });
    // Nothing of the database went into the data dir: no SQLite file was created there.
    expect(existsSync(path.join(s.dataDir, 'enclave.db'))).toBe(false);
    s.child.kill('SIGTERM');
    expect((await s.exited()).code).toBe(0);
  });

  it('the CLI works on the same database; SQLite-only commands refuse with what to use instead; a bad URL is named without its password', async () => {
    const url = await freshDatabase('cli');
    const env = { ENCLAVE_DATA_DIR: tempDir(), ENCLAVE_DATABASE_URL: url, ENCLAVE_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') };
    const created = await runCli(['tenants', 'create', 'pg-acme', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const listed = await runCli(['tenants', 'list', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { slug: string }[]).map((t) => t.slug)).toContain('pg-acme');
    // Backups work on PostgreSQL too (a logical backup: postgres-backup.test.ts has the round trip).
    const backup = await runCli(['backup', 'create', '--out', path.join(tempDir(), 'pg.enclave-backup'), '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const migrate = await runCli(['migrate'], env);
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toMatch(/run enclave db migrate/);
    const bad = await runCli(['tenants', 'list'], { ENCLAVE_DATA_DIR: tempDir(), ENCLAVE_DATABASE_URL: 'mysql://u:pw@db/x' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^enclave: invalid ENCLAVE_DATABASE_URL: must start with postgres:\/\/ or postgresql:\/\/; use a URL like/);
    expect(bad.stderr).not.toContain('pw@');
  });
});
