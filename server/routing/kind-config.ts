import { z } from 'zod';
import type { SecretBox } from '../config/secret-box.js';
import { secretAad } from '../db/secret-columns.js';
import { AppError } from '../errors.js';
import type { EgressPolicy } from '../providers/egress.js';
import { KIND_SPECS, type KindField, type ProviderKind, type Settings } from '../providers/kinds.js';
import type { AdapterConfig } from '../providers/types.js';

/**
 * A deployment's kind-specific configuration (server/providers/kinds.ts declares each kind's
 * fields): validation of what an administrator sends, the merge of a patch into what is
 * stored, the derived base URL, and the AdapterConfig a stored row gives (decrypted secrets).
 */

/** The wire shape before the kind's own rules: values are checked per field by `resolveKindConfig`. */
export const settingsInputSchema = z.record(z.string().max(100), z.union([z.string().max(2000), z.boolean(), z.null()]));
export const credentialsInputSchema = z.record(z.string().max(100), z.union([z.string().min(1).max(64 * 1024), z.null()]));

const bad = (param: string, message: string): AppError => new AppError(400, 'invalid_request', `${param}: ${message}`, { param });

function checkValue(f: KindField, param: string, v: string | boolean): void {
  if (f.type === 'boolean') {
    if (typeof v !== 'boolean') throw bad(param, 'must be true or false');
    return;
  }
  if (typeof v !== 'string') throw bad(param, 'must be a string');
  if (f.maxLength !== undefined && v.length > f.maxLength) throw bad(param, `must be at most ${f.maxLength} characters`);
  if (f.pattern !== undefined && !new RegExp(f.pattern).test(v)) throw bad(param, `must be ${f.patternHint ?? `like ${f.pattern}`}`);
  if (f.type === 'url') {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw bad(param, 'must be a URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw bad(param, 'must be http(s)');
  }
}

export interface KindConfigInput {
  readonly kind: ProviderKind;
  /** What is stored now (update), or empty (create). */
  readonly settings: Settings;
  readonly credentials: Readonly<Record<string, string>>;
  /** The patch: a null value removes a field. */
  readonly settingsPatch?: Readonly<Record<string, string | boolean | null>> | undefined;
  readonly credentialsPatch?: Readonly<Record<string, string | null>> | undefined;
  readonly baseUrl: string | undefined;
  readonly hasApiKey: boolean;
  readonly region: string | null;
}

export interface KindConfig {
  readonly settings: Settings;
  readonly credentials: Readonly<Record<string, string>>;
  readonly baseUrl: string;
  /** Other URLs the adapter will connect to (token endpoints), for the egress check. */
  readonly extraUrls: readonly string[];
}

/** Validates and merges a kind's configuration; a 400 naming the field for anything wrong. */
export function resolveKindConfig(i: KindConfigInput): KindConfig {
  const spec = KIND_SPECS[i.kind];
  const byKey = new Map(spec.fields.map((f) => [f.key, f]));
  const known = (secret: boolean): string => spec.fields.filter((f) => !!f.secret === secret).map((f) => f.key).join(', ') || 'none';
  const settings: Record<string, string | boolean> = { ...i.settings };
  for (const [k, v] of Object.entries(i.settingsPatch ?? {})) {
    const f = byKey.get(k);
    const param = `settings.${k}`;
    if (!f) throw bad(param, `kind ${i.kind} has no such setting (settings: ${known(false)})`);
    if (f.secret) throw bad(param, 'is a secret: send it in credentials');
    if (v === null || v === '') delete settings[k];
    else {
      checkValue(f, param, v);
      settings[k] = v;
    }
  }
  const credentials: Record<string, string> = { ...i.credentials };
  for (const [k, v] of Object.entries(i.credentialsPatch ?? {})) {
    const f = byKey.get(k);
    const param = `credentials.${k}`;
    if (!f) throw bad(param, `kind ${i.kind} has no such credential (credentials: ${known(true)})`);
    if (!f.secret) throw bad(param, 'is not a secret: send it in settings');
    if (v === null) delete credentials[k];
    else {
      checkValue(f, param, v);
      credentials[k] = v;
    }
  }
  for (const f of spec.fields) {
    if (f.required && (f.secret ? credentials[f.key] === undefined : settings[f.key] === undefined)) {
      throw bad(`${f.secret ? 'credentials' : 'settings'}.${f.key}`, `is required for kind ${i.kind}`);
    }
  }
  if (spec.regionRequired && !i.region) throw bad('region', `is required for kind ${i.kind} (it is part of the endpoint)`);
  if (spec.apiKey === 'none' && i.hasApiKey) throw bad('api_key', `kind ${i.kind} takes no api_key (use its credentials)`);
  if (spec.apiKey === 'required' && !i.hasApiKey) throw bad('api_key', `is required for kind ${i.kind}`);
  const why = spec.check?.({ settings, credentials: Object.keys(credentials), hasApiKey: i.hasApiKey, region: i.region });
  if (why) throw bad('credentials', why);
  const baseUrl = i.baseUrl ?? spec.defaultBaseUrl?.(settings, i.region);
  if (baseUrl === undefined) {
    const from = spec.fields.find((f) => f.key === 'resource');
    throw bad('base_url', `is required for kind ${i.kind}${from ? ` (or set settings.${from.key})` : ''}`);
  }
  const extraUrls = spec.extraUrls?.(settings) ?? [];
  return { settings, credentials, baseUrl, extraUrls };
}

/** A stored row's columns that make up its adapter's configuration. */
export interface StoredProviderRow {
  readonly id: string;
  readonly kind: ProviderKind;
  readonly baseUrl: string;
  readonly apiKey: string | null;
  readonly region: string | null;
  readonly settings: string;
  readonly credentials: string | null;
  readonly tenantRef: string | null;
}

export function storedSettings(json: string): Settings {
  try {
    const v = JSON.parse(json) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Settings) : {};
  } catch {
    return {};
  }
}

