import { timingSafeEqual } from 'node:crypto';
import type { Classification, RequestContext, TenantRole } from '../context.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { ApiKeyRow, KeyLookup } from '../db/repos/identity.js';
import { hidden, page, type IdentityDeps, type Page } from '../identity/deps.js';
import {
  DEFAULT_KEY_SCOPES,
  isScope,
  OWNERLESS_KEY_ROLE,
  ROLE_PERMISSIONS,
  SCOPE_ACTIONS,
  type Role,
  type Scope,
} from '../access/permissions.js';
import { generateKey, hashKeyBytes, parseKey } from './format.js';
import { KeyGrowth } from './growth.js';

/**
 * API keys: creation (shown once), listing, rotation, revocation, and verification.
 *
 * Verification is the gateway's hot path. Keys are looked up by their visible prefix in an
 * in-memory cache (hits never touch the database), then the SHA-256 of the presented secret is
 * compared with timingSafeEqual. The cache is dropped whenever the identity revision moves
 * (this process synchronously; other processes, the CLI included, through the revision
 * poll), so revocation, expiry, owner deactivation, role loss and tenant suspension take
 * effect within the poll interval everywhere. Last-used times are gathered in memory and
 * written in batches.
 */
export interface VerifiedKey {
  readonly keyId: string;
  readonly prefix: string;
  readonly tenant: { readonly id: string; readonly slug: string };
  readonly ownerUserId: string | undefined;
  /** The owner's current role (or the ownerless ceiling). */
  readonly role: TenantRole;
  readonly scopes: readonly string[];
  readonly allowedModels: readonly string[];
  readonly maxClassification: Classification | undefined;
  /** The team the key belongs to (its calls count against the team: server/teams). */
  readonly teamId?: string;
}

interface CacheEntry {
  readonly hash: Buffer;
  readonly revokedAt: number | null;
  readonly expiresAt: number | null;
  readonly tenantStatus: 'active' | 'suspended';
  /** undefined: owner fine; else the refusal code. */
  readonly ownerProblem: 'deactivated' | 'not_member' | undefined;
  readonly verified: VerifiedKey;
}

const DUMMY = Buffer.alloc(32);
const NEGATIVE_MAX = 10_000;

export function serializeKey(k: ApiKeyRow, now: number) {
  const status = k.revokedAt !== null ? 'revoked' : k.expiresAt !== null && k.expiresAt <= now ? 'expired' : 'active';
  return {
    object: 'api_key' as const,
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    status,
    owner_user_id: k.ownerUserId,
    scopes: JSON.parse(k.scopes) as string[],
    allowed_models: JSON.parse(k.allowedModels) as string[],
    max_classification: k.maxClassification,
    expires_at: k.expiresAt,
    last_used_at: k.lastUsedAt,
    last_used_ip: k.lastUsedIp,
    created_at: k.createdAt,
    created_by: k.createdBy,
    revoked_at: k.revokedAt,
    revoked_by: k.revokedBy,
    rotated_from_id: k.rotatedFromId,
    team_id: k.teamId,
  };
}

export interface CreateKeyInput {
  readonly name: string;
  /** Owner user id; defaults to the creating user (none for the CLI / ownerless service keys). */
  readonly ownerUserId?: string | null;
  readonly scopes?: readonly string[];
  readonly allowedModels?: readonly string[];
  readonly maxClassification?: Classification | null;
  readonly expiresAt?: number | null;
  /** The team the key belongs to (server/teams checks who may create one). */
  readonly teamId?: string | null;
}

function keyError(code: string, message: string, status = 401): AppError {
  return new AppError(status, code, message, status === 401 ? { headers: { 'www-authenticate': 'Bearer realm="enclave"' } } : {});
}

function actorOf(ctx: RequestContext): string {
  const p = ctx.principal;
  return p ? `${p.kind === 'api_key' ? 'api_key' : p.kind}:${p.id}` : 'anonymous';
}

export class KeyService {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly negative = new Set<string>();
  private readonly used = new Map<string, { id: string; at: number; ip: string | null }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly growth: KeyGrowth;

