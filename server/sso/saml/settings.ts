import { DOMParser } from '@xmldom/xmldom';
import { X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { tenantRule } from '../mapping.js';

/**
 * A SAML tenant IdP's settings (issue 24). The row's `issuer` column holds the IdP entity id;
 * these live in `sso_idps.saml` (JSON). Certificates are public (no secret to encrypt).
 */
export interface SamlSettings {
  readonly sso_url: string;
  /** Base64 DER of each accepted signing certificate (rollover: old and new side by side). */
  readonly certificates: string[];
  readonly email_attribute: string | null;
  readonly name_attribute: string | null;
  readonly groups_attribute: string | null;
  readonly roles_attribute: string | null;
  /** Unsolicited (IdP-initiated) responses; off unless the tenant opts in explicitly. */
  readonly allow_idp_initiated: boolean;
}

const attr = z.string().trim().min(1).max(300).nullable().optional();
const entityId = z.string().trim().min(1).max(500).regex(/^\S+$/, 'an entity id has no spaces');
const pem = z.string().min(1).max(20_000);

const common = {
  name: z.string().trim().min(1).max(100),
  email_attribute: attr,
  name_attribute: attr,
  groups_attribute: attr,
  roles_attribute: attr,
  allow_idp_initiated: z.boolean().optional(),
  mapping: z.array(tenantRule).max(200).optional(),
  default_role: z.enum(['owner', 'admin', 'member', 'viewer']).nullable().optional(),
  allowed_domains: z.array(z.string().trim().toLowerCase().min(1).max(253)).max(100).optional(),
  jit: z.boolean().optional(),
  enforce_sso: z.boolean().optional(),
  enabled: z.boolean().optional(),
};

/** POST body with `protocol: "saml"`: the IdP by hand (entity id, SSO URL, certificates) or its metadata XML. */
export const samlIdpInput = z
  .object({
    protocol: z.literal('saml'),
    ...common,
    metadata_xml: z.string().min(1).max(200_000).optional(),
    idp_entity_id: entityId.optional(),
    sso_url: z.string().trim().url().max(2000).optional(),
    certificates: z.array(pem).min(1).max(5).optional(),
  })
  .strict();
export type SamlIdpInput = z.infer<typeof samlIdpInput>;
export const samlIdpPatch = samlIdpInput.partial().extend({ protocol: z.literal('saml').optional() }).strict();
export type SamlIdpPatch = z.infer<typeof samlIdpPatch>;

/** Base64 DER of a certificate given as PEM or bare base64; a clear 400 otherwise. */
export function normalizeCertificate(text: string): string {
  const b64 = text.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  try {
    const c = new X509Certificate(Buffer.from(b64, 'base64'));
    return c.raw.toString('base64');
  } catch {
    throw new AppError(400, 'invalid_certificate', 'certificates: each must be an X.509 certificate (PEM or base64 DER).', { param: 'certificates' });
  }
}

export function certificatePem(b64: string): string {
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, '$1\n').trim()}\n-----END CERTIFICATE-----\n`;
}

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

/** IdP metadata import: entity id, the HTTP-Redirect SSO URL and the signing certificates. */
export function parseIdpMetadata(xml: string): { entityId: string; ssoUrl: string; certificates: string[] } {
  const bad = (why: string) => new AppError(400, 'invalid_metadata', `metadata_xml: ${why}`, { param: 'metadata_xml' });
  if (/<!DOCTYPE/i.test(xml)) throw bad('a DOCTYPE is not accepted');
  let doc: Document;
  try {
    doc = new DOMParser({ errorHandler: { warning: () => undefined, error: () => undefined, fatalError: () => undefined } }).parseFromString(xml, 'text/xml') as unknown as Document;
  } catch {
    throw bad('not well-formed XML');
  }
  const root = doc?.documentElement;
  if (!root || root.namespaceURI !== MD || root.localName !== 'EntityDescriptor') throw bad('expected an md:EntityDescriptor');
  const entityId = root.getAttribute('entityID') ?? '';
  if (!entityId) throw bad('entityID missing');
  const idp = root.getElementsByTagNameNS(MD, 'IDPSSODescriptor')[0];
  if (!idp) throw bad('no IDPSSODescriptor');
  const sso = Array.from(idp.getElementsByTagNameNS(MD, 'SingleSignOnService')).find((e) => e.getAttribute('Binding') === REDIRECT);
  const ssoUrl = sso?.getAttribute('Location') ?? '';
  if (!ssoUrl) throw bad('no SingleSignOnService with the HTTP-Redirect binding');
  const certificates: string[] = [];
  for (const kd of Array.from(idp.getElementsByTagNameNS(MD, 'KeyDescriptor'))) {
    const use = kd.getAttribute('use');
    if (use && use !== 'signing') continue;
    for (const c of Array.from(kd.getElementsByTagNameNS(DS, 'X509Certificate'))) certificates.push(normalizeCertificate(c.textContent ?? ''));
  }
  if (certificates.length === 0) throw bad('no signing certificate');
  return { entityId, ssoUrl, certificates: [...new Set(certificates)] };
}

/** The IdP part of a create/patch, resolved from metadata XML or the explicit fields (explicit wins). */
export function idpParts(input: SamlIdpPatch): { entityId?: string; ssoUrl?: string; certificates?: string[] } {
  const md = input.metadata_xml ? parseIdpMetadata(input.metadata_xml) : undefined;
  const out: { entityId?: string; ssoUrl?: string; certificates?: string[] } = {};
  const entityId = input.idp_entity_id ?? md?.entityId;
  const ssoUrl = input.sso_url ?? md?.ssoUrl;
  const certificates = input.certificates?.map(normalizeCertificate) ?? md?.certificates;
  if (entityId !== undefined) out.entityId = entityId;
  if (ssoUrl !== undefined) {
    const u = new URL(ssoUrl);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new AppError(400, 'invalid_sso_url', 'sso_url must be an http(s) URL.', { param: 'sso_url' });
    out.ssoUrl = ssoUrl;
  }
  if (certificates !== undefined) out.certificates = certificates;
  return out;
}

export function parseSettings(json: string | null): SamlSettings {
  if (!json) throw new AppError(500, 'internal_error', 'SAML IdP without settings');
  return JSON.parse(json) as SamlSettings;
}

/** The admin API's view of a SAML IdP's settings (certificates with their SHA-256 fingerprints and expiry). */
export function samlView(r: { id: string; issuer: string; saml: string | null }) {
  const s = parseSettings(r.saml);
  return {
    idp_entity_id: r.issuer,
    sso_url: s.sso_url,
    certificates: s.certificates.map((c) => {
      const x = new X509Certificate(Buffer.from(c, 'base64'));
      return { fingerprint_sha256: x.fingerprint256, subject: x.subject, not_after: x.validTo, pem: certificatePem(c) };
    }),
    email_attribute: s.email_attribute,
    name_attribute: s.name_attribute,
    groups_attribute: s.groups_attribute,
    roles_attribute: s.roles_attribute,
    allow_idp_initiated: s.allow_idp_initiated,
    metadata_path: `/auth/saml/${r.id}/metadata`,
    acs_path: `/auth/saml/${r.id}/acs`,
  };
}
