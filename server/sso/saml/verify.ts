import { SAML, ValidateInResponseTo, type CacheProvider } from '@node-saml/node-saml';
import { DOMParser } from '@xmldom/xmldom';
import { certificatePem, type SamlSettings } from './settings.js';

/**
 * SAML response checking (issue 24). node-saml verifies the XML signature (response or
 * assertion, against the configured certificates only), audience, NotBefore/NotOnOrAfter
 * with the skew and the InResponseTo → request binding (through `requests`). On top of it,
 * everything we act on is read from the *verified* assertion node-saml hands back (never
 * from the posted document), with the whole text of each element (a comment inside NameID
 * cannot shorten it), and Issuer, Recipient, Destination and Status are checked here.
 */
export const SKEW_MS = 30_000;
const NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const NSP = 'urn:oasis:names:tc:SAML:2.0:protocol';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

export class SamlRefusal extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface SamlEndpoint {
  readonly entityId: string;
  readonly spEntityId: string;
  readonly acsUrl: string;
  readonly settings: SamlSettings;
}

export interface VerifiedAssertion {
  readonly assertionId: string;
  readonly issuer: string;
  readonly nameId: string;
  readonly inResponseTo: string | null;
  /** The earliest NotOnOrAfter of the assertion (replay-cache lifetime). */
  readonly notOnOrAfter: number | null;
  readonly sessionIndex: string | null;
  readonly attributes: Record<string, string[]>;
}

export function samlClient(ep: SamlEndpoint, requests: CacheProvider, requestId?: string, o: { advertise?: boolean } = {}): SAML {
  return new SAML({
    issuer: ep.spEntityId,
    callbackUrl: ep.acsUrl,
    entryPoint: ep.settings.sso_url,
    idpCert: ep.settings.certificates.map(certificatePem),
    audience: ep.spEntityId,
    // Either signature is enough, one of them is required (node-saml refuses an unsigned assertion
    // unless the whole response verified).
    wantAssertionsSigned: o.advertise === true,
    wantAuthnResponseSigned: false,
    acceptedClockSkewMs: SKEW_MS,
    validateInResponseTo: ep.settings.allow_idp_initiated ? ValidateInResponseTo.ifPresent : ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: 600_000,
    cacheProvider: requests,
    identifierFormat: null,
    disableRequestedAuthnContext: true,
    ...(requestId ? { generateUniqueId: () => requestId } : {}),
  });
}

/** node-saml's error message → a stable refusal reason (audited; bounded set). */
export function classifySamlError(e: unknown): string {
  if (e instanceof SamlRefusal) return e.reason;
  const m = e instanceof Error ? e.message : String(e);
  if (/InResponseTo is missing/i.test(m)) return 'unsolicited_response';
  if (/InResponseTo/i.test(m)) return 'in_response_to_invalid';
  if (/multiple assertions/i.test(m)) return 'multiple_assertions';
  if (/signature/i.test(m)) return 'signature_invalid';
  if (/audience/i.test(m)) return 'audience_mismatch';
  if (/NotBefore|not yet valid/i.test(m)) return 'assertion_not_yet_valid';
  if (/NotOnOrAfter|expired|max age/i.test(m)) return 'assertion_expired';
  // The bearer SubjectConfirmationData has only NotOnOrAfter (Web SSO profile: no NotBefore), so
  // node-saml finding no valid confirmation means it expired.
  if (/No valid subject confirmation/i.test(m)) return 'assertion_expired';
  if (/SAML provider returned/i.test(m)) return 'idp_error';
  if (/Missing SAML assertion/i.test(m)) return 'assertion_missing';
  return 'response_invalid';
}

function parse(xml: string): Document {
  if (/<!DOCTYPE/i.test(xml)) throw new SamlRefusal('response_invalid');
  let failed = false;
  const doc = new DOMParser({ errorHandler: { warning: () => undefined, error: () => (failed = true), fatalError: () => (failed = true) } }).parseFromString(xml, 'text/xml') as unknown as Document;
  if (failed || !doc?.documentElement) throw new SamlRefusal('response_invalid');
  return doc;
}

/** Text of an element with comments and processing instructions dropped (all text nodes joined). */
function text(el: Element | undefined | null): string {
  return el ? (el.textContent ?? '').trim() : '';
}

function children(el: Element, ns: string, name: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && (n as Element).namespaceURI === ns && (n as Element).localName === name) out.push(n as Element);
  }
  return out;
}

