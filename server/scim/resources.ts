import { z } from 'zod';
import { ScimError } from './errors.js';
import { canonicalize, ENTERPRISE_USER } from './patch.js';

/**
 * The SCIM resources Enclave serves and the validation every write goes through (POST, PUT,
 * and the result of a PATCH): RFC 7643's User (core + enterprise extension) and Group.
 * Unknown attributes are dropped, `password` is never stored, booleans also arrive as the
 * strings "True"/"False" (Entra ID).
 */
export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const boolish = z.preprocess((v) => (typeof v === 'string' && /^(true|false)$/i.test(v.trim()) ? v.trim().toLowerCase() === 'true' : v), z.boolean());
const str = (max: number) => z.string().max(max);
const opt = (max: number) => str(max).nullish();

const multi = z.object({ value: opt(254), type: opt(50), primary: boolish.optional(), display: opt(200) });
const address = z.object({
  formatted: opt(500),
  streetAddress: opt(200),
  locality: opt(100),
  region: opt(100),
  postalCode: opt(40),
  country: opt(100),
  type: opt(50),
  primary: boolish.optional(),
});

export const userInput = z.object({
  userName: z.string().trim().min(1).max(254),
  externalId: opt(256),
  name: z
    .object({ formatted: opt(300), familyName: opt(100), givenName: opt(100), middleName: opt(100), honorificPrefix: opt(50), honorificSuffix: opt(50) })
    .nullish(),
  displayName: opt(200),
  nickName: opt(100),
  title: opt(200),
  userType: opt(100),
  preferredLanguage: opt(50),
  locale: opt(50),
  timezone: opt(60),
  active: boolish.default(true),
  emails: z.array(multi).max(20).nullish(),
  phoneNumbers: z.array(multi).max(20).nullish(),
  addresses: z.array(address).max(10).nullish(),
  [ENTERPRISE_USER]: z
    .object({
      employeeNumber: opt(100),
      costCenter: opt(100),
      organization: opt(200),
      division: opt(200),
      department: opt(200),
      manager: z.union([z.object({ value: opt(256), displayName: opt(200), $ref: opt(500) }), str(256)]).nullish(),
    })
    .nullish(),
});
export type UserInput = z.output<typeof userInput>;

export const groupInput = z.object({
  displayName: z.string().trim().min(1).max(256),
  externalId: opt(256),
  members: z
    .array(z.object({ value: z.string().min(1).max(64), display: opt(256), $ref: opt(500), type: opt(20) }))
    .max(20_000)
    .nullish(),
});
export type GroupInput = z.output<typeof groupInput>;

export const patchInput = z.object({
  schemas: z.array(z.string()).optional(),
  Operations: z
    .array(z.object({ op: z.string().max(20), path: z.string().max(2000).optional(), value: z.unknown().optional() }))
    .min(1)
    .max(1000),
});

/** Validates a resource body (keys in any case) with `schema`; the first problem is a SCIM 400. */
export function parseResource<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ScimError(400, 'Send the resource as a JSON object.', 'invalidSyntax');
  const r = schema.safeParse(canonicalize(body));
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue?.path.join('.') || 'body';
    throw new ScimError(400, `${at}: ${issue?.message ?? 'invalid'}`, 'invalidValue');
  }
  return r.data;
}

/** Drops null/undefined members (SCIM omits unassigned attributes). */
export function compact<T>(v: T): T {
  if (Array.isArray(v)) return v.map(compact) as T;
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = compact(x);
    return out as T;
  }
  return v;
}

/**
 * The account e-mail of a provisioned user: the primary e-mail, else the work e-mail, else the
 * first, else userName. An IdP login links to the account by this address (server/sso).
 */
export function accountEmail(u: UserInput): string {
  const emails = (u.emails ?? []).filter((e) => typeof e.value === 'string' && e.value.length > 0);
  const pick = emails.find((e) => e.primary === true) ?? emails.find((e) => e.type?.toLowerCase() === 'work') ?? emails[0];
  return (pick?.value ?? u.userName).trim().toLowerCase();
}

/** A display name for the account from the SCIM attributes. */
export function displayNameOf(u: UserInput): string | undefined {
  const n = u.displayName ?? u.name?.formatted ?? [u.name?.givenName, u.name?.familyName].filter(Boolean).join(' ');
  return n ? n.slice(0, 200) : undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function userResource(
  base: string,
  row: { userId: string; userName: string; externalId: string | null; attributes: string; active: boolean; createdAt: number; updatedAt: number },
  groups: { groupId: string; displayName: string }[],
) {
  const attrs = JSON.parse(row.attributes) as Partial<UserInput>;
  const ext = attrs[ENTERPRISE_USER];
  return compact({
    schemas: ext ? [USER_SCHEMA, ENTERPRISE_USER] : [USER_SCHEMA],
    id: row.userId,
    externalId: row.externalId,
    userName: row.userName,
    ...attrs,
    active: row.active,
    groups: groups.map((g) => ({ value: g.groupId, display: g.displayName, $ref: `${base}/Groups/${g.groupId}` })),
    meta: { resourceType: 'User', created: iso(row.createdAt), lastModified: iso(row.updatedAt), location: `${base}/Users/${row.userId}` },
  });
}

export function groupResource(
  base: string,
  row: { id: string; displayName: string; externalId: string | null; createdAt: number; updatedAt: number },
  members: { userId: string; userName: string }[] | undefined,
) {
  return compact({
    schemas: [GROUP_SCHEMA],
    id: row.id,
    externalId: row.externalId,
    displayName: row.displayName,
    ...(members ? { members: members.map((m) => ({ value: m.userId, display: m.userName, $ref: `${base}/Users/${m.userId}` })) } : {}),
    meta: { resourceType: 'Group', created: iso(row.createdAt), lastModified: iso(row.updatedAt), location: `${base}/Groups/${row.id}` },
  });
}
