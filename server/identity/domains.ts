import { randomBytes } from 'node:crypto';
import type { RequestContext } from '../context.js';
import type { TenantDomainRow } from '../db/repos/authority.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { isPlatform, type IdentityDeps } from './deps.js';

/**
 * E-mail domains verified for a tenant (issue 16). Only a platform administrator adds,
 * verifies or removes them (`enclave tenants domains …`, /admin/api/tenants/:id/domains):
 * a tenant administrator types domains freely into an IdP's allowed_domains, so that list
 * proves nothing. A verified domain is what lets the tenant's IdP link an existing account
 * by e-mail and create (JIT) accounts of that domain. A domain is verified for at most one
 * tenant at a time.
 *
 * How a platform admin checks ownership is theirs to decide (the appliance may be air-gapped):
 * `add` returns a challenge the tenant can publish as DNS TXT `_enclave-challenge.<domain>`;
 * `verify` records the platform admin's decision, audited.
 */
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export function normalizeDomain(v: unknown): string {
  const d = typeof v === 'string' ? v.trim().toLowerCase().replace(/^@/, '').replace(/\.$/, '') : '';
  if (!DOMAIN.test(d)) throw new AppError(400, 'invalid_domain', 'Give a domain name such as example.com.', { param: 'domain' });
  return d;
}

export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1).toLowerCase();
}

export function serializeDomain(r: TenantDomainRow) {
  return {
    object: 'tenant_domain' as const,
    domain: r.domain,
    tenant_id: r.tenantId,
    verified: r.verifiedAt !== null,
    verified_at: r.verifiedAt,
    verified_by: r.verifiedBy,
    challenge: { type: 'dns_txt', name: `_enclave-challenge.${r.domain}`, value: r.challenge },
    created_at: r.createdAt,
  };
}

export class DomainService {
  constructor(private readonly d: IdentityDeps) {}

  /** Platform administrators only, also for reading (the list says which IdP may assert what). */
  private requirePlatform(ctx: RequestContext, action: string, domain?: string): void {
    if (!isPlatform(ctx)) {
      this.d.audit.record(ctx, { action, outcome: 'denied', reason: 'platform_only', target: { type: 'tenant_domain', id: domain ?? null } });
      throw new AppError(403, 'permission_denied', 'Only platform administrators manage verified e-mail domains.');
    }
    this.d.access.require(ctx, 'platform:tenants:plan', {}, { type: 'tenant_domain', ...(domain ? { id: domain } : {}) });
  }

  list(ctx: RequestContext): TenantDomainRow[] {
    this.requirePlatform(ctx, 'tenant.domain.read');
    return this.d.authority.domains(ctx);
  }

  add(ctx: RequestContext, domainInput: unknown): TenantDomainRow {
    const domain = normalizeDomain(domainInput);
    this.requirePlatform(ctx, 'tenant.domain.add', domain);
    const existing = this.d.authority.domain(ctx, domain);
    if (existing) return existing;
    const row = this.d.authority.insertDomain(ctx, {
      id: newId('dom', this.d.clock.now()),
      domain,
      challenge: `enclave-verify=${randomBytes(18).toString('base64url')}`,
      createdAt: this.d.clock.now(),
    });
    this.d.audit.record(ctx, { action: 'tenant.domain.add', target: { type: 'tenant_domain', id: domain } });
    return row;
  }

  verify(ctx: RequestContext, domainInput: unknown): TenantDomainRow {
    const domain = normalizeDomain(domainInput);
    this.requirePlatform(ctx, 'tenant.domain.verify', domain);
    const row = this.d.authority.domain(ctx, domain);
    if (!row) throw new AppError(404, 'not_found', `Domain ${domain} is not added to this tenant; add it first.`);
    const owner = this.d.authority.verifiedDomainOwner(domain);
    if (owner && owner !== row.tenantId) {
      this.d.audit.record(ctx, { action: 'tenant.domain.verify', outcome: 'denied', reason: 'verified_elsewhere', target: { type: 'tenant_domain', id: domain } });
      throw new AppError(409, 'domain_verified_elsewhere', `${domain} is verified for another tenant; remove it there first.`);
    }
    if (row.verifiedAt === null) {
      this.d.authority.markVerified(ctx, domain, ctx.principal?.id ?? 'unknown', this.d.clock.now());
      this.d.audit.record(ctx, { action: 'tenant.domain.verify', target: { type: 'tenant_domain', id: domain } });
    }
    return this.d.authority.domain(ctx, domain)!;
  }

  remove(ctx: RequestContext, domainInput: unknown): void {
    const domain = normalizeDomain(domainInput);
    this.requirePlatform(ctx, 'tenant.domain.remove', domain);
    if (!this.d.authority.deleteDomain(ctx, domain)) throw new AppError(404, 'not_found', `Domain ${domain} is not added to this tenant.`);
    this.d.audit.record(ctx, { action: 'tenant.domain.remove', target: { type: 'tenant_domain', id: domain } });
  }

  /** The tenant an address's domain is verified for, or undefined. */
  ownerOf(email: string): string | undefined {
    return this.d.authority.verifiedDomainOwner(emailDomain(email));
  }
}
