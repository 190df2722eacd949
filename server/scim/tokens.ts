import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Entitlements } from '../access/entitlements.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { ScimRepo, ScimTokenRow } from '../db/repos/scim.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { ScimError } from './errors.js';

/**
 * Per-tenant SCIM bearer tokens: `scim_` + 43 base64url characters (32 random bytes). Shown
 * once; only the SHA-256 is stored, with `scim_` and the next 12 characters as the visible prefix that
 * finds the row. A tenant has at most one live token: `rotate` issues a new one and revokes
 * the old in the same step, `revoke` ends it. Accepted only by /scim (server/scim/routes.ts),
 * and /scim accepts nothing else; its own prefix keeps it from ever parsing as an API key.
 */
export const TOKEN_PREFIX = 'scim_';
const SHAPE = /^scim_[A-Za-z0-9_-]{43}$/;
const VISIBLE = TOKEN_PREFIX.length + 12;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function serializeToken(t: ScimTokenRow) {
  return {
    object: 'scim_token' as const,
    id: t.id,
    tenant_id: t.tenantId,
    prefix: t.prefix,
    created_at: t.createdAt,
    created_by: t.createdBy,
    last_used_at: t.lastUsedAt,
    revoked_at: t.revokedAt,
  };
}

export interface VerifiedScimToken {
  readonly token: ScimTokenRow;
  readonly tenant: { id: string; slug: string };
}

export class ScimTokens {
  constructor(
    private readonly d: { repo: ScimRepo; audit: AuditLog; clock: Clock; entitlements: () => Entitlements },
  ) {}

  private actor(ctx: RequestContext): string {
    const p = ctx.principal;
    return p ? `${p.kind}:${p.id}` : 'unknown';
  }

  private async requireFeature(ctx: RequestContext, action: 'scim.token.create' | 'scim.token.rotate'): Promise<void> {
    if (!this.d.entitlements().hasFeature('scim')) {
      await this.d.audit.record(ctx, { action, outcome: 'denied', reason: 'license_feature', target: { type: 'scim_token' } });
      throw new AppError(403, 'license_feature_missing', 'The licence does not include SCIM provisioning (scim).');
    }
  }

  private async issue(ctx: RequestContext): Promise<{ token: ScimTokenRow; secret: string }> {
    const now = this.d.clock.now();
    const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const token = await this.d.repo.insertToken(ctx, { id: newId('sct', now), prefix: secret.slice(0, VISIBLE), tokenHash: sha256(secret), createdAt: now, createdBy: this.actor(ctx) });
    return { token, secret };
  }

  /** A first token; refused when the tenant has a live one (rotate replaces it). */
  async create(ctx: RequestContext): Promise<{ token: ScimTokenRow; secret: string }> {
    await this.requireFeature(ctx, 'scim.token.create');
    // The check and the insert in one transaction: two concurrent creates give one token.
    return this.d.repo.tx(async () => {
      if ((await this.d.repo.liveTokens(ctx)).length > 0) {
        throw new AppError(409, 'scim_token_exists', 'This tenant has a SCIM token; rotate it to get a new one, or revoke it first.');
      }
      const r = await this.issue(ctx);
      await this.d.audit.record(ctx, { action: 'scim.token.create', target: { type: 'scim_token', id: r.token.id }, details: { prefix: r.token.prefix } });
      return r;
    });
  }

  /** A new token; every older one stops in the same transaction. */
  async rotate(ctx: RequestContext): Promise<{ token: ScimTokenRow; secret: string }> {
    await this.requireFeature(ctx, 'scim.token.rotate');
    return this.d.repo.tx(async () => {
      const r = await this.issue(ctx);
      const revoked = await this.d.repo.revokeTokens(ctx, this.actor(ctx), this.d.clock.now(), r.token.id);
      await this.d.audit.record(ctx, { action: 'scim.token.rotate', target: { type: 'scim_token', id: r.token.id }, details: { prefix: r.token.prefix, revoked } });
      return r;
    });
  }

  async revoke(ctx: RequestContext): Promise<string[]> {
    const revoked = await this.d.repo.revokeTokens(ctx, this.actor(ctx), this.d.clock.now());
    if (revoked.length === 0) throw new AppError(404, 'not_found', 'This tenant has no live SCIM token.');
    await this.d.audit.record(ctx, { action: 'scim.token.revoke', target: { type: 'scim_token', id: revoked[0]! }, details: { revoked } });
    return revoked;
  }

  /** Records use (at most once a minute per token, so a sync does not write on every request). */
  async touch(ctx: RequestContext, t: ScimTokenRow): Promise<void> {
    const now = this.d.clock.now();
    if (t.lastUsedAt === null || now - t.lastUsedAt > 60_000) await this.d.repo.touchToken(ctx, t.id, now);
  }

  list(ctx: RequestContext): Promise<ScimTokenRow[]> {
    return this.d.repo.liveTokens(ctx);
  }

  /**
   * The token of an `Authorization: Bearer scim_…` header, read from the database on every
   * request (SCIM traffic is light), so a revocation by the CLI holds for the next request
   * in every process. Every failure is the same 401 (nothing tells whether a token exists).
   */
  async verify(secret: string | undefined): Promise<VerifiedScimToken> {
    const refused = new ScimError(401, 'A valid SCIM bearer token is required (Authorization: Bearer scim_…).');
    if (!secret || !SHAPE.test(secret)) throw refused;
    const found = await this.d.repo.tokenByPrefix(secret.slice(0, VISIBLE));
    if (!found || found.token.revokedAt !== null) throw refused;
    const a = Buffer.from(found.token.tokenHash, 'hex');
    const b = Buffer.from(sha256(secret), 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw refused;
    if (found.tenant.status !== 'active') throw new ScimError(403, `Tenant ${found.tenant.slug} is suspended.`);
    return { token: found.token, tenant: { id: found.tenant.id, slug: found.tenant.slug } };
  }
}
