import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import forge from 'node-forge';
import { SignedXml } from 'xml-crypto';

/**
 * A test SAML 2.0 IdP: its own RSA key and self-signed certificate, Responses/Assertions
 * built as XML text and signed with xml-crypto (enveloped, exc-c14n, RSA-SHA256), so tests
 * can craft every bad variant (unsigned, another key, wrapping, tampering after signing …).
 */
export interface SamlKey {
  readonly privateKeyPem: string;
  readonly certPem: string;
  /** Base64 DER, as in metadata. */
  readonly certB64: string;
}

export function makeSamlKey(cn = 'Test SAML IdP'): SamlKey {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 86_400_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  const attrs = [{ name: 'commonName', value: cn }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return {
    privateKeyPem: forge.pki.privateKeyToPem(keys.privateKey),
    certPem,
    certB64: forge.util.encode64(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes()),
  };
}

const iso = (ms: number) => new Date(ms).toISOString();
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export const newSamlId = () => `_${randomBytes(16).toString('hex')}`;

/** Signs the element with this ID (enveloped signature placed right after its Issuer). */
export function signXml(xml: string, id: string, key: SamlKey, localName: 'Assertion' | 'Response'): string {
  const sig = new SignedXml({ privateKey: key.privateKeyPem, publicCert: key.certPem });
  sig.canonicalizationAlgorithm = 'http://www.w3.org/2001/10/xml-exc-c14n#';
  sig.signatureAlgorithm = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
  sig.addReference({
    xpath: `//*[local-name(.)='${localName}' and @ID='${id}']`,
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  });
  sig.computeSignature(xml, {
    prefix: 'ds',
    location: { reference: `//*[local-name(.)='${localName}' and @ID='${id}']/*[local-name(.)='Issuer']`, action: 'after' },
  });
  return sig.getSignedXml();
}

export interface AssertionOpts {
  id?: string;
  issuer: string;
  nameId: string;
  audience: string;
  recipient: string;
  inResponseTo?: string | null;
  notBefore?: number;
  notOnOrAfter?: number;
  attributes?: Record<string, string[]>;
}

export function assertionXml(o: AssertionOpts): string {
  const now = Date.now();
  const nb = o.notBefore ?? now - 5_000;
  const na = o.notOnOrAfter ?? now + 300_000;
  const irt = o.inResponseTo ? ` InResponseTo="${esc(o.inResponseTo)}"` : '';
  const attrs = Object.entries(o.attributes ?? {})
    .map(([n, vs]) => `<saml:Attribute Name="${esc(n)}">${vs.map((v) => `<saml:AttributeValue>${esc(v)}</saml:AttributeValue>`).join('')}</saml:Attribute>`)
    .join('');
  return (
    `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${o.id ?? newSamlId()}" Version="2.0" IssueInstant="${iso(now)}">` +
    `<saml:Issuer>${esc(o.issuer)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(o.nameId)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${iso(na)}" Recipient="${esc(o.recipient)}"${irt}/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${iso(nb)}" NotOnOrAfter="${iso(na)}"><saml:AudienceRestriction><saml:Audience>${esc(o.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="${newSamlId()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '') +
    `</saml:Assertion>`
  );
}

/** A Response around `inner` (assertions or anything else, as text). */
export function responseXml(o: { id?: string; issuer: string; destination: string | null; inResponseTo?: string | null; inner: string; extensions?: string }): string {
  const irt = o.inResponseTo ? ` InResponseTo="${esc(o.inResponseTo)}"` : '';
  const dest = o.destination !== null ? ` Destination="${esc(o.destination)}"` : '';
  return (
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${o.id ?? newSamlId()}" Version="2.0" IssueInstant="${iso(Date.now())}"${dest}${irt}>` +
    `<saml:Issuer>${esc(o.issuer)}</saml:Issuer>` +
    (o.extensions ? `<samlp:Extensions>${o.extensions}</samlp:Extensions>` : '') +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    o.inner +
    `</samlp:Response>`
  );
}

/** The AuthnRequest of an HTTP-Redirect URL: its ID and the ACS it asks for. */
export function readAuthnRequest(url: string): { id: string; acs: string; issuer: string; relayState: string | null } {
  const u = new URL(url);
  const xml = inflateRawSync(Buffer.from(u.searchParams.get('SAMLRequest') ?? '', 'base64')).toString('utf8');
  const attr = (n: string) => new RegExp(`${n}="([^"]*)"`).exec(xml)?.[1] ?? '';
  return { id: attr('ID'), acs: attr('AssertionConsumerServiceURL'), issuer: /<saml:Issuer[^>]*>([^<]*)</.exec(xml)?.[1] ?? '', relayState: u.searchParams.get('RelayState') };
}

/** The IdP's metadata XML (for the import path). */
export function idpMetadataXml(entityId: string, ssoUrl: string, key: SamlKey): string {
  return (
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${esc(entityId)}">` +
    `<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
    `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${key.certB64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
    `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${esc(ssoUrl)}"/>` +
    `</md:IDPSSODescriptor></md:EntityDescriptor>`
  );
}

export const b64 = (xml: string) => Buffer.from(xml, 'utf8').toString('base64');

/** The SP side a test talks to: where the AuthnRequest came from and where to post. */
export interface SamlStart {
  readonly requestId: string;
  readonly acs: string;
  /** Our SP entity id (the AuthnRequest's Issuer): the audience to put in assertions. */
  readonly audience: string;
  readonly location: string;
}

/** The signed-Response builder with good defaults; every field can be overridden or broken. */
export function signedResponse(
  key: SamlKey,
  o: { issuer: string; nameId: string; start: Pick<SamlStart, 'acs' | 'audience'> & { requestId: string | null }; attributes?: Record<string, string[]>; assertionId?: string; signResponse?: boolean; signAssertion?: boolean },
): string {
  const aid = o.assertionId ?? newSamlId();
  let assertion = assertionXml({ id: aid, issuer: o.issuer, nameId: o.nameId, audience: o.start.audience, recipient: o.start.acs, inResponseTo: o.start.requestId, attributes: o.attributes ?? {} });
  if (o.signAssertion !== false) assertion = signXml(assertion, aid, key, 'Assertion');
  const rid = newSamlId();
  let xml = responseXml({ id: rid, issuer: o.issuer, destination: o.start.acs, inResponseTo: o.start.requestId, inner: assertion });
  if (o.signResponse) xml = signXml(xml, rid, key, 'Response');
  return xml;
}

/**
 * The test IdP as a web server (for the browser test): GET /sso?SAMLRequest=… answers a page
 * that auto-posts the signed Response for `nextLogin` to the ACS the request named.
 */
export interface SamlIdpServer {
  readonly entityId: string;
  readonly ssoUrl: string;
  readonly key: SamlKey;
  nextLogin: { nameId: string; attributes?: Record<string, string[]> } | null;
  close(): Promise<void>;
}

export async function listenSamlIdp(): Promise<SamlIdpServer> {
  const { createServer } = await import('node:http');
  const key = makeSamlKey();
  const state: { nextLogin: SamlIdpServer['nextLogin'] } = { nextLogin: null };
  const server = createServer((req, res) => {
    const url = `http://127.0.0.1${req.url ?? '/'}`;
    if (!req.url?.startsWith('/sso?') || !state.nextLogin) {
      res.writeHead(400).end('no login prepared');
      return;
    }
    const ar = readAuthnRequest(url);
    const xml = signedResponse(key, { issuer: idp.entityId, nameId: state.nextLogin.nameId, start: { requestId: ar.id, acs: ar.acs, audience: ar.issuer }, ...(state.nextLogin.attributes ? { attributes: state.nextLogin.attributes } : {}) });
    const relay = ar.relayState ? `<input type="hidden" name="RelayState" value="${esc(ar.relayState)}">` : '';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><html lang="en"><head><title>Test IdP</title></head><body><form method="post" action="${esc(ar.acs)}">` +
        `<input type="hidden" name="SAMLResponse" value="${b64(xml)}">${relay}<noscript><button>Continue</button></noscript></form>` +
        `<script>document.forms[0].submit()</script></body></html>`,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const idp: SamlIdpServer = {
    entityId: `http://127.0.0.1:${port}/saml`,
    ssoUrl: `http://127.0.0.1:${port}/sso`,
    key,
    get nextLogin() {
      return state.nextLogin;
    },
    set nextLogin(v) {
      state.nextLogin = v;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  return idp;
}
