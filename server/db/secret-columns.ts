/**
 * Every column that holds a SecretBox ciphertext. Master-key rotation walks this list,
 * so a new secret column is registered here when its table is added. The AAD of each
 * value is `<table>.<column>:<row id>` (see secretAad).
 */
export interface SecretColumn {
  readonly table: string;
  readonly idColumn: string;
  readonly column: string;
  /**
   * SQL condition selecting the rows whose column is encrypted; valid on both dialects (a flag is
   * a boolean on PostgreSQL and 0/1 on SQLite, so it is tested bare, never with `= 1`).
   */
  readonly where?: string;
  /**
   * `content`: customer data (prompts and completions), encrypted like a secret and
   * re-encrypted by rotation, but not a credential: the support bundle does not decrypt
   * these to scan its files for them (it never reads rows), and there may be many large rows.
   */
  readonly kind?: 'content';
}

export const SECRET_COLUMNS: readonly SecretColumn[] = [
  { table: 'settings', idColumn: 'key', column: 'value', where: 'secret' },
  { table: 'provider_deployments', idColumn: 'id', column: 'api_key', where: 'api_key IS NOT NULL' },
  { table: 'provider_deployments', idColumn: 'id', column: 'credentials', where: 'credentials IS NOT NULL' },
  { table: 'sso_idps', idColumn: 'id', column: 'client_secret' },
  { table: 'sso_sessions', idColumn: 'session_id', column: 'id_token', where: 'id_token IS NOT NULL' },
  { table: 'metering_settings', idColumn: 'tenant_id', column: 'webhook_secret', where: 'webhook_secret IS NOT NULL' },
  { table: 'siem_sinks', idColumn: 'id', column: 'secret', where: 'secret IS NOT NULL' },
  { table: 'call_contents', idColumn: 'id', column: 'content', kind: 'content' },
  { table: 'stored_responses', idColumn: 'id', column: 'content', kind: 'content' },
];

export function secretAad(table: string, column: string, id: string): string {
  return `${table}.${column}:${id}`;
}
