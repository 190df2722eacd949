import { createHash, createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';
import { ensureDir, writeIfChanged, applyMode, type FileChange } from './files.js';
import { GENERATED } from './layout.js';
import { InstallerError } from './exec.js';
import type { CheckOutcome } from '../server/doctor/checks.js';

const DAY = 24 * 60 * 60 * 1000;
/** Leaf validity (≤ 398 days: what browsers accept) and when the installer renews it. */
export const LEAF_DAYS = 397;
export const RENEW_BEFORE_DAYS = 30;
const CA_YEARS = 10;

export interface TlsOptions {
  readonly hostname: string;
  /** Extra subject alternative names (DNS names or IP addresses). */
  readonly extraSans?: readonly string[];
  /** Customer-supplied certificate chain and key (PEM); when given nothing is generated. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /** CA bundle that issued the supplied certificate (for the server's trust of its own URL). */
  readonly caFile?: string;
  readonly chown: boolean;
  readonly now?: Date;
}

export interface TlsResult {
  readonly mode: 'generated' | 'supplied';
  readonly caFingerprint: string;
  readonly changes: FileChange[];
  readonly checks: CheckOutcome[];
}

/** The names the certificate must cover: the hostname, plus any extras. */
export function requiredSans(hostname: string, extra: readonly string[] = []): string[] {
  return [...new Set([hostname, ...extra].map((s) => s.trim().toLowerCase()).filter(Boolean))];
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString('hex');
}

function altNames(names: readonly string[]): { type: number; value?: string; ip?: string }[] {
  return names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

function rsaKeyPair(bits: number): forge.pki.rsa.KeyPair {
  // forge uses Node's native RSA key generation when it is available (fast).
  return forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 });
}

/** A self-signed CA (pathlen 0) for this appliance. */
export function createCa(commonName: string, now = new Date()): { keyPem: string; certPem: string } {
  const keys = rsaKeyPair(3072);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(now.getTime() + CA_YEARS * 365 * DAY);
  const subject = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'Enclave appliance' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), certPem: forge.pki.certificateToPem(cert) };
}

/** A server certificate for `names`, issued by the CA. */
export function issueServerCert(
  ca: { keyPem: string; certPem: string },
  names: readonly string[],
  now = new Date(),
): { keyPem: string; certPem: string } {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = rsaKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(now.getTime() + LEAF_DAYS * DAY);
  cert.setSubject([{ name: 'commonName', value: names[0]! }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(names) },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(keys.privateKey), certPem: forge.pki.certificateToPem(cert) };
}

/** Every PEM certificate in a file, in order. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function covers(cert: X509Certificate, name: string): boolean {
  return isIP(name) ? cert.checkIP(name) !== undefined : cert.checkHost(name, { subject: 'never' }) !== undefined;
}

export interface CertProblem {
  readonly status: 'warn' | 'fail';
  readonly message: string;
}

/**
 * Validates a certificate chain + key pair for serving `names`: parseable, key unencrypted and
 * matching, SANs cover every name, not expired or expiring soon, chain links verify.
 */
export function validateCertificate(
  chainPem: string,
  keyPem: string,
  names: readonly string[],
  opts: { caPem?: string; now?: Date } = {},
): CertProblem[] {
  const now = opts.now ?? new Date();
  const pems = splitPem(chainPem);
  if (pems.length === 0) return [{ status: 'fail', message: 'the certificate file holds no PEM certificate' }];
  let chain: X509Certificate[];
  try {
    chain = pems.map((p) => new X509Certificate(p));
  } catch (e) {
    return [{ status: 'fail', message: `the certificate cannot be parsed (${(e as Error).message})` }];
  }
  const leaf = chain[0]!;
  const problems: CertProblem[] = [];
  let key: KeyObject | undefined;
  if (/ENCRYPTED/.test(keyPem)) {
    problems.push({ status: 'fail', message: 'the private key is encrypted; supply it without a passphrase (the proxy starts unattended)' });
  } else {
    try {
      key = createPrivateKey(keyPem);
    } catch (e) {
      problems.push({ status: 'fail', message: `the private key cannot be parsed (${(e as Error).message})` });
    }
  }
  if (key && !leaf.checkPrivateKey(key)) {
    problems.push({ status: 'fail', message: 'the private key does not match the certificate (key/cert mismatch)' });
  }
  const missing = names.filter((n) => !covers(leaf, n));
  if (missing.length) {
    problems.push({ status: 'fail', message: `the certificate does not cover ${missing.join(', ')} (SANs: ${leaf.subjectAltName ?? 'none'})` });
  }
  const notAfter = new Date(leaf.validTo);
  const notBefore = new Date(leaf.validFrom);
  if (notAfter.getTime() <= now.getTime()) {
    problems.push({ status: 'fail', message: `the certificate expired on ${notAfter.toISOString()}` });
  } else if (notAfter.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY) {
    problems.push({ status: 'warn', message: `the certificate expires on ${notAfter.toISOString()} (within ${RENEW_BEFORE_DAYS} days)` });
  }
  if (notBefore.getTime() > now.getTime()) {
    problems.push({ status: 'fail', message: `the certificate is not valid before ${notBefore.toISOString()} (check the clock)` });
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.verify(chain[i + 1]!.publicKey)) {
      problems.push({ status: 'fail', message: `certificate ${i + 1} of the chain is not signed by certificate ${i + 2}` });
    }
  }
  if (opts.caPem) {
    const cas = splitPem(opts.caPem).map((p) => new X509Certificate(p));
    const top = chain[chain.length - 1]!;
    if (!cas.some((ca) => top.verify(ca.publicKey) || top.fingerprint256 === ca.fingerprint256)) {
      problems.push({ status: 'fail', message: 'the supplied CA bundle did not issue the certificate chain' });
    }
  }
  return problems;
}

