import { describe, expect, it } from 'vitest';
import { isCommonPassword } from '../../server/identity/passwords.js';
import { assertionRefusal, emailLinkAllowed } from '../../server/sso/authority.js';

/** The identity-authority rules one by one (issue 16); the end-to-end sequences are in test/integration/sso-takeover.test.ts. */
const user = { platformAdmin: false, status: 'active' as const };

describe('assertionRefusal (a linked identity at a tenant-IdP login)', () => {
  const base = { idpRef: 'idp_a', tenantId: 'ten_a', user, identity: { idpRef: 'idp_a', origin: 'provisioned' as const }, memberships: ['ten_a'] };
  it('allows accounts the IdP provisioned or whose holder linked it, also when they joined other tenants', () => {
    expect(assertionRefusal(base)).toBeUndefined();
    expect(assertionRefusal({ ...base, memberships: ['ten_a', 'ten_b'] })).toBeUndefined();
    expect(assertionRefusal({ ...base, identity: { idpRef: 'idp_a', origin: 'linked_by_user' }, memberships: ['ten_b'] })).toBeUndefined();
  });
  it('refuses platform admins, identities linked through another IdP, and legacy links of accounts in other tenants', () => {
    expect(assertionRefusal({ ...base, user: { platformAdmin: true } })).toBe('platform_admin_requires_platform_idp');
    expect(assertionRefusal({ ...base, identity: { idpRef: 'idp_b', origin: 'provisioned' } })).toBe('account_link_refused');
    expect(assertionRefusal({ ...base, identity: { idpRef: 'idp_a', origin: 'legacy' }, memberships: ['ten_a', 'ten_b'] })).toBe('account_link_refused');
    expect(assertionRefusal({ ...base, identity: { idpRef: 'idp_a', origin: 'legacy' }, memberships: ['ten_a'] })).toBeUndefined();
  });
});

describe('emailLinkAllowed (linking an existing account by verified e-mail)', () => {
  const base = { tenantId: 'ten_a', verifiedFor: 'ten_a', user, memberships: [] as string[] };
  it('allows an account of a domain verified for the tenant that belongs to no other tenant', () => {
    expect(emailLinkAllowed(base)).toBe(true);
    expect(emailLinkAllowed({ ...base, memberships: ['ten_a'] })).toBe(true);
  });
  it('refuses unverified domains, domains of another tenant, members of other tenants, platform admins, deactivated accounts', () => {
    expect(emailLinkAllowed({ ...base, verifiedFor: undefined })).toBe(false);
    expect(emailLinkAllowed({ ...base, verifiedFor: 'ten_b' })).toBe(false);
    expect(emailLinkAllowed({ ...base, memberships: ['ten_b'] })).toBe(false);
    expect(emailLinkAllowed({ ...base, memberships: ['ten_a', 'ten_b'] })).toBe(false);
    expect(emailLinkAllowed({ ...base, user: { platformAdmin: true, status: 'active' } })).toBe(false);
    expect(emailLinkAllowed({ ...base, user: { platformAdmin: false, status: 'deactivated' } })).toBe(false);
  });
});

describe('common passwords (bundled list, offline)', () => {
  it('refuses listed passwords and trivial stretches of them, accepts passphrases', () => {
    for (const p of ['password1234', 'PASSWORD1234', 'qwertyqwerty', '!!!!dragon2024', 'iloveyou12345', 'monkeymonkey']) expect(isCommonPassword(p), p).toBe(true);
    for (const p of ['correct horse battery staple', 'Fresh-Partner-Passphrase-9', 'tq7#Lm2$vW9pZx']) expect(isCommonPassword(p), p).toBe(false);
  });
});
