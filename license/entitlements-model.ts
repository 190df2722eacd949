import type { Boundary } from './payload.js';

/**
 * Capabilities Enclave knows. A licence turns on the ones it lists; anything a licence
 * lists that this build does not know is ignored, and anything not listed is off.
 */
export const KNOWN_CAPABILITIES = [
  'sso.oidc',
  'sso.saml',
  'scim',
  'multi_tenant',
  'rag',
  'finetune',
  'routing.policies',
  'pii.redaction',
  'audit.export',
  'usage.export',
  'providers.ollama',
  'providers.openai_compatible',
] as const;

/**
 * The safety floor: never gated by any licence state (unlicensed, lapsed, invalid …).
 * hasFeature() answers true for these whatever the licence says, so a billing problem can
 * never lock anyone out, hide data, stop compliance jobs or block the fix.
 */
export const SAFETY_FLOOR = [
  'login.local',
  'login.sso',
  'data.read',
  'data.export',
  'backup',
  'restore',
  'audit',
  'retention',
  'user.deactivate',
  'user.delete',
  'license.manage',
  'license.status',
  'cluster.membership',
] as const;

const FLOOR = new Set<string>(SAFETY_FLOOR);
export function isSafetyFloor(feature: string): boolean {
  return FLOOR.has(feature);
}

/** What an installation without a (valid) licence gets: every feature, 1 tenant, 5 seats, local and private providers. */
export const COMMUNITY = {
  plan: 'community',
  capabilities: [...KNOWN_CAPABILITIES] as string[],
  limits: {
    seats: 5,
    tenants: 1,
    keys: null as number | null,
    tokensMonth: null as { max: number; mode: 'soft' | 'hard' } | null,
    boundaries: ['local', 'private'] as Boundary[],
  },
} as const;