export function fingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/**
 * Makes tls/ ready: a supplied certificate is validated and copied; otherwise the appliance CA
 * is created once and the server certificate is (re)issued only when it is missing, does not
 * cover the names, or expires within RENEW_BEFORE_DAYS.
 */
export function ensureTls(dir: string, opts: TlsOptions): TlsResult {
  const now = opts.now ?? new Date();
  const names = requiredSans(opts.hostname, opts.extraSans);
  const p = (f: string): string => path.join(dir, f);
  ensureDir(p(GENERATED.tlsDir), 0o755);
  const changes: FileChange[] = [];
  const chown = opts.chown;

  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new InstallerError('--tls-cert and --tls-key go together');
    const chainPem = readFileSync(opts.certFile, 'utf8');
    const keyPem = readFileSync(opts.keyFile, 'utf8');
    const caPem = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
    const problems = validateCertificate(chainPem, keyPem, names, { caPem, now });
    const fails = problems.filter((x) => x.status === 'fail');
    if (fails.length) {
      throw new InstallerError(`supplied TLS certificate refused: ${fails.map((f) => f.message).join('; ')}`);
    }
    changes.push(writeIfChanged(p(GENERATED.serverCert), chainPem, { mode: 0o644, chown }));
    changes.push(writeIfChanged(p(GENERATED.serverKey), keyPem, { mode: 0o600, owner: 'nginx', chown }));
    // The server trusts its own public URL through this bundle (NODE_EXTRA_CA_CERTS).
    const trust = caPem ?? splitPem(chainPem).at(-1)!;
    changes.push(writeIfChanged(p(GENERATED.caCert), trust.endsWith('\n') ? trust : trust + '\n', { mode: 0o644, chown }));
    const checks: CheckOutcome[] = problems.map((x) => ({ id: 'tls', status: x.status, message: x.message }));
    if (!checks.length) checks.push({ id: 'tls', status: 'ok', message: `supplied certificate covers ${names.join(', ')}` });
    return { mode: 'supplied', caFingerprint: fingerprint(trust), changes, checks };
  }

  let ca: { keyPem: string; certPem: string };
  if (existsSync(p(GENERATED.caKey)) && existsSync(p(GENERATED.caCert))) {
    ca = { keyPem: readFileSync(p(GENERATED.caKey), 'utf8'), certPem: readFileSync(p(GENERATED.caCert), 'utf8') };
    applyMode(p(GENERATED.caKey), { mode: 0o600, chown: false });
    changes.push({ path: p(GENERATED.caKey), action: 'kept' });
  } else {
    ca = createCa(`Enclave CA ${opts.hostname}`, now);
    changes.push(writeIfChanged(p(GENERATED.caKey), ca.keyPem, { mode: 0o600, owner: 'root', chown }));
    changes.push(writeIfChanged(p(GENERATED.caCert), ca.certPem, { mode: 0o644, chown }));
  }

  let reissue = true;
  if (existsSync(p(GENERATED.serverCert)) && existsSync(p(GENERATED.serverKey))) {
    const problems = validateCertificate(readFileSync(p(GENERATED.serverCert), 'utf8'), readFileSync(p(GENERATED.serverKey), 'utf8'), names, {
      caPem: ca.certPem,
      now,
    });
    reissue = problems.length > 0;
  }
  if (reissue) {
    const leaf = issueServerCert(ca, names, now);
    changes.push(writeIfChanged(p(GENERATED.serverKey), leaf.keyPem, { mode: 0o600, owner: 'nginx', chown }));
    changes.push(writeIfChanged(p(GENERATED.serverCert), leaf.certPem + ca.certPem, { mode: 0o644, chown }));
  } else {
    applyMode(p(GENERATED.serverKey), { mode: 0o600, owner: 'nginx', chown });
    changes.push({ path: p(GENERATED.serverCert), action: 'kept' });
  }
  return {
    mode: 'generated',
    caFingerprint: fingerprint(ca.certPem),
    changes,
    checks: [{ id: 'tls', status: 'ok', message: `appliance CA; server certificate for ${names.join(', ')}` }],
  };
}

export const sha256 = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');