  constructor(private readonly d: IdentityDeps) {
    d.revision.onChange(() => this.invalidate());
    this.growth = new KeyGrowth(d.store, d.entitlements);
  }

  invalidate(): void {
    this.cache.clear();
    this.negative.clear();
  }

  /** Writes gathered last-used times every `ms`; stop() flushes the rest. */
  start(ms = 5000): void {
    if (this.flushTimer) return;
    this.flushTimer = setInterval(() => void this.flushUsage(), ms);
    this.flushTimer.unref();
  }
  async stop(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    await this.flushUsage();
  }
  /** Writes the gathered last-used times; never rejects (a failure is logged, the times are best effort). */
  async flushUsage(): Promise<void> {
    if (this.used.size === 0) return;
    const batch = [...this.used.values()];
    this.used.clear();
    try {
      await this.d.repo.touchKeys(batch);
    } catch (e) {
      this.d.log.warn({ err: e }, 'could not record API key last-used times');
    }
  }

  private async load(prefix: string): Promise<CacheEntry | undefined> {
    const found: KeyLookup | undefined = await this.d.repo.keyByPrefix(prefix);
    if (!found) return undefined;
    const { key, tenant, owner } = found;
    let role: Role = OWNERLESS_KEY_ROLE;
    let ownerProblem: CacheEntry['ownerProblem'];
    if (key.ownerUserId) {
      if (!owner || owner.status !== 'active') ownerProblem = 'deactivated';
      else if (!owner.role) ownerProblem = 'not_member';
      else role = owner.role;
    }
    return {
      hash: Buffer.from(key.keyHash, 'hex'),
      revokedAt: key.revokedAt,
      expiresAt: key.expiresAt,
      tenantStatus: tenant.status,
      ownerProblem,
      verified: {
        keyId: key.id,
        prefix: key.prefix,
        tenant: { id: tenant.id, slug: tenant.slug },
        ownerUserId: key.ownerUserId ?? undefined,
        role,
        scopes: JSON.parse(key.scopes) as string[],
        allowedModels: JSON.parse(key.allowedModels) as string[],
        maxClassification: key.maxClassification ?? undefined,
        ...(key.teamId ? { teamId: key.teamId } : {}),
      },
    };
  }

  /**
   * Verifies a presented secret. Refusals: auth_key_malformed, auth_key_checksum,
   * auth_key_invalid (unknown or wrong secret: indistinguishable), auth_key_revoked,
   * auth_key_expired, auth_key_owner_inactive (401) and tenant_suspended (403).
   */
  async verify(secret: string, ip?: string): Promise<VerifiedKey> {
    const parsed = parseKey(secret);
    if (!parsed.ok) {
      throw parsed.reason === 'checksum'
        ? keyError('auth_key_checksum', 'The API key checksum is wrong; the key was mistyped or truncated.')
        : keyError('auth_key_malformed', 'The API key is not an Enclave key (enk_…).');
    }
    let entry = this.cache.get(parsed.prefix);
    if (!entry && !this.negative.has(parsed.prefix)) {
      const revision = this.d.revision.current();
      entry = await this.load(parsed.prefix);
      // A revision that moved during the read may have invalidated what was read: use it for
      // this call, but do not cache it.
      if (entry) {
        if (this.d.revision.current() === revision) this.cache.set(parsed.prefix, entry);
      } else if (this.d.revision.current() === revision) {
        if (this.negative.size >= NEGATIVE_MAX) this.negative.clear();
        this.negative.add(parsed.prefix);
      }
    }
    const presented = hashKeyBytes(secret);
    const match = timingSafeEqual(presented, entry ? entry.hash : DUMMY);
    if (!entry || !match) throw keyError('auth_key_invalid', 'The API key is not valid.');
    if (entry.revokedAt !== null) throw keyError('auth_key_revoked', 'The API key has been revoked.');
    const now = this.d.clock.now();
    if (entry.expiresAt !== null && now >= entry.expiresAt) throw keyError('auth_key_expired', 'The API key has expired.');
    if (entry.tenantStatus === 'suspended') {
      throw new AppError(403, 'tenant_suspended', `Tenant ${entry.verified.tenant.slug} is suspended.`);
    }
    if (entry.ownerProblem) {
      throw keyError('auth_key_owner_inactive', entry.ownerProblem === 'deactivated' ? "The API key's owner is deactivated." : "The API key's owner is no longer a member of the tenant.");
    }
    this.used.set(entry.verified.keyId, { id: entry.verified.keyId, at: now, ip: ip ?? null });
    return entry.verified;
  }

