import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { releasePath } from './layout.js';

/** The parts of a compose service the installer and its tests look at. */
export interface ComposeService {
  image?: string;
  profiles?: string[];
  environment?: Record<string, string> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition: string; restart?: boolean }>;
  restart?: string;
  volumes?: (string | { type: string; source: string; target: string })[];
  secrets?: (string | { source: string })[];
  ports?: string[];
  expose?: string[];
  read_only?: boolean;
  security_opt?: string[];
  deploy?: {
    resources?: {
      limits?: { cpus?: string; memory?: string };
      reservations?: { devices?: { driver?: string; count?: string | number; device_ids?: string[]; capabilities?: string[] }[] };
    };
  };
  networks?: string[] | Record<string, { aliases?: string[] } | null>;
  command?: string[] | string;
  [k: string]: unknown;
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, { external?: boolean } | null>;
  secrets?: Record<string, { file?: string }>;
  networks?: Record<string, unknown>;
}

export const COMPOSE_FILE = releasePath('compose', 'docker-compose.yml');

/**
 * Compose-style interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$ → $.
 * A required variable that is unset throws, as `docker compose` would.
 */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^}])*))?\}/g, (m, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (m === '$$') return '$';
    const v = env[name!];
    const unsetOrEmpty = v === undefined || v === '';
    if (op === ':-') return unsetOrEmpty ? arg ?? '' : v!;
    if (op === '-') return v === undefined ? arg ?? '' : v;
    if (op === ':?' || op === '?') {
      if (op === ':?' ? unsetOrEmpty : v === undefined) throw new Error(`required variable ${name} is missing: ${arg ?? ''}`);
      return v!;
    }
    return v ?? '';
  });
}

/** Parses the compose file with YAML merge keys (<<) resolved, after interpolation. */
export function loadCompose(env: Record<string, string | undefined>, file = COMPOSE_FILE): ComposeFile {
  return parse(interpolate(readFileSync(file, 'utf8'), env), { merge: true }) as ComposeFile;
}

/** Every image the stack uses, all profiles included (what an air-gapped bundle must carry). */
export function composeImages(compose: ComposeFile): string[] {
  return [...new Set(Object.values(compose.services).map((s) => s.image).filter((i): i is string => !!i))].sort();
}
