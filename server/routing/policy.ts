import { z } from 'zod';
import type { Classification } from '../context.js';
import { AppError } from '../errors.js';
import type { Boundary } from '../providers/types.js';
import { ContentScanner, DETECTORS, tenantPatternError, type ContentAction, type Detector } from './content.js';

/**
 * The per-tenant data-boundary policy (tenant setting `gateway.policy`, JSON):
 * classification → allowed boundaries (and optional regions); content rules (detector →
 * action per classification); per-key classification floors. Missing fields take the
 * defaults below (DESIGN.md §5). Content logging is a setting of its own
 * (`gateway.content_logging`, server/gateway/content-log.ts) compiled into the same object,
 * so the call path reads both from one cache entry.
 */
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export const BOUNDARIES = ['local', 'private', 'public'] as const;
export const CLASS_RANK: Record<Classification, number> = { public: 0, internal: 1, confidential: 2, restricted: 3 };

const classification = z.enum(CLASSIFICATIONS);
const boundary = z.enum(BOUNDARIES);
const action = z.enum(['allow', 'redact', 'route_local', 'block']);
const detectorActions = z.partialRecord(z.enum(DETECTORS), action);

export const policySchema = z
  .object({
    boundaries: z.partialRecord(classification, z.array(boundary)).optional(),
    /** Allowed region labels per classification; absent = any region. */
    regions: z.partialRecord(classification, z.array(z.string().min(1))).optional(),
    content: z
      .object({
        /** Detector → action, per classification (falls back to `default`). */
        actions: z.partialRecord(classification, detectorActions).optional(),
        default: detectorActions.optional(),
        nationalIdPatterns: z
          .array(
            z.object({
              name: z.string().min(1).max(64),
              // Compiled with RE2 (linear-time matching, server/routing/content.ts): a pattern it
              // cannot compile — backreferences, lookaround — is refused here, at save time.
              pattern: z
                .string()
                .min(1)
                .max(500)
                .superRefine((p, ctx) => {
                  const why = tenantPatternError(p);
                  if (why) ctx.addIssue({ code: 'custom', message: `RE2 cannot compile this pattern (${why}); backreferences and lookaround are not supported` });
                }),
            }),
          )
          .max(20)
          .optional(),
      })
      .strict()
      .optional(),
    /** Classification floor per API key id (the key's default; the header can only raise it). */
    keyFloors: z.record(z.string(), classification).optional(),
    defaultClassification: classification.optional(),
    /**
     * Obsolete: accepted only so that policies stored before content logging became its own
     * setting still parse (a strict parse failure would make the policy local-only). Ignored;
     * the policy API refuses `true` and drops it on write.
     */
    contentLogging: z.boolean().optional(),
  })
  .strict();
export type PolicyInput = z.infer<typeof policySchema>;

export const DEFAULT_BOUNDARIES: Readonly<Record<Classification, readonly Boundary[]>> = {
  public: ['local', 'private', 'public'],
  internal: ['local', 'private', 'public'],
  confidential: ['local', 'private'],
  restricted: ['local'],
};

/** Default content actions: secrets never leave in clear text; personal data is redacted from confidential data. */
export const DEFAULT_ACTIONS: Readonly<Record<Classification, Readonly<Record<Detector, ContentAction>>>> = {
  public: { email: 'allow', phone: 'allow', iban: 'allow', card: 'redact', national_id: 'allow', secret: 'redact' },
  internal: { email: 'allow', phone: 'allow', iban: 'redact', card: 'redact', national_id: 'redact', secret: 'redact' },
  confidential: { email: 'redact', phone: 'redact', iban: 'redact', card: 'redact', national_id: 'redact', secret: 'redact' },
  restricted: { email: 'allow', phone: 'allow', iban: 'allow', card: 'allow', national_id: 'allow', secret: 'redact' },
};

/** Content logging as the call path sees it (null = off): how long a stored call is kept. */
export interface ContentLoggingOn {
  readonly retentionDays: number;
}