  /**
   * Re-checks a key that authenticated earlier, by its id in ctx.tenant (no secret): for work done
   * later on the key's behalf (batch lines in the worker). Same refusals as verify() except
   * the secret comparison; does not count as a use of the key.
   */
  async verifyStored(ctx: RequestContext, keyId: string): Promise<VerifiedKey> {
    const row = await this.d.repo.key(ctx, keyId);
    if (!row) throw keyError('auth_key_invalid', 'The API key is not valid.');
    const prefix = row.prefix;
    const revision = this.d.revision.current();
    const entry = this.cache.get(prefix) ?? (await this.load(prefix));
    if (!entry) throw keyError('auth_key_invalid', 'The API key is not valid.');
    if (this.d.revision.current() === revision) this.cache.set(prefix, entry);
    if (entry.revokedAt !== null) throw keyError('auth_key_revoked', 'The API key has been revoked.');
    if (entry.expiresAt !== null && this.d.clock.now() >= entry.expiresAt) throw keyError('auth_key_expired', 'The API key has expired.');
    if (entry.tenantStatus === 'suspended') throw new AppError(403, 'tenant_suspended', `Tenant ${entry.verified.tenant.slug} is suspended.`);
    if (entry.ownerProblem) throw keyError('auth_key_owner_inactive', "The API key's owner is no longer active in the tenant.");
    return entry.verified;
  }

  // --- management ---

  private effectiveCreatorRole(ctx: RequestContext): Role | 'system' {
    const p = ctx.principal;
    if (!p) throw new AppError(401, 'auth_required', 'Authentication is required.');
    if (p.kind === 'system' || (p.kind === 'user' && p.platformAdmin)) return 'system';
    if (!p.role) throw new AppError(403, 'not_a_member', 'You are not a member of this tenant.');
    return p.role;
  }

  /** Whether `role` (and, for a key creator, its scopes) can do everything `scope` grants. */
  private covers(role: Role | 'system', scope: Scope, creatorScopes?: readonly string[]): boolean {
    const actions = SCOPE_ACTIONS[scope];
    if (creatorScopes && !actions.every((a) => creatorScopes.some((s) => isScope(s) && SCOPE_ACTIONS[s].includes(a)))) return false;
    if (role === 'system') return true;
    return actions.every((a) => ROLE_PERMISSIONS[role].has(a));
  }

  async create(ctx: RequestContext, input: CreateKeyInput): Promise<{ key: ApiKeyRow; secret: string }> {
    const p = ctx.principal;
    const ownerUserId = input.ownerUserId !== undefined ? input.ownerUserId : p?.kind === 'user' ? p.userId! : p?.kind === 'api_key' ? (p.userId ?? null) : null;
    await this.d.access.require(ctx, 'keys:write', { ownerUserId }, { type: 'api_key' });
    return this.insert(ctx, input, ownerUserId, null);
  }

