import { DETECTORS } from '../routing/content.js';
import type { Metrics } from './registry.js';

/**
 * Closed label vocabularies, and the series pre-exported at zero from them (ops.md §4.1:
 * "absent ≠ zero" — a rate() over a series that appears only with the first event misses
 * that event, and an alert on it cannot tell "none" from "not scraped").
 * Series labelled by admin-configured names (deployments) are initialised by their owners.
 */
export const LICENSE_STATES = ['unlicensed', 'valid', 'expiring', 'grace', 'lapsed', 'invalid'] as const;

/** What services.license.metrics() returns (license/service.ts). */
export interface LicenseMetricsSource {
  expiryTimestampSeconds: number | null;
  state: string;
  seatsUsed: number;
  seatsLimit: number | null;
}

/** The auth_* codes a refusal can carry (server/identity, server/keys, server/metrics/routes.ts); anything else is "other". */
export const AUTH_FAILURE_REASONS = [
  'auth_required',
  'auth_invalid_header',
  'auth_invalid_credentials',
  'auth_locked',
  'auth_session_invalid',
  'auth_session_expired',
  'auth_key_malformed',
  'auth_key_checksum',
  'auth_key_invalid',
  'auth_key_revoked',
  'auth_key_expired',
  'auth_key_owner_inactive',
  'auth_metrics_token',
  'other',
] as const;

export function authFailureReason(code: string): (typeof AUTH_FAILURE_REASONS)[number] {
  return (AUTH_FAILURE_REASONS as readonly string[]).includes(code) ? (code as (typeof AUTH_FAILURE_REASONS)[number]) : 'other';
}

/**
 * Outcomes of local password sign-ins (server/identity/sessions.ts), in
 * enclave_auth_logins_total{method="local"}: `success` and `other` as for OIDC
 * (server/sso/service.ts LOGIN_OUTCOMES), `not_permitted` as for OIDC (deactivated user,
 * single sign-on required), plus the two that only passwords have.
 */
export const LOCAL_LOGIN_OUTCOMES = ['success', 'invalid_credentials', 'locked', 'not_permitted', 'other'] as const;
export type LocalLoginOutcome = (typeof LOCAL_LOGIN_OUTCOMES)[number];

/**
 * enclave_audit_events_total{category}: the first segment of the audit action (`auth.login`
 * → `auth`); permission checks denied by authorize() (`models:invoke`, `keys:write` …) are
 * `access`; anything else is `other`, so the label stays a closed list.
 */
export const AUDIT_CATEGORIES = [
  'access',
  'auth',
  'sso',
  'key',
  'user',
  'membership',
  'tenant',
  'plan',
  'price',
  'limits',
  'quota',
  'license',
  'providers',
  'gateway',
  'chat',
  'jobs',
  'other',
] as const;
export const AUDIT_OUTCOMES = ['allowed', 'denied'] as const;

export function auditCategory(action: string): (typeof AUDIT_CATEGORIES)[number] {
  if (action.includes(':')) return 'access';
  const first = action.split('.', 1)[0]!;
  return (AUDIT_CATEGORIES as readonly string[]).includes(first) ? (first as (typeof AUDIT_CATEGORIES)[number]) : 'other';
}

const ENDPOINTS = ['chat', 'embeddings'] as const;
const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
const CONTENT_ACTIONS = ['allow', 'redact', 'route_local', 'block'] as const;
const LEVELS = ['key', 'user', 'tenant', 'licence'] as const;

/** Admission limits (server/metering/limits.ts ADMISSION_LIMITS). */
const ADMISSION_LIMITS = ['requests_per_minute', 'tokens_per_minute', 'concurrent_requests', 'monthly_tokens', 'monthly_cost_micros'] as const;

/**
 * Zero series for other issues' instruments, by metric name (so this file does not depend on
 * which of them are registered yet): label values in label-name order.
 */
const BY_NAME: Record<string, readonly (readonly string[])[]> = {
  enclave_quota_refusals_total: LEVELS.flatMap((l) => ADMISSION_LIMITS.map((x) => [l, x])),
  enclave_ratelimit_admissions_total: [['redis'], ['lease'], ['memory']],
  enclave_ratelimit_redis_unavailable_total: [['fail_open'], ['refused']],
  enclave_gateway_fallbacks_total: ENDPOINTS.map((e) => [e]),
  enclave_gateway_policy_decisions_total: CLASSIFICATIONS.flatMap((c) => CONTENT_ACTIONS.map((a) => [c, a])),
  enclave_gateway_content_rule_hits_total: DETECTORS.map((d) => [d]),
  // the default soft-limit thresholds (server/metering/plans.ts); tenant-set thresholds appear when crossed
  enclave_quota_alerts_total: ['monthly_tokens', 'monthly_cost_micros'].flatMap((l) => ['80', '100'].map((t) => [l, t])),
  // OIDC failure classes appear with the first failure (server/sso); local sign-ins are a closed list
  enclave_auth_logins_total: [['oidc', 'success'], ...LOCAL_LOGIN_OUTCOMES.map((o) => ['local', o])],
  enclave_audit_events_total: AUDIT_CATEGORIES.flatMap((c) => AUDIT_OUTCOMES.map((o) => [c, o])),
};

interface Labelled {
  labels(...values: string[]): { inc?(n: number): void; set?(n: number): void };
}

export function initKnownSeries(m: Metrics): void {
  for (const r of AUTH_FAILURE_REASONS) m.authFailures.labels(r).inc(0);
  for (const s of LICENSE_STATES) m.licenseState.labels(s).set(0);
  for (const [name, sets] of Object.entries(BY_NAME)) {
    const metric = m.registry.getSingleMetric(name) as unknown as Labelled | undefined;
    if (!metric) continue;
    for (const values of sets) {
      const child = metric.labels(...values);
      if (child.inc) child.inc(0);
      else child.set?.(0);
    }
  }
}
