import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { reencryptSecrets } from '../../server/config/rotate-master-key.js';
import { RuntimeSettings } from '../../server/config/runtime-settings.js';
import { SecretBox } from '../../server/config/secret-box.js';
import { secretAad } from '../../server/db/secret-columns.js';
import { tempDir } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { closeAll, DIALECTS, postgresDialect, rawRows, rawRun } from '../helpers/stores.js';

/**
 * Master-key rotation over the async Store (issue 22): the one re-encryption (SECRET_COLUMNS,
 * keyset pages, one transaction) on SQLite and on a real PostgreSQL, and the CLI on
 * PostgreSQL, which refused before ("rotation of secrets stored in PostgreSQL is not supported").
 */

afterAll(closeAll);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const wall = { now: () => Date.now() };
/** More than one page (500 rows) of the settings column, so the keyset walk crosses a page. */
const N = 520;

async function stored(store: Parameters<typeof rawRows>[0]): Promise<Map<string, string>> {
  const rows = await rawRows(store, sql`SELECT key, value FROM settings WHERE secret ORDER BY key`);
  return new Map(rows.map((r) => [String(r.key), String(r.value)]));
}

describe.each(DIALECTS)('master-key rotation on $name', (dialect) => {
  it('re-encrypts every secret (across pages) to the new key; the old key alone no longer reads them', async () => {
    const store = (await dialect.fresh())();
    const oldBox = new SecretBox(randomBytes(32));
    const settings = new RuntimeSettings(store, oldBox, wall);
    await settings.ensureSelfTest();
    // One statement for the rows (a round trip each is slow on a busy machine); the values as setSecret writes them.
    const rows = Array.from({ length: N }, (_, i) => {
      const key = `rot.${String(i).padStart(4, '0')}`;
      return { key, value: oldBox.encrypt(`secret-${i}`, secretAad('settings', 'value', key)), secret: true, updatedAt: Date.now() };
    });
    await store.run(store.q.insert(store.t.settings).values(rows));
    const before = await stored(store);
    const newBox = new SecretBox(randomBytes(32));

    expect(await reencryptSecrets(store, oldBox, newBox)).toEqual({ values: N + 1 });

    const after = new RuntimeSettings(store, newBox, wall);
    for (const i of [0, 499, 500, N - 1]) expect(await after.getSecret(`rot.${String(i).padStart(4, '0')}`)).toBe(`secret-${i}`);
    expect(await after.checkSelfTest()).toMatchObject({ ok: true });
    const changed = await stored(store);
    expect([...changed].filter(([k, v]) => before.get(k) === v)).toEqual([]); // every value rewritten
    await expect(new RuntimeSettings(store, oldBox, wall).getSecret('rot.0000')).rejects.toThrow();
  });

  it('a value that does not decrypt rolls the whole rotation back: nothing moves to the new key', async () => {
    const store = (await dialect.fresh())();
    const oldBox = new SecretBox(randomBytes(32));
    const settings = new RuntimeSettings(store, oldBox, wall);
    for (const k of ['a.first', 'm.middle', 'z.last']) await settings.setSecret(k, `v-${k}`);
    await settings.setSecret('n.broken', 'x');
    await rawRun(store, sql`UPDATE settings SET value = 'not-a-ciphertext' WHERE key = 'n.broken'`);
    const before = await stored(store);

    await expect(reencryptSecrets(store, oldBox, new SecretBox(randomBytes(32)))).rejects.toThrow();

    expect(await stored(store)).toEqual(before);
    expect(await settings.getSecret('z.last')).toBe('v-z.last');
  });
});

describe('enclave config rotate-master-key on PostgreSQL', () => {
  it('re-encrypts the database named by ENCLAVE_DATABASE_URL to --new-key-file', async () => {
    const open = await postgresDialect.fresh();
    const store = open();
    const oldKey = randomBytes(32);
    const settings = new RuntimeSettings(store, new SecretBox(oldKey), wall);
    await settings.ensureSelfTest();
    await settings.setSecret('idp.clientSecret', 'client-secret-1');
    const dir = tempDir('enclave-rotate-pg-');
    dirs.push(dir);
    const newKey = randomBytes(32);
    const keyFile = path.join(dir, 'new.key');
    writeFileSync(keyFile, `${newKey.toString('base64')}\n`, { mode: 0o600 });
    const url = 'url' in open.where ? open.where.url : '';

    const r = await runCli(['config', 'rotate-master-key', '--new-key-file', keyFile, '--json'], {
      ENCLAVE_DATA_DIR: dir,
      ENCLAVE_DATABASE_URL: url,
      ENCLAVE_MASTER_KEY: oldKey.toString('base64'),
      ENCLAVE_LOG_LEVEL: 'silent',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rotated: 2, source: 'env' });
    expect(await new RuntimeSettings(store, new SecretBox(newKey), wall).getSecret('idp.clientSecret')).toBe('client-secret-1');
    await expect(settings.getSecret('idp.clientSecret')).rejects.toThrow();
  });
});
