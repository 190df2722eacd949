import { execFileSync } from 'node:child_process';
import { createHmac, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { armor, dearmor } from '../../license/armor.js';
import { certifyIssuer } from '../../license/cert.js';
import { LicenseError } from '../../license/errors.js';
import { issueLicense } from '../../license/issue.js';
import { signCompact } from '../../license/jws.js';
import { newKeyFile, signingKey } from '../../license/keys.js';
import { trustStore, type TrustStore } from '../../license/trust.js';
import { verifyLicense, type VerifyContext } from '../../license/verify.js';
import { TEST_ISSUER, TEST_ROOT, spec, testLicense } from '../helpers/license.js';

const test = trustStore('test');
const ctx: VerifyContext = { store: test, installationId: 'inst_aaaaaaaaaaaaaaaaaaaaaaaaaa', environment: 'production' };
const GOLDEN = readFileSync('test/fixtures/license/golden.lic', 'utf8');

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof LicenseError) return e.code;
    throw e;
  }
  return 'valid';
}
const verifyCode = (text: string, c: VerifyContext = ctx): string => code(() => verifyLicense(text, c));
const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const parts = (text: string): [string, string, string] => dearmor(text).split('.') as [string, string, string];
const header = (text: string): Record<string, unknown> => JSON.parse(Buffer.from(parts(text)[0], 'base64url').toString());

describe('golden vector', () => {
  it('verifies in TypeScript with the expected content', () => {
    const v = verifyLicense(GOLDEN, ctx);
    expect(v.payload.lid).toBe('lic_golden0001');
    expect(v.payload.seq).toBe(7);
    expect(v.issuerKid).toBe(TEST_ISSUER.kid);
    expect(v.rootKid).toBe(TEST_ROOT.kid);
    expect(v.rootTrust).toBe('test');
    expect(v.payload.capabilities).toContain('future.capability');
  });

  it('verifies with an independent verifier: the openssl command line (licence and issuer certificate)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'enclave-golden-'));
    try {
      const osslVerify = (compact: string, publicKeyB64u: string): string => {
        const [h, p, s] = compact.split('.') as [string, string, string];
        const pem = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKeyB64u }, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
        writeFileSync(path.join(dir, 'pub.pem'), pem);
        writeFileSync(path.join(dir, 'msg'), `${h}.${p}`);
        writeFileSync(path.join(dir, 'sig'), Buffer.from(s, 'base64url'));
        return execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-rawin', '-in', 'msg', '-sigfile', 'sig'], { cwd: dir, encoding: 'utf8' });
      };
      const compact = dearmor(GOLDEN);
      expect(osslVerify(compact, TEST_ISSUER.publicKey)).toMatch(/Signature Verified Successfully/);
      const ic = header(GOLDEN).ic as string;
      expect(osslVerify(ic, TEST_ROOT.publicKey)).toMatch(/Signature Verified Successfully/);
      // And openssl refuses a flipped byte, so the check above is meaningful.
      const [h, p, s] = compact.split('.') as [string, string, string];
      const bad = Buffer.from(p, 'base64url');
      bad[5]! ^= 1;
      expect(() => osslVerify(`${h}.${bad.toString('base64url')}.${s}`, TEST_ISSUER.publicKey)).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tampering: flipping any byte is rejected', () => {
  const compact = dearmor(GOLDEN);
  const [h, p, s] = compact.split('.') as [string, string, string];
  const segments: [string, number][] = [
    ['header', 0],
    ['payload', 1],
    ['signature', 2],
  ];
  for (const [name, idx] of segments) {
    it(`every byte of the ${name}`, () => {
      const seg = [h, p, s][idx]!;
      const bytes = Buffer.from(seg, 'base64url');
      for (let i = 0; i < bytes.length; i++) {
        const copy = Buffer.from(bytes);
        copy[i]! ^= 0x01;
        const segs = [h, p, s];
        segs[idx] = copy.toString('base64url');
        expect(verifyCode(armor(segs.join('.'))), `${name} byte ${i}`).not.toBe('valid');
      }
    });
  }

  it('every byte of the issuer certificate (ic) — re-signed with the genuine issuer so only the certificate is wrong', () => {
    const hdr = header(GOLDEN);
    const [ch, cp, cs] = (hdr.ic as string).split('.') as [string, string, string];
    const issuer = signingKey(TEST_ISSUER);
    for (const [idx, seg] of [ch, cp, cs].entries()) {
      const bytes = Buffer.from(seg, 'base64url');
      for (let i = 0; i < bytes.length; i += idx === 2 ? 1 : 3) {
        const copy = Buffer.from(bytes);
        copy[i]! ^= 0x01;
        const segs = [ch, cp, cs];
        segs[idx] = copy.toString('base64url');
        const forged = signCompact({ ...hdr, ic: segs.join('.') }, Buffer.from(p, 'base64url'), issuer.key);
        expect(verifyCode(armor(forged)), `ic part ${idx} byte ${i}`).not.toBe('valid');
      }
    }
  });

  it('a changed payload re-signed by a key that is not the certified issuer', () => {
    const other = signingKey(newKeyFile('issuer'));
    const forged = signCompact(header(GOLDEN), Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), seq: 99 })), other.key);
    expect(verifyCode(armor(forged))).toBe('bad_signature');
  });
});