  private async insert(ctx: RequestContext, input: CreateKeyInput, ownerUserId: string | null, rotatedFromId: string | null): Promise<{ key: ApiKeyRow; secret: string }> {
    const name = (input.name ?? '').trim();
    if (!name || name.length > 100) throw new AppError(400, 'invalid_name', 'A key name is 1–100 characters.', { param: 'name' });
    const scopes = [...new Set(input.scopes ?? DEFAULT_KEY_SCOPES)];
    for (const s of scopes) if (!isScope(s)) throw new AppError(400, 'invalid_scope', `Unknown scope ${s}.`, { param: 'scopes' });
    if (scopes.length === 0) throw new AppError(400, 'invalid_scope', 'A key needs at least one scope.', { param: 'scopes' });
    const models = [...new Set(input.allowedModels ?? [])];
    if (models.some((m) => typeof m !== 'string' || !m || m.length > 200)) throw new AppError(400, 'invalid_models', 'Model names are non-empty strings.', { param: 'allowed_models' });
    const now = this.d.clock.now();
    if (input.expiresAt != null && input.expiresAt <= now) throw new AppError(400, 'invalid_expiry', 'The expiry must be in the future.', { param: 'expires_at' });

    // A key never carries more than its creator could do at creation...
    const creatorRole = this.effectiveCreatorRole(ctx);
    const creatorScopes = ctx.principal?.kind === 'api_key' ? ctx.scopes : undefined;
    // ...nor more than its owner can do (re-checked at every use through the owner's role).
    let ownerRole: Role = OWNERLESS_KEY_ROLE;
    if (ownerUserId) {
      const m = await this.d.repo.membership(ctx, ownerUserId);
      const owner = (await this.d.repo.usersByIds([ownerUserId]))[0];
      if (!m || !owner || owner.status !== 'active') throw new AppError(400, 'invalid_owner', 'The key owner must be an active member of the tenant.', { param: 'owner_user_id' });
      ownerRole = m.role;
    }
    for (const s of scopes as Scope[]) {
      if (!this.covers(creatorRole, s, creatorScopes) || !this.covers(ownerRole, s)) {
        await this.d.audit.record(ctx, { action: 'key.create', outcome: 'denied', reason: 'key_scope_exceeds_creator', target: { type: 'api_key' }, details: { scope: s } });
        throw new AppError(403, 'key_scope_exceeds_creator', `Scope ${s} grants more than the key's creator or owner may do.`, { param: 'scopes' });
      }
    }
    // Growth: the tenant plan's max_keys and the licence's key limit (the refusal names the level),
    // counted in the transaction that inserts the key: two creations at the limit do not both pass.
    const tenantId = ctx.tenant?.id;
    const growthRefusal = async (): Promise<AppError | undefined> =>
      tenantId ? this.growth.check(tenantId, now, { replacing: rotatedFromId !== null }) : this.d.entitlements().checkGrowth('keys', await this.d.repo.countActiveKeys(now));

    for (let attempt = 0; ; attempt++) {
      const g = generateKey();
      try {
        const out = await this.d.repo.tx(async (): Promise<{ key: ApiKeyRow } | { refusal: AppError }> => {
          await this.d.repo.lock('keys');
          const refusal = await growthRefusal();
          if (refusal) return { refusal };
          return {
            key: await this.d.repo.insertKey(ctx, {
          id: newId('key', now),
          ownerUserId,
          name,
          prefix: g.prefix,
          keyHash: g.hash,
          scopes: JSON.stringify(scopes),
          allowedModels: JSON.stringify(models),
          maxClassification: input.maxClassification ?? null,
          teamId: input.teamId ?? null,
          expiresAt: input.expiresAt ?? null,
          createdAt: now,
          createdBy: actorOf(ctx),
          rotatedFromId,
            }),
          };
        });
        if ('refusal' in out) {
          const refusal = out.refusal;
          await this.d.audit.record(ctx, { action: 'key.create', outcome: 'denied', reason: refusal.code, target: { type: 'api_key' }, details: { level: refusal.details?.level ?? 'licence' } });
          throw refusal;
        }
        const key = out.key;
        this.negative.delete(g.prefix);
        await this.d.audit.record(ctx, {
          action: rotatedFromId ? 'key.rotate' : 'key.create',
          target: { type: 'api_key', id: key.id },
          details: { name, prefix: key.prefix, owner_user_id: ownerUserId, scopes, allowed_models: models, max_classification: key.maxClassification, expires_at: key.expiresAt, rotated_from_id: rotatedFromId, team_id: key.teamId },
        });
        return { key, secret: g.secret };
      } catch (e) {
        // A visible-prefix collision (47 bits): try a fresh key (SQLite: UNIQUE constraint; PostgreSQL: duplicate key).
        if (attempt < 3 && /UNIQUE|duplicate key/.test(String((e as Error).message))) continue;
        throw e;
      }
    }
  }