/** A compiled policy: lookups are plain property reads on the hot path. */
export class TenantPolicy {
  readonly boundaries: Readonly<Record<Classification, ReadonlySet<Boundary>>>;
  readonly regions: Partial<Record<Classification, ReadonlySet<string>>>;
  readonly actions: Readonly<Record<Classification, Readonly<Record<Detector, ContentAction>>>>;
  /** Detectors whose action is not `allow`, per classification (nothing to scan otherwise). */
  readonly active: Readonly<Record<Classification, ReadonlySet<Detector>>>;
  readonly scanner: ContentScanner;
  readonly keyFloors: Readonly<Record<string, Classification>>;
  readonly defaultClassification: Classification | undefined;
  /** The tenant's content logging when enabled, else null: one property read per call. */
  readonly contentLogging: ContentLoggingOn | null;

  constructor(
    readonly input: PolicyInput = {},
    contentLogging: ContentLoggingOn | null = null,
  ) {
    const b = {} as Record<Classification, ReadonlySet<Boundary>>;
    const a = {} as Record<Classification, Record<Detector, ContentAction>>;
    const act = {} as Record<Classification, ReadonlySet<Detector>>;
    const regions: Partial<Record<Classification, ReadonlySet<string>>> = {};
    for (const c of CLASSIFICATIONS) {
      b[c] = new Set(input.boundaries?.[c] ?? DEFAULT_BOUNDARIES[c]);
      a[c] = { ...DEFAULT_ACTIONS[c], ...input.content?.default, ...input.content?.actions?.[c] };
      act[c] = new Set(DETECTORS.filter((d) => a[c][d] !== 'allow'));
      const r = input.regions?.[c];
      if (r) regions[c] = new Set(r);
    }
    this.boundaries = b;
    this.actions = a;
    this.active = act;
    this.regions = regions;
    this.scanner = new ContentScanner(input.content?.nationalIdPatterns ?? []);
    this.keyFloors = input.keyFloors ?? {};
    this.defaultClassification = input.defaultClassification;
    this.contentLogging = contentLogging;
  }

  allows(c: Classification, boundary: Boundary, region: string | null): boolean {
    if (!this.boundaries[c].has(boundary)) return false;
    const r = this.regions[c];
    return !r || (region !== null && r.has(region));
  }
}

export function parsePolicy(json: string | undefined, contentLogging: ContentLoggingOn | null = null): TenantPolicy {
  if (!json) return new TenantPolicy({}, contentLogging);
  try {
    return new TenantPolicy(policySchema.parse(JSON.parse(json)), contentLogging);
  } catch {
    // A stored policy that no longer parses falls back to the strictest reading: local only.
    return new TenantPolicy({ boundaries: { public: ['local'], internal: ['local'], confidential: ['local'], restricted: ['local'] } }, contentLogging);
  }
}

/**
 * The classification of a request: the key's floor (policy.keyFloors, else the tenant's
 * default), raised by the `X-Enclave-Classification` header, never lowered below the floor.
 */
export function resolveClassification(
  header: string | undefined,
  floor: Classification,
): { classification: Classification; requested?: Classification; clamped: boolean } {
  if (header === undefined || header === '') return { classification: floor, clamped: false };
  const h = header.trim().toLowerCase();
  if (!(CLASSIFICATIONS as readonly string[]).includes(h)) {
    throw new AppError(400, 'invalid_classification', `X-Enclave-Classification must be one of ${CLASSIFICATIONS.join(', ')}.`, {
      param: 'X-Enclave-Classification',
    });
  }
  const requested = h as Classification;
  if (CLASS_RANK[requested] < CLASS_RANK[floor]) return { classification: floor, requested, clamped: true };
  return { classification: requested, requested, clamped: false };
}

export function strongestAction(hits: Partial<Record<Detector, number>>, actions: Readonly<Record<Detector, ContentAction>>): ContentAction {
  let best: ContentAction = 'allow';
  const rank = { allow: 0, redact: 1, route_local: 2, block: 3 } as const;
  for (const d of Object.keys(hits) as Detector[]) if (rank[actions[d]] > rank[best]) best = actions[d];
  return best;
}