describe('strict header profile', () => {
  const [h, p, s] = parts(GOLDEN);
  const hdr = header(GOLDEN);
  const withHeader = (o: Record<string, unknown>, sig = s): string => armor(`${b64(o)}.${p}.${sig}`);

  it('alg none (with and without a signature) is refused', () => {
    expect(verifyCode(withHeader({ ...hdr, alg: 'none' }))).toBe('alg_not_allowed');
    expect(verifyCode(armor(`${b64({ ...hdr, alg: 'none' })}.${p}.`))).toBe('malformed');
    expect(verifyCode(withHeader({ ...hdr, alg: 'NONE' }))).toBe('alg_not_allowed');
  });

  it('HS256 signed with the public key as the HMAC secret is refused', () => {
    const forgedHeader = b64({ ...hdr, alg: 'HS256' });
    const mac = createHmac('sha256', Buffer.from(TEST_ISSUER.publicKey, 'base64url')).update(`${forgedHeader}.${p}`).digest('base64url');
    expect(verifyCode(armor(`${forgedHeader}.${p}.${mac}`))).toBe('alg_not_allowed');
    const mac2 = createHmac('sha256', TEST_ISSUER.publicKey).update(`${forgedHeader}.${p}`).digest('base64url');
    expect(verifyCode(armor(`${forgedHeader}.${p}.${mac2}`))).toBe('alg_not_allowed');
  });

  it('other algorithms, crit, jku, x5u, jwk, x5c and unknown members are refused', () => {
    expect(verifyCode(withHeader({ ...hdr, alg: 'RS256' }))).toBe('alg_not_allowed');
    expect(verifyCode(withHeader({ ...hdr, alg: 'ES256' }))).toBe('alg_not_allowed');
    for (const k of ['crit', 'jku', 'x5u', 'jwk', 'x5c', 'b64', 'zip']) {
      expect(verifyCode(withHeader({ ...hdr, [k]: k === 'crit' ? ['exp'] : 'x' })), k).toBe('header_param_not_allowed');
    }
    expect(verifyCode(withHeader({ ...hdr, extra: 1 }))).toBe('header_param_not_allowed');
  });

  it('missing or wrong typ, kid and ic are refused', () => {
    const { typ: _t, ...noTyp } = hdr;
    expect(verifyCode(withHeader(noTyp))).toBe('wrong_type');
    expect(verifyCode(withHeader({ ...hdr, typ: 'JWT' }))).toBe('wrong_type');
    const { kid: _k, ...noKid } = hdr;
    expect(verifyCode(withHeader(noKid))).toBe('bad_header');
    const { ic: _i, ...noIc } = hdr;
    expect(verifyCode(withHeader(noIc))).toBe('bad_header');
  });

  it('duplicate JSON keys in the header or payload are refused', () => {
    const dupHeader = Buffer.from(`{"alg":"EdDSA","alg":"EdDSA","typ":"${hdr.typ}","kid":"${hdr.kid}","ic":"${hdr.ic}"}`).toString('base64url');
    expect(verifyCode(armor(`${dupHeader}.${p}.${s}`))).toBe('duplicate_json_key');
    const body = Buffer.from(p, 'base64url').toString();
    const dupPayload = Buffer.from(body.replace('"seq":7', '"seq":7,"seq":70')).toString('base64url');
    const issuer = signingKey(TEST_ISSUER);
    const signed = signCompact(hdr, Buffer.from(Buffer.from(dupPayload, 'base64url')), issuer.key);
    expect(verifyCode(armor(signed))).toBe('duplicate_json_key');
    expect(verifyCode(armor(`${h}.${p}.${s}`))).toBe('valid');
  });

  it('non-canonical base64url, padding and wrong part counts are refused', () => {
    expect(verifyCode(armor(`${h}.${p}=.${s}`))).toBe('armor_invalid');
    expect(verifyCode(armor(`${h}.${p}`))).toBe('malformed');
    expect(verifyCode(armor(`${h}.${p}.${s}.x`))).toBe('malformed');
    const last = s.at(-1)!;
    const tweaked = s.slice(0, -1) + (last === 'A' ? 'B' : 'A');
    expect(verifyCode(armor(`${h}.${p}.${tweaked}`))).not.toBe('valid');
  });
});

