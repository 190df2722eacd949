import type { Db } from '../db/connection.js';
import { SECRET_COLUMNS, secretAad } from '../db/secret-columns.js';
import { randomBytes } from 'node:crypto';
import { readKeyFileSet, renameDurably, writeKeyFile } from './master-key.js';
import { keyId, SecretBox } from './secret-box.js';

/** Rows read per page: content columns (call_contents) can hold many large rows. */
const PAGE = 500;

/**
 * Re-encrypts every registered secret column from the old keyring to the new key in one
 * transaction: either every value moves to the new key or none does. Rows are read a page
 * at a time in id order (keyset), so memory stays bounded however many rows there are.
 */
export function reencryptSecrets(db: Db, from: SecretBox, to: SecretBox): { values: number } {
  const sqlite = db.$client;
  let values = 0;
  sqlite.transaction(() => {
    for (const c of SECRET_COLUMNS) {
      const page = sqlite.prepare(
        `SELECT "${c.idColumn}" AS id, "${c.column}" AS v FROM "${c.table}" WHERE ${c.where ? `(${c.where}) AND ` : ''}"${c.idColumn}" > ? ORDER BY "${c.idColumn}" LIMIT ${PAGE}`,
      );
      const update = sqlite.prepare(`UPDATE "${c.table}" SET "${c.column}" = ? WHERE "${c.idColumn}" = ?`);
      let after = '';
      for (;;) {
        const rows = page.all(after) as { id: string; v: string | null }[];
        for (const r of rows) {
          if (r.v === null) continue;
          const aad = secretAad(c.table, c.column, r.id);
          update.run(to.encrypt(from.decrypt(r.v, aad), aad), r.id);
          values++;
        }
        if (rows.length < PAGE) break;
        after = rows[rows.length - 1]!.id;
      }
    }
  }).immediate();
  return { values };
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
export function rotateKeyFile(db: Db, file: string, opts: { extraKeys?: readonly Buffer[]; onStep?: (step: RotationStep) => void; newKey?: () => Buffer } = {}): KeyFileRotation {
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
  const { values } = reencryptSecrets(db, from, to);
  opts.onStep?.('reencrypted');
  if (set.current && !set.current.equals(target)) writeKeyFile(`${file}.previous`, set.current);
  opts.onStep?.('previous_written');
  renameDurably(`${file}.next`, file);
  opts.onStep?.('swapped');
  return { values, from: keyId(current), to: keyId(target), resumed };
}
