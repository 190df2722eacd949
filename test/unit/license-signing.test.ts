import { describe, expect, it } from 'vitest';
import { certifyIssuer } from '../../license/cert.js';
import { LicenseError } from '../../license/errors.js';
import { newKeyFile, readKeyFile, signingKey } from '../../license/keys.js';
import { signDetached, verifyDetached } from '../../license/signing.js';
import { trustStore } from '../../license/trust.js';

const ISSUER = 'license/keys/test/issuer.key.json';
const bytes = Buffer.from('{"files":[{"name":"enclave.tar","sha256":"00"}]}');

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof LicenseError) return e.code;
    throw e;
  }
  return 'no error';
}

describe('detached signatures', () => {
  const sig = signDetached(ISSUER, bytes, { purpose: 'bundle-manifest' });

  it('verifies in test mode and names the chain', () => {
    const v = verifyDetached(bytes, sig, { mode: 'test', purpose: 'bundle-manifest' });
    expect(v.issuerKid).toBe(readKeyFile(ISSUER).kid);
    expect(v.rootTrust).toBe('test');
  });

  it('tolerates whitespace and line wrapping around the signature', () => {
    const wrapped = sig.replace(/(.{64})/g, '$1\r\n') + '\n';
    expect(verifyDetached(bytes, wrapped, { mode: 'test' }).purpose).toBe('bundle-manifest');
  });

  it('refuses the test root in production mode', () => {
    expect(code(() => verifyDetached(bytes, sig, { mode: 'production' }))).toBe('unknown_key');
  });

  it('refuses changed bytes, another purpose, and a flipped signature byte', () => {
    expect(code(() => verifyDetached(Buffer.concat([bytes, Buffer.from(' ')]), sig, { mode: 'test' }))).toBe('bad_signature');
    expect(code(() => verifyDetached(bytes, sig, { mode: 'test', purpose: 'licence' }))).toBe('wrong_type');
    const [h, p, s] = sig.split('.') as [string, string, string];
    const raw = Buffer.from(s, 'base64url');
    raw[10]! ^= 1;
    expect(code(() => verifyDetached(bytes, `${h}.${p}.${raw.toString('base64url')}`, { mode: 'test' }))).toBe('bad_signature');
  });

  it('honours revocation of the issuer and of the root', () => {
    const kid = readKeyFile(ISSUER).kid;
    const store = trustStore('test', { revocations: [{ seq: 2, kids: [kid], lids: [] }] });
    expect(code(() => verifyDetached(bytes, sig, { mode: 'test', store }))).toBe('key_revoked');
    const rootKid = readKeyFile('license/keys/test/root.key.json').kid;
    const store2 = trustStore('test', { revocations: [{ seq: 2, kids: [rootKid], lids: [] }] });
    expect(code(() => verifyDetached(bytes, sig, { mode: 'test', store: store2 }))).toBe('key_revoked');
  });

  it('refuses an issuer certified by an untrusted root, and one that had expired when it signed', () => {
    const rogueRoot = signingKey(newKeyFile('root'));
    const issuer = newKeyFile('issuer');
    const now = Math.floor(Date.now() / 1000);
    const rogue = { ...issuer, certificate: certifyIssuer(rogueRoot, issuer, { nbf: now - 10, exp: now + 1000 }) };
    expect(code(() => verifyDetached(bytes, signDetached(rogue, bytes), { mode: 'test' }))).toBe('unknown_key');

    const testRoot = signingKey(readKeyFile('license/keys/test/root.key.json'));
    const old = { ...issuer, certificate: certifyIssuer(testRoot, issuer, { nbf: now - 1000, exp: now - 100 }) };
    expect(code(() => verifyDetached(bytes, signDetached(old, bytes), { mode: 'test' }))).toBe('issuer_expired');
  });

  it('refuses a key without certificate when signing', () => {
    expect(code(() => signDetached(newKeyFile('issuer'), bytes))).toBe('bad_key_file');
  });
});