describe('key chain', () => {
  it('production mode refuses a licence from the test root with a clear reason', () => {
    const prod: VerifyContext = { ...ctx, store: trustStore('production') };
    expect(verifyCode(GOLDEN, prod)).toBe('unknown_key');
    expect(() => verifyLicense(GOLDEN, prod)).toThrow(/ENCLAVE_LICENSE_MODE=test/);
  });

  it('an issuer not chained to a trusted root is refused', () => {
    const rogueRoot = signingKey(newKeyFile('root'));
    const iss = newKeyFile('issuer');
    const now = Math.floor(Date.now() / 1000);
    const rogue = { ...iss, certificate: certifyIssuer(rogueRoot, iss, { nbf: now - 100, exp: now + 10_000 }) };
    expect(verifyCode(testLicense({}, Date.now(), rogue))).toBe('unknown_key');
  });

  it('the header kid must be the certified issuer', () => {
    const other = newKeyFile('issuer');
    const mixed = { ...other, certificate: TEST_ISSUER.certificate! };
    expect(verifyCode(testLicense({}, Date.now(), mixed))).toBe('kid_mismatch');
  });

  it('revoked issuer kid, revoked root kid and revoked licence id are refused', () => {
    const rev = (kids: string[], lids: string[] = []): TrustStore => trustStore('test', { revocations: [{ seq: 2, kids, lids }] });
    expect(verifyCode(GOLDEN, { ...ctx, store: rev([TEST_ISSUER.kid]) })).toBe('key_revoked');
    expect(verifyCode(GOLDEN, { ...ctx, store: rev([TEST_ROOT.kid]) })).toBe('key_revoked');
    expect(verifyCode(GOLDEN, { ...ctx, store: rev([], ['lic_golden0001']) })).toBe('license_revoked');
  });

  it('an issuer that had expired (or was not yet valid) at the licence iat is refused', () => {
    const root = signingKey(TEST_ROOT);
    const iss = newKeyFile('issuer');
    const now = Math.floor(Date.now() / 1000);
    const expired = { ...iss, certificate: certifyIssuer(root, iss, { nbf: now - 1000, exp: now - 500 }) };
    // The issuer CLI refuses to sign outside the window; forge the licence by hand.
    const text = armor(signCompact({ alg: 'EdDSA', typ: 'enclave-license+jws;v=1', kid: iss.kid, ic: expired.certificate }, Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(parts(GOLDEN)[1], 'base64url').toString()), iat: now })), signingKey(iss).key));
    expect(verifyCode(text)).toBe('issuer_expired');
    const future = { ...iss, certificate: certifyIssuer(root, iss, { nbf: now + 1000, exp: now + 5000 }) };
    const text2 = armor(signCompact({ alg: 'EdDSA', typ: 'enclave-license+jws;v=1', kid: iss.kid, ic: future.certificate }, Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(parts(GOLDEN)[1], 'base64url').toString()), iat: now })), signingKey(iss).key));
    expect(verifyCode(text2)).toBe('issuer_not_yet_valid');
    expect(code(() => issueLicense(expired, spec()))).toBe('issuer_expired');
  });
});