/** Decrypts a row's credentials (`{}` when none); throws when the ciphertext does not open. */
export function storedCredentials(secrets: SecretBox, r: Pick<StoredProviderRow, 'id' | 'credentials'>): Record<string, string> {
  if (r.credentials === null) return {};
  return JSON.parse(secrets.decrypt(r.credentials, secretAad('provider_deployments', 'credentials', r.id))) as Record<string, string>;
}

export function encryptCredentials(secrets: SecretBox, id: string, c: Readonly<Record<string, string>>): string | null {
  return Object.keys(c).length ? secrets.encrypt(JSON.stringify(c), secretAad('provider_deployments', 'credentials', id)) : null;
}

/**
 * The adapter configuration of a stored row. A secret that no longer decrypts (a master key
 * rotated without it) leaves the credential out: calls then fail as unauthorised, which is
 * what `providers test` shows, instead of the whole catalogue failing to load.
 */
export function adapterConfigOf(r: StoredProviderRow, secrets: SecretBox, tenantEgress: EgressPolicy): AdapterConfig {
  let apiKey: string | undefined;
  if (r.apiKey) {
    try {
      apiKey = secrets.decrypt(r.apiKey, secretAad('provider_deployments', 'api_key', r.id));
    } catch {
      apiKey = undefined;
    }
  }
  let credentials: Record<string, string> = {};
  try {
    credentials = storedCredentials(secrets, r);
  } catch {
    credentials = {};
  }
  return { baseUrl: r.baseUrl, apiKey, egress: r.tenantRef !== null ? tenantEgress : undefined, settings: storedSettings(r.settings), credentials, region: r.region };
}

/** Every secret value of a configuration, for scrubbing them out of any text shown to an administrator. */
export function secretValues(c: AdapterConfig): string[] {
  return [c.apiKey, ...Object.values(c.credentials ?? {})].filter((v): v is string => typeof v === 'string' && v.length >= 4);
}
