import type { Db } from '../db/connection.js';
import { SECRET_COLUMNS, secretAad } from '../db/secret-columns.js';
import type { SecretBox } from './secret-box.js';

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
