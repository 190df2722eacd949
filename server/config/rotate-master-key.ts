import type { Db } from '../db/connection.js';
import { SECRET_COLUMNS, secretAad } from '../db/secret-columns.js';
import type { SecretBox } from './secret-box.js';

/**
 * Re-encrypts every registered secret column from the old keyring to the new key in one
 * transaction: either every value moves to the new key or none does.
 */
export function reencryptSecrets(db: Db, from: SecretBox, to: SecretBox): { values: number } {
  const sqlite = db.$client;
  let values = 0;
  sqlite.transaction(() => {
    for (const c of SECRET_COLUMNS) {
      const rows = sqlite
        .prepare(`SELECT "${c.idColumn}" AS id, "${c.column}" AS v FROM "${c.table}"${c.where ? ` WHERE ${c.where}` : ''}`)
        .all() as { id: string; v: string | null }[];
      const update = sqlite.prepare(`UPDATE "${c.table}" SET "${c.column}" = ? WHERE "${c.idColumn}" = ?`);
      for (const r of rows) {
        if (r.v === null) continue;
        const aad = secretAad(c.table, c.column, r.id);
        update.run(to.encrypt(from.decrypt(r.v, aad), aad), r.id);
        values++;
      }
    }
  }).immediate();
  return { values };
}