function time(v: string | null): number | null {
  if (!v) return null;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : null;
}

/** Validates a posted SAMLResponse (base64) for this IdP; throws SamlRefusal or node-saml's error. */
export async function verifyResponse(ep: SamlEndpoint, requests: CacheProvider, samlResponse: string): Promise<VerifiedAssertion> {
  if (samlResponse.length > 300_000 || !/^[A-Za-z0-9+/=\s]+$/.test(samlResponse)) throw new SamlRefusal('response_invalid');
  const raw = Buffer.from(samlResponse, 'base64').toString('utf8');
  const outer = parse(raw).documentElement;
  if (outer.namespaceURI !== NSP || outer.localName !== 'Response') throw new SamlRefusal('response_invalid');
  // Destination is required by the POST binding for signed messages; a response meant for another
  // endpoint is refused even when only its assertion is signed.
  if (outer.getAttribute('Destination') !== ep.acsUrl) throw new SamlRefusal('destination_mismatch');
  const outerIssuer = children(outer, NS, 'Issuer')[0];
  if (outerIssuer && text(outerIssuer) !== ep.entityId) throw new SamlRefusal('issuer_mismatch');
  const status = children(outer, NSP, 'Status')[0];
  const code = status ? children(status, NSP, 'StatusCode')[0]?.getAttribute('Value') : null;
  if (code !== 'urn:oasis:names:tc:SAML:2.0:status:Success') throw new SamlRefusal('idp_error');

  const { profile } = await samlClient(ep, requests).validatePostResponseAsync({ SAMLResponse: samlResponse });
  if (!profile) throw new SamlRefusal('assertion_missing');
  // Only the signed assertion, as node-saml verified it.
  const a = parse(profile.getAssertionXml?.() ?? '').documentElement;
  if (a.namespaceURI !== NS || a.localName !== 'Assertion') throw new SamlRefusal('assertion_missing');
  const assertionId = a.getAttribute('ID') ?? '';
  if (!assertionId) throw new SamlRefusal('response_invalid');
  const issuer = text(children(a, NS, 'Issuer')[0]);
  if (issuer !== ep.entityId) throw new SamlRefusal('issuer_mismatch');
  const subject = children(a, NS, 'Subject')[0];
  if (!subject) throw new SamlRefusal('subject_missing');
  const nameIds = children(subject, NS, 'NameID');
  if (nameIds.length !== 1 || !text(nameIds[0])) throw new SamlRefusal('subject_missing');
  const nameId = text(nameIds[0]);

  // A bearer confirmation addressed to our ACS, within its window, for our request (if any).
  const now = Date.now();
  const inResponseTo = typeof profile.inResponseTo === 'string' ? profile.inResponseTo : null;
  let notOnOrAfter: number | null = null;
  const confirmations = children(subject, NS, 'SubjectConfirmation').filter((c) => c.getAttribute('Method') === BEARER);
  const ok = confirmations.some((c) => {
    const d = children(c, NS, 'SubjectConfirmationData')[0];
    if (!d || d.getAttribute('Recipient') !== ep.acsUrl) return false;
    const irt = d.getAttribute('InResponseTo');
    if (irt && irt !== inResponseTo) return false;
    const nb = time(d.getAttribute('NotBefore'));
    const na = time(d.getAttribute('NotOnOrAfter'));
    if (na === null || now - SKEW_MS >= na || (nb !== null && now + SKEW_MS < nb)) return false;
    notOnOrAfter = na;
    return true;
  });
  if (!ok) throw new SamlRefusal('recipient_mismatch');
  const conditions = children(a, NS, 'Conditions')[0];
  const cna = time(conditions?.getAttribute('NotOnOrAfter') ?? null);
  if (cna !== null && (notOnOrAfter === null || cna < notOnOrAfter)) notOnOrAfter = cna;

  const attributes: Record<string, string[]> = {};
  for (const st of children(a, NS, 'AttributeStatement')) {
    for (const at of children(st, NS, 'Attribute')) {
      const name = at.getAttribute('Name');
      if (!name) continue;
      const vals = children(at, NS, 'AttributeValue').map(text).filter(Boolean).slice(0, 500);
      attributes[name] = [...(attributes[name] ?? []), ...vals];
    }
  }
  const authn = children(a, NS, 'AuthnStatement')[0];
  return { assertionId, issuer, nameId, inResponseTo, notOnOrAfter, sessionIndex: authn?.getAttribute('SessionIndex') ?? null, attributes };
}
