import { existsSync, readFileSync } from 'node:fs';

/** Parses a compose-style .env (KEY=VALUE, # comments, optional quotes). */
export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i <= 0) continue;
    let v = line.slice(i + 1).trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[line.slice(0, i).trim()] = v;
  }
  return out;
}

export function readEnvFile(file: string): Record<string, string> {
  return existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
}

export interface EnvValues {
  readonly ENCLAVE_VERSION: string;
  readonly ENCLAVE_IMAGE: string;
  readonly ENCLAVE_HOSTNAME: string;
  readonly ENCLAVE_PUBLIC_URL: string;
  readonly ENCLAVE_HTTP_PORT: string;
  readonly ENCLAVE_HTTPS_PORT: string;
  readonly COMPOSE_PROFILES: string;
  readonly ENCLAVE_LOG_LEVEL: string;
  readonly ENCLAVE_ADMIN_CONTACT: string;
}

/** Non-secret settings for docker-compose.yml. Secrets never go here. */
export function renderEnv(v: EnvValues, extra: Record<string, string> = {}): string {
  const lines = [
    '# Written by installer/install.sh: re-run it to change these (it keeps other keys you add).',
    '# No secrets here: they are files in secrets/ (mode 0600).',
    ...Object.entries(v).map(([k, val]) => `${k}=${val}`),
    ...Object.entries(extra)
      .filter(([k]) => !(k in v))
      .map(([k, val]) => `${k}=${val}`),
  ];
  return lines.join('\n') + '\n';
}

export function publicUrl(hostname: string, httpsPort: number): string {
  const host = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  return httpsPort === 443 ? `https://${host}` : `https://${host}:${httpsPort}`;
}
