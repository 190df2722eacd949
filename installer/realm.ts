import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ensureDir, writeIfChanged, type FileChange } from './files.js';
import { GENERATED, OIDC_CLIENT_ID, REALM, releasePath } from './layout.js';
import { InstallerError } from './exec.js';

/**
 * Paths on the public URL that the server's SSO routes must serve (the SSO issue implements
 * them). Keycloak is served under /auth too, but the proxy sends only its own prefixes
 * (/auth/realms, /auth/resources, /auth/admin, /auth/js) to it, so these stay Enclave's.
 */
export const OIDC_PATHS = {
  callback: '/auth/oidc/callback',
  backchannelLogout: '/auth/oidc/backchannel-logout',
  postLogout: '/',
} as const;

/** Where the server is reachable from Keycloak inside the stack (back-channel logout). */
export const INTERNAL_SERVER_URL = 'http://server:8080';

export const REALM_TEMPLATE = releasePath('compose', 'keycloak', 'enclave-realm.json.tmpl');

export interface RealmInput {
  readonly publicUrl: string;
  readonly clientSecret: string;
  readonly adminEmail: string;
  readonly adminPassword: string;
}

/** The issuer the server pins for the bundled Keycloak (ENCLAVE_OIDC_ISSUER). */
export const issuerFor = (publicUrl: string): string => `${publicUrl}/auth/realms/${REALM}`;

/**
 * Renders the realm template: placeholders are replaced by JSON-escaped values, the result must
 * parse, and no `${...}` may remain (Keycloak would substitute environment variables there).
 */
export function renderRealm(input: RealmInput, template = readFileSync(REALM_TEMPLATE, 'utf8')): string {
  const values: Record<string, string> = {
    REALM,
    CLIENT_ID: OIDC_CLIENT_ID,
    CLIENT_SECRET: input.clientSecret,
    PUBLIC_URL: input.publicUrl,
    REDIRECT_URI: input.publicUrl + OIDC_PATHS.callback,
    POST_LOGOUT_REDIRECT_URI: input.publicUrl + OIDC_PATHS.postLogout,
    BACKCHANNEL_LOGOUT_URL: INTERNAL_SERVER_URL + OIDC_PATHS.backchannelLogout,
    ADMIN_USERNAME: input.adminEmail.split('@')[0]!.toLowerCase(),
    ADMIN_EMAIL: input.adminEmail,
    ADMIN_PASSWORD: input.adminPassword,
  };
  for (const [k, v] of Object.entries(values)) {
    if (v.includes('${')) throw new InstallerError(`realm value ${k} must not contain "\${"`);
  }
  const text = template.replace(/\$\{([A-Z_]+)\}/g, (m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new InstallerError(`realm template uses unknown placeholder ${m}`);
    return JSON.stringify(v).slice(1, -1);
  });
  if (text.includes('${')) throw new InstallerError('realm template still holds a ${...} placeholder after rendering');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InstallerError(`rendered realm is not valid JSON (${(e as Error).message})`);
  }
  return JSON.stringify(parsed, null, 2) + '\n';
}

/** Writes keycloak/import/enclave-realm.json (0600, readable by the Keycloak user only). */
export function ensureRealm(dir: string, input: RealmInput, chown: boolean): FileChange {
  ensureDir(path.join(dir, GENERATED.realmDir), 0o755);
  return writeIfChanged(path.join(dir, GENERATED.realm), renderRealm(input), { mode: 0o600, owner: 'keycloak', chown });
}
