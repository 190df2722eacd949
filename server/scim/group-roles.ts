import { z } from 'zod';
import type { Role } from '../access/permissions.js';

/**
 * Directory groups → tenant roles (issue 24; teams come later): a tenant's rules
 * `[{group: "Enclave Admins", role: "admin"}, …]`, matched on the group's displayName without
 * regard to case. With rules set, a provisioned user's role is the highest role of their
 * groups' rules, else `member`, recomputed whenever their groups change; without rules,
 * SCIM never changes a role. Never `owner`: ownership is granted in Enclave, and an owner is
 * never demoted by a rule.
 */
export const GROUP_ROLES_SETTING = 'scim.group_roles';
export const DEFAULT_ROLE: Role = 'member';
const RANK: Record<'admin' | 'member' | 'viewer', number> = { viewer: 0, member: 1, admin: 2 };

export const groupRoleRules = z
  .array(z.object({ group: z.string().trim().min(1).max(256), role: z.enum(['admin', 'member', 'viewer']) }))
  .max(100);
export type GroupRoleRule = z.output<typeof groupRoleRules>[number];

export function parseRules(text: string | undefined): GroupRoleRule[] {
  if (!text) return [];
  const r = groupRoleRules.safeParse(JSON.parse(text));
  return r.success ? r.data : [];
}

/** The role the rules give a member of `groupNames`: the highest match, else `member`. */
export function roleFromGroups(rules: readonly GroupRoleRule[], groupNames: readonly string[]): Role {
  const names = new Set(groupNames.map((g) => g.toLowerCase()));
  let best: GroupRoleRule['role'] | undefined;
  for (const r of rules) if (names.has(r.group.toLowerCase()) && (!best || RANK[r.role] > RANK[best])) best = r.role;
  return best ?? DEFAULT_ROLE;
}
