import { sql, type SQL } from 'drizzle-orm';
import { randomBytes } from 'node:crypto';
import { SECRET_COLUMNS, secretAad, type SecretColumn } from '../db/secret-columns.js';
import type { Store } from '../db/store.js';
import { readKeyFileSet, renameDurably, writeKeyFile } from './master-key.js';
import { keyId, SecretBox } from './secret-box.js';

/** Rows read per page: content columns (call_contents) can hold many large rows. */
const PAGE = 500;

/**
 * A raw statement on either dialect, on the current transaction's connection (store.q is the
 * transaction's builder on PostgreSQL; SQLite has one connection). SECRET_COLUMNS names tables
 * and columns as strings, so this walks them with SQL rather than the table objects.
 */
async function raw<T>(store: Store, query: SQL, returnsRows = true): Promise<T[]> {
  if (store.sqlite) {
    if (returnsRows) return store.sqlite.all(query) as T[];
    store.sqlite.run(query);
    return [];
  }
  const r = await (store.q as unknown as { execute(q: SQL): PromiseLike<{ rows: T[] }> }).execute(query);
  return r.rows;
}

/** One keyset page of a secret column's non-null values, in id order, after `after`. */
export function secretPage(store: Store, c: SecretColumn, after: string, limit = PAGE): Promise<{ id: string; v: string | null }[]> {
  const where = c.where ? sql`(${sql.raw(c.where)}) AND ` : sql``;
  // Every id column is text on both dialects: the keyset compares in the column's text order.
  return raw(store, sql`SELECT ${sql.identifier(c.idColumn)} AS id, ${sql.identifier(c.column)} AS v FROM ${sql.identifier(c.table)} WHERE ${where}${sql.identifier(c.idColumn)} > ${after} ORDER BY ${sql.identifier(c.idColumn)} LIMIT ${limit}`);
}

/**
 * Re-encrypts every registered secret column from the old keyring to the new key in one
 * transaction (store.tx: BEGIN IMMEDIATE on SQLite, one pooled connection on PostgreSQL):
 * either every value moves to the new key or none does. Rows are read a page at a time in id
 * order (keyset), so memory stays bounded however many rows there are. One implementation for
 * both dialects (issue 22): on PostgreSQL the rows are locked by their UPDATE until the commit,
 * and a server replica writing a new secret meanwhile waits for it or wrote before the page read.
 */
export async function reencryptSecrets(store: Store, from: SecretBox, to: SecretBox): Promise<{ values: number }> {
  return store.tx(async () => {
    let values = 0;
    for (const c of SECRET_COLUMNS) {
      let after = '';
      for (;;) {
        const rows = await secretPage(store, c, after);
        const moved = rows.filter((r) => r.v !== null).map((r) => {
          const aad = secretAad(c.table, c.column, r.id);
          return sql`(${r.id}, ${to.encrypt(from.decrypt(r.v!, aad), aad)})`;
        });
        if (moved.length > 0) {
          // One statement per page (a round trip per row is what makes a PostgreSQL rotation
          // slow); VALUES columns are column1/column2 on both dialects.
          await raw(
            store,
            sql`UPDATE ${sql.identifier(c.table)} SET ${sql.identifier(c.column)} = v.column2 FROM (VALUES ${sql.join(moved, sql`, `)}) AS v WHERE ${sql.identifier(c.table)}.${sql.identifier(c.idColumn)} = v.column1`,
            false,
          );
          values += moved.length;
        }
        if (rows.length < PAGE) break;
        after = rows[rows.length - 1]!.id;
      }
    }
    return { values };
  });
}

/** The steps of a key-file rotation, in order; a test harness kills the process after each. */
export const ROTATION_STEPS = ['next_written', 'reencrypted', 'previous_written', 'swapped'] as const;
export type RotationStep = (typeof ROTATION_STEPS)[number];

export interface KeyFileRotation {
  readonly values: number;
  readonly from: string;
  readonly to: string;
  /** True when an interrupted rotation's `.next` key was found and the rotation finished with it. */
  readonly resumed: boolean;
}

/**
 * Rotates a master key kept in a file (generated, or ENCLAVE_MASTER_KEY_FILE when writable).
 * Every step leaves files that start-up (resolveMasterKey) can decrypt the database with,
 * and re-running after a crash at any point finishes the same rotation:
 *
 *   1. the new key is written durably to `<file>.next` (or an existing `.next` from an
 *      interrupted run is reused: it may already be the only key some secrets are under);
 *   2. every secret is re-encrypted to it in one transaction (decrypting with the current,
 *      `.next`, `.previous` and ENCLAVE_PREVIOUS_MASTER_KEYS keys);
 *   3. the current key is copied to `<file>.previous` (a copy: `<file>` never disappears);
 *   4. `.next` is renamed over `<file>`.
 *
 * Nothing ever deletes `.next`: the only way it goes is by becoming the current key.
 */
export async function rotateKeyFile(store: Store, file: string, opts: { extraKeys?: readonly Buffer[]; onStep?: (step: RotationStep) => void; newKey?: () => Buffer } = {}): Promise<KeyFileRotation> {
  const set = readKeyFileSet(file);
  const resumed = !!set.next;
  let target: Buffer;
  if (set.next) target = set.next;
  else {
    target = opts.newKey?.() ?? randomBytes(32);
    writeKeyFile(`${file}.next`, target);
  }
  opts.onStep?.('next_written');
  const current = set.current ?? set.next;
  if (!current) throw new Error(`${file} does not exist; nothing to rotate`);
  const from = new SecretBox(current, [set.next, set.previous, ...(opts.extraKeys ?? [])].filter((k): k is Buffer => !!k));
  const to = new SecretBox(target);
  const { values } = await reencryptSecrets(store, from, to);
  opts.onStep?.('reencrypted');
  if (set.current && !set.current.equals(target)) writeKeyFile(`${file}.previous`, set.current);
  opts.onStep?.('previous_written');
  renameDurably(`${file}.next`, file);
  opts.onStep?.('swapped');
  return { values, from: keyId(current), to: keyId(target), resumed };
}
