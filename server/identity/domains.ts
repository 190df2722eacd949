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
  private async requirePlatform(ctx: RequestContext, action: string, domain?: string): Promise<void> {
    if (!isPlatform(ctx)) {
      await this.d.audit.record(ctx, { action, outcome: 'denied', reason: 'platform_only', target: { type: 'tenant_domain', id: domain ?? null } });
      throw new AppError(403, 'permission_denied', 'Only platform administrators manage verified e-mail domains.');
    }
    await this.d.access.require(ctx, 'platform:tenants:plan', {}, { type: 'tenant_domain', ...(domain ? { id: domain } : {}) });
  }

  async list(ctx: RequestContext): Promise<TenantDomainRow[]> {
    await this.requirePlatform(ctx, 'tenant.domain.read');
    return this.d.authority.domains(ctx);
  }

  async add(ctx: RequestContext, domainInput: unknown): Promise<TenantDomainRow> {
    const domain = normalizeDomain(domainInput);
    await this.requirePlatform(ctx, 'tenant.domain.add', domain);
    const existing = await this.d.authority.domain(ctx, domain);
    if (existing) return existing;
    const row = await this.d.authority.insertDomain(ctx, {
      id: newId('dom', this.d.clock.now()),
      domain,
      challenge: `enclave-verify=${randomBytes(18).toString('base64url')}`,
      createdAt: this.d.clock.now(),
    });
    await this.d.audit.record(ctx, { action: 'tenant.domain.add', target: { type: 'tenant_domain', id: domain } });
    return row;
  }

  async verify(ctx: RequestContext, domainInput: unknown): Promise<TenantDomainRow> {
    const domain = normalizeDomain(domainInput);
    await this.requirePlatform(ctx, 'tenant.domain.verify', domain);
    const row = await this.d.authority.domain(ctx, domain);
    if (!row) throw new AppError(404, 'not_found', `Domain ${domain} is not added to this tenant; add it first.`);
    // The "verified elsewhere?" check and the mark in one transaction: a domain is verified for
    // at most one tenant, also when two tenants' verifications run at once.
    const elsewhere = await this.d.repo.tx(async () => {
      await this.d.repo.lock(`domain:${domain}`);
      const owner = await this.d.authority.verifiedDomainOwner(domain);
      if (owner && owner !== row.tenantId) return true;
      if (row.verifiedAt === null) await this.d.authority.markVerified(ctx, domain, ctx.principal?.id ?? 'unknown', this.d.clock.now());
      return false;
    });
    if (elsewhere) {
      await this.d.audit.record(ctx, { action: 'tenant.domain.verify', outcome: 'denied', reason: 'verified_elsewhere', target: { type: 'tenant_domain', id: domain } });
      throw new AppError(409, 'domain_verified_elsewhere', `${domain} is verified for another tenant; remove it there first.`);
    }
    if (row.verifiedAt === null) await this.d.audit.record(ctx, { action: 'tenant.domain.verify', target: { type: 'tenant_domain', id: domain } });
    return (await this.d.authority.domain(ctx, domain))!;
  }

  async remove(ctx: RequestContext, domainInput: unknown): Promise<void> {
    const domain = normalizeDomain(domainInput);
    await this.requirePlatform(ctx, 'tenant.domain.remove', domain);
    if (!(await this.d.authority.deleteDomain(ctx, domain))) throw new AppError(404, 'not_found', `Domain ${domain} is not added to this tenant.`);
    await this.d.audit.record(ctx, { action: 'tenant.domain.remove', target: { type: 'tenant_domain', id: domain } });
  }

  /** The tenant an address's domain is verified for, or undefined. */
  ownerOf(email: string): Promise<string | undefined> {
    return this.d.authority.verifiedDomainOwner(emailDomain(email));
  }
}