describe('armour robustness', () => {
  const compact = dearmor(GOLDEN);
  it('CRLF, 64 and 76 column wrapping, one long line, indentation and surrounding text all verify', () => {
    const wrap = (n: number, eol: string): string => `-----BEGIN ENCLAVE LICENSE-----${eol}${compact.match(new RegExp(`.{1,${n}}`, 'g'))!.join(eol)}${eol}-----END ENCLAVE LICENSE-----${eol}`;
    for (const t of [wrap(64, '\r\n'), wrap(76, '\n'), wrap(76, '\r\n'), wrap(100000, '\n'), `\n\n   ${wrap(64, '\n').replace(/\n/g, '\n    ')}  \n\n`, `Hello,\r\nyour licence:\r\n\r\n${wrap(64, '\r\n')}\r\nRegards`]) {
      expect(verifyCode(t)).toBe('valid');
    }
  });

  it('truncation, a missing header or footer, two licences, foreign characters and oversize give clear errors', () => {
    expect(verifyCode(GOLDEN.replace('-----END ENCLAVE LICENSE-----', ''))).toBe('armor_missing_footer');
    expect(() => verifyLicense(GOLDEN.slice(0, GOLDEN.length / 2), ctx)).toThrow(/truncated/);
    expect(verifyCode(GOLDEN.replace('-----BEGIN ENCLAVE LICENSE-----', ''))).toBe('armor_missing_header');
    expect(verifyCode('')).toBe('armor_missing_header');
    expect(verifyCode(GOLDEN + GOLDEN)).toBe('armor_invalid');
    expect(verifyCode(GOLDEN.replace('eyJ', 'ey J*'))).toBe('armor_invalid');
    expect(verifyCode(armor('a'.repeat(70_000)))).toBe('too_large');
    // A line dropped from the middle (a bad copy and paste).
    const lines = GOLDEN.split('\n');
    expect(verifyCode([...lines.slice(0, 5), ...lines.slice(6)].join('\n'))).not.toBe('valid');
  });
});

describe('audience', () => {
  it('a licence for another installation is refused naming both ids; "*" and the right id pass', () => {
    const t = testLicense({ aud: { installation: 'inst_bbbbbbbbbbbbbbbbbbbbbbbbbb' } });
    expect(verifyCode(t)).toBe('installation_mismatch');
    expect(() => verifyLicense(t, ctx)).toThrow(/inst_bbbbbbbbbbbbbbbbbbbbbbbbbb.*inst_aaaaaaaaaaaaaaaaaaaaaaaaaa/);
    expect(verifyCode(testLicense({ aud: { installation: ctx.installationId! } }))).toBe('valid');
    expect(verifyCode(testLicense())).toBe('valid');
  });

  it('a licence for another product is refused', () => {
    expect(verifyCode(testLicense({ aud: { product: 'other' } }))).toBe('wrong_product');
  });

  it('a non_production licence is refused on a production installation and accepted on a non_production one', () => {
    const t = testLicense({ aud: { environment: 'non_production' } });
    expect(verifyCode(t)).toBe('environment_mismatch');
    expect(verifyCode(t, { ...ctx, environment: 'non_production' })).toBe('valid');
    expect(verifyCode(testLicense(), { ...ctx, environment: 'non_production' })).toBe('valid');
  });

  it('a payload that breaks the schema is refused even when correctly signed', () => {
    const issuer = signingKey(TEST_ISSUER);
    const body = JSON.parse(Buffer.from(parts(GOLDEN)[1], 'base64url').toString());
    for (const broken of [{ ...body, v: 2 }, { ...body, seq: 0 }, { ...body, term: { grace_days: 1 } }, { ...body, lid: 'x' }, { ...body, iat: 'now' }]) {
      const t = armor(signCompact(header(GOLDEN), Buffer.from(JSON.stringify(broken)), issuer.key));
      expect(verifyCode(t)).toBe('bad_payload');
    }
  });
});

describe('fuzz: mutated licences never verify and never throw anything but LicenseError', () => {
  it('2,000 random mutations', () => {
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=\n\r \t*';
    for (let i = 0; i < 2000; i++) {
      const chars = [...GOLDEN];
      const edits = 1 + rnd(4);
      for (let e = 0; e < edits; e++) {
        const pos = 32 + rnd(chars.length - 64);
        const op = rnd(3);
        if (op === 0) chars[pos] = alphabet[rnd(alphabet.length)]!;
        else if (op === 1) chars.splice(pos, 1);
        else chars.splice(pos, 0, alphabet[rnd(alphabet.length)]!);
      }
      const mutated = chars.join('');
      if (mutated.replace(/\s+/g, '') === GOLDEN.replace(/\s+/g, '')) continue;
      expect(verifyCode(mutated)).not.toBe('valid');
    }
  });
});
