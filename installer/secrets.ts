import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { applyMode, ensureDir, writeIfChanged, type FileChange } from './files.js';
import { GENERATED, type Owner } from './layout.js';
import { InstallerError } from './exec.js';

export interface SecretSpec {
  readonly name: string;
  readonly description: string;
  /** Container user that reads it through compose `secrets:` (a bind mount of the file). */
  readonly owner: Owner;
  /** File mode; default 0600 (one reader). */
  readonly mode?: number;
  readonly generate: () => string;
}

const token = (bytes: number) => (): string => randomBytes(bytes).toString('base64url');

/** Every secret the stack needs; one value per file in secrets/, mode 0600. */
export const SECRET_SPECS: readonly SecretSpec[] = [
  {
    name: 'master_key',
    description: 'AES-256-GCM master key for secrets at rest (ENCLAVE_MASTER_KEY_FILE)',
    owner: 'enclave',
    generate: () => randomBytes(32).toString('base64'),
  },
  { name: 'oidc_client_secret', description: 'client secret of the "enclave" client in the Keycloak realm', owner: 'enclave', generate: token(32) },
  // Read by the Postgres entrypoint (as root, before it drops privileges) and by Keycloak.
  { name: 'postgres_password', description: 'password of the keycloak database user', owner: 'keycloak', generate: token(24) },
  { name: 'keycloak_admin_password', description: 'Keycloak bootstrap admin ("admin", master realm)', owner: 'keycloak', generate: token(18) },
  { name: 'grafana_admin_password', description: 'Grafana "admin" password', owner: 'grafana', generate: token(18) },
  // Bearer token of /metrics (ENCLAVE_METRICS_TOKEN_FILE in server and worker), sent by Prometheus
  // as authorization credentials_file: owned by Prometheus' user, readable by the enclave group.
  { name: 'metrics_token', description: 'bearer token Prometheus sends to the Enclave /metrics endpoints', owner: 'prometheus', mode: 0o640, generate: token(32) },
  // For the operator only (never mounted): the first Enclave admin's initial SSO password.
  { name: 'first_admin_password', description: 'first Enclave admin, temporary password (changed at first login)', owner: 'root', generate: token(12) },
];

export type Secrets = Record<string, string>;

/**
 * Creates the secrets that do not exist yet and never overwrites one that does (an existing
 * master key encrypts data; replacing it would make that data unreadable).
 */
export function ensureSecrets(dir: string, chown: boolean): { secrets: Secrets; changes: FileChange[] } {
  const sdir = path.join(dir, GENERATED.secretsDir);
  ensureDir(sdir, 0o700);
  const secrets: Secrets = {};
  const changes: FileChange[] = [];
  for (const spec of SECRET_SPECS) {
    const file = path.join(sdir, spec.name);
    const opts = { mode: spec.mode ?? 0o600, owner: spec.owner, chown };
    if (existsSync(file)) {
      const value = readFileSync(file, 'utf8').trim();
      if (!value) throw new InstallerError(`${file} is empty; delete it to generate a new ${spec.description}, or restore it from your secrets backup`);
      applyMode(file, opts);
      secrets[spec.name] = value;
      changes.push({ path: file, action: 'kept' });
    } else {
      const value = spec.generate();
      changes.push(writeIfChanged(file, value + '\n', opts));
      secrets[spec.name] = value;
    }
  }
  if (Buffer.from(secrets.master_key!, 'base64').length !== 32) {
    throw new InstallerError(`${path.join(sdir, 'master_key')} is not a base64 32-byte key; restore the right one from your secrets backup`);
  }
  return { secrets, changes };
}
