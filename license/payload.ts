import { z } from 'zod';

/**
 * The licence payload, version 1. Unknown fields are ignored (newer issuers may add some);
 * unknown capabilities are off. Times: `iat`/`nbf` are NumericDate (seconds, as in JWT),
 * term dates are ISO 8601 so customers can read them. An absent limit means unlimited.
 */
export const DEPLOYMENT_MODES = ['managed', 'customer_cloud', 'on_prem', 'byoc', 'air_gapped'] as const;
export const BOUNDARIES = ['local', 'private', 'public'] as const;
export type DeploymentMode = (typeof DEPLOYMENT_MODES)[number];
export type Boundary = (typeof BOUNDARIES)[number];
export type LicenseEnvironment = 'production' | 'non_production';

const count = z.number().int().min(0);
const isoDate = z.iso.datetime({ offset: true });

export const licensePayloadSchema = z.object({
  v: z.literal(1),
  lid: z.string().regex(/^lic_[A-Za-z0-9_-]{3,64}$/, 'lid must look like lic_…'),
  seq: z.number().int().min(1),
  iss: z.string().min(1).max(200),
  iat: z.number().int().min(0),
  nbf: z.number().int().min(0),
  sub: z.object({ customer_id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), name: z.string().min(1).max(200) }),
  aud: z.object({
    product: z.string(),
    installation: z.string().min(1).max(100),
    environment: z.enum(['production', 'non_production']),
  }),
  deployment: z.object({ modes: z.array(z.enum(DEPLOYMENT_MODES)).min(1) }),
  plan: z.string().min(1).max(100),
  capabilities: z.array(z.string().regex(/^[a-z0-9_]+(\.[a-z0-9_]+)*$/)).max(200),
  limits: z.object({
    seats: z.object({ max: count, tolerance_pct: z.number().int().min(0).max(100).default(0) }).optional(),
    tenants: z.object({ max: count }).optional(),
    keys: z.object({ max: count }).optional(),
    tokens_month: z.object({ max: count, mode: z.enum(['soft', 'hard']), lapsed_max: count }).optional(),
    boundaries: z.array(z.enum(BOUNDARIES)).optional(),
    models: z.object({ max: count }).optional(),
    gpus: z.object({ max: count }).optional(),
  }),
  term: z.object({
    expires_at: isoDate,
    grace_days: z.number().int().min(0).max(365),
    updates_until: isoDate.optional(),
  }),
  reporting: z.object({ channel: z.enum(['file', 'online']), interval_days: z.number().int().min(1).max(366) }).optional(),
});

export type LicensePayload = z.infer<typeof licensePayloadSchema>;
export type LicensePayloadInput = z.input<typeof licensePayloadSchema>;