  private async visible(ctx: RequestContext, id: string, action: string): Promise<ApiKeyRow> {
    const k = await this.d.repo.key(ctx, id);
    if (!k) throw await hidden(this.d, ctx, 'api_key', id, action);
    return k;
  }

  async get(ctx: RequestContext, id: string): Promise<ApiKeyRow> {
    const k = await this.visible(ctx, id, 'key.read');
    await this.d.access.require(ctx, 'keys:read', { ownerUserId: k.ownerUserId }, { type: 'api_key', id });
    return k;
  }

  async list(ctx: RequestContext, opts: { owner?: string; status?: 'active' | 'revoked'; cursor?: string; limit: number }): Promise<Page<ReturnType<typeof serializeKey>>> {
    const p = ctx.principal;
    const all = this.d.access.authorize(ctx, 'keys:read').allow;
    let owner = opts.owner;
    if (!all) {
      // Members see their own keys only.
      await this.d.access.require(ctx, 'keys:read', { ownerUserId: p?.userId ?? null });
      owner = p?.userId;
    }
    const rows = await this.d.repo.keys(ctx, { limit: opts.limit + 1, ...(owner ? { ownerUserId: owner } : {}), ...(opts.status ? { status: opts.status } : {}), ...(opts.cursor ? { beforeId: opts.cursor } : {}) });
    const now = this.d.clock.now();
    return page(rows, opts.limit, (k) => k.id, (k) => serializeKey(k, now));
  }

  async revoke(ctx: RequestContext, id: string): Promise<ApiKeyRow> {
    const k = await this.visible(ctx, id, 'key.revoke');
    await this.d.access.require(ctx, 'keys:write', { ownerUserId: k.ownerUserId }, { type: 'api_key', id });
    if (k.revokedAt === null) {
      await this.d.repo.updateKey(ctx, id, { revokedAt: this.d.clock.now(), revokedBy: actorOf(ctx) });
      await this.d.revision.bump();
      await this.d.audit.record(ctx, { action: 'key.revoke', target: { type: 'api_key', id }, details: { prefix: k.prefix } });
    }
    return (await this.d.repo.key(ctx, id))!;
  }

  /**
   * Rotation: a successor with the same settings (a new secret, shown once). The old key
   * stays valid for `overlapSeconds` (0 = revoked now).
   */
  async rotate(ctx: RequestContext, id: string, opts: { overlapSeconds?: number } = {}): Promise<{ key: ApiKeyRow; secret: string; previous: ApiKeyRow }> {
    const old = await this.visible(ctx, id, 'key.rotate');
    await this.d.access.require(ctx, 'keys:write', { ownerUserId: old.ownerUserId }, { type: 'api_key', id });
    if (old.revokedAt !== null) throw new AppError(409, 'key_revoked', 'A revoked key cannot be rotated; create a new one.');
    const overlap = Math.max(0, Math.floor(opts.overlapSeconds ?? 0));
    if (overlap > 30 * 86400) throw new AppError(400, 'invalid_overlap', 'The overlap window is at most 30 days.', { param: 'overlap_seconds' });
    const now = this.d.clock.now();
    const created = await this.insert(
      ctx,
      {
        name: old.name,
        scopes: JSON.parse(old.scopes) as string[],
        allowedModels: JSON.parse(old.allowedModels) as string[],
        maxClassification: old.maxClassification,
        teamId: old.teamId,
        expiresAt: old.expiresAt,
      },
      old.ownerUserId,
      old.id,
    );
    if (overlap === 0) await this.d.repo.updateKey(ctx, id, { revokedAt: now, revokedBy: actorOf(ctx) });
    else await this.d.repo.updateKey(ctx, id, { expiresAt: Math.min(old.expiresAt ?? Infinity, now + overlap * 1000) });
    await this.d.revision.bump();
    return { ...created, previous: (await this.d.repo.key(ctx, id))! };
  }

  /** The tenant of a key id (CLI), or undefined. */
  tenantOf(id: string): Promise<{ id: string; slug: string } | undefined> {
    return this.d.repo.keyTenant(id);
  }
}
