import path from 'node:path';
import { PACKAGE_ROOT, APP_VERSION } from '../server/paths.js';

/** Where the shipped files come from: the release tree (repository checkout or bundle). */
export const RELEASE_ROOT = PACKAGE_ROOT;
export const RELEASE_VERSION = APP_VERSION;

export const DEFAULT_INSTALL_DIR = '/opt/enclave';
export const REALM = 'enclave';
export const OIDC_CLIENT_ID = 'enclave';
export const DEFAULT_IMAGE = 'enclave/enclave';

/** Container users that read installer-written files (chowned when the installer runs as root). */
export const UID = { root: 0, enclave: 10001, keycloak: 1000, grafana: 472, nginx: 101, prometheus: 65534 } as const;
/** prometheus (user nobody) gets the enclave group: a 0640 file of it is read by both (the metrics token). */
export const GID = { root: 0, enclave: 10001, keycloak: 0, grafana: 0, nginx: 101, prometheus: 10001 } as const;
export type Owner = keyof typeof UID;

/**
 * Shipped files copied from the release tree into the install dir (release path → install
 * path). docker-compose.yml refers to the install paths; the compose test resolves every
 * bind mount through this table.
 */
export const SHIPPED: readonly { from: string; to: string }[] = [
  { from: 'compose/docker-compose.yml', to: 'docker-compose.yml' },
  // The optional high-availability override (docs/install-kubernetes.md, "docker compose ha"); never started by the installer.
  { from: 'compose/docker-compose.ha.yml', to: 'docker-compose.ha.yml' },
  { from: 'compose/proxy', to: 'proxy' },
  { from: 'compose/prometheus', to: 'prometheus' },
  { from: 'grafana/provisioning', to: 'grafana/provisioning' },
  { from: 'grafana/dashboards', to: 'grafana/dashboards' },
];

/** Files the installer generates in the install dir (not shipped). */
export const GENERATED = {
  env: '.env',
  secretsDir: 'secrets',
  tlsDir: 'tls',
  caKey: 'tls/ca.key',
  caCert: 'tls/ca.crt',
  serverKey: 'tls/server.key',
  serverCert: 'tls/server.crt',
  realmDir: 'keycloak/import',
  realm: 'keycloak/import/enclave-realm.json',
  backupsDir: 'backups',
} as const;

/** External volumes (created by the installer; `docker compose down -v` cannot delete them). */
export const VOLUMES = [
  'enclave_data',
  'enclave_redis',
  'enclave_keycloak_db',
  'enclave_prometheus',
  'enclave_grafana',
  'enclave_ollama',
] as const;

export const COMPOSE_PROJECT = 'enclave';

export function releasePath(...p: string[]): string {
  return path.join(RELEASE_ROOT, ...p);
}
