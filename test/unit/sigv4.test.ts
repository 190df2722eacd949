import { describe, expect, it } from 'vitest';
import { amzDate, canonicalQuery, canonicalUri, signV4, type SignInput } from '../../server/providers/bedrock/sigv4.js';

/**
 * SigV4 against AWS's published Signature Version 4 test suite (aws-sig-v4-test-suite:
 * credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1, service `service`). Each
 * expected signature is the suite's `.authz` file; a signer that gets one byte of the
 * canonical request, the scope or the key derivation wrong cannot produce them.
 */
const SUITE = {
  region: 'us-east-1',
  service: 'service',
  amzDate: '20150830T123600Z',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
} as const;
const TOKEN =
  'AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==';
const base = { host: 'example.amazonaws.com', 'X-Amz-Date': '20150830T123600Z' };
const authz = (signed: string, sig: string): string =>
  `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=${signed}, Signature=${sig}`;

function sign(p: Partial<SignInput> & Pick<SignInput, 'method'>) {
  return signV4({ ...SUITE, path: '/', query: '', headers: base, body: '', ...p });
}

describe('SigV4 (AWS test suite vectors)', () => {
  it('get-vanilla: canonical request, string to sign and signature', () => {
    const s = sign({ method: 'GET' });
    expect(s.canonicalRequest).toBe('GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(s.stringToSign).toBe('AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63');
    expect(s.authorization).toBe(authz('host;x-amz-date', '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'));
  });
  it('post-vanilla', () => {
    expect(sign({ method: 'POST' }).authorization).toBe(authz('host;x-amz-date', '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b'));
  });
  it('get-vanilla-query-order-key-case: the query is sorted before signing', () => {
    expect(sign({ method: 'GET', query: 'Param2=value2&Param1=value1' }).authorization).toBe(
      authz('host;x-amz-date', 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500'),
    );
  });
  it('post-header-value-case: header names lower-cased and sorted, values kept', () => {
    expect(sign({ method: 'POST', headers: { ...base, 'My-Header1': 'VALUE1' } }).authorization).toBe(
      authz('host;my-header1;x-amz-date', 'cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d'),
    );
  });
  it('post-sts-header-before: a session token is a signed header', () => {
    const s = sign({ method: 'POST', headers: { ...base, 'X-Amz-Security-Token': TOKEN } });
    expect(s.stringToSign.split('\n')[3]).toBe('c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6');
    expect(s.authorization).toBe(authz('host;x-amz-date;x-amz-security-token', '85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead'));
  });
  it('a different secret, date or body gives a different signature', () => {
    const ref = sign({ method: 'POST', body: '{}' }).signature;
    expect(sign({ method: 'POST', body: '{ }' }).signature).not.toBe(ref);
    expect(sign({ method: 'POST', body: '{}', amzDate: '20150830T123601Z', headers: { ...base, 'X-Amz-Date': '20150830T123601Z' } }).signature).not.toBe(ref);
    expect(sign({ method: 'POST', body: '{}', credentials: { ...SUITE.credentials, secretAccessKey: 'x' } }).signature).not.toBe(ref);
  });
});

describe('SigV4 canonical parts', () => {
  it('encodes each path segment of the sent path once more (a Bedrock model id’s %3A is signed as %253A)', () => {
    expect(canonicalUri('/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse')).toBe('/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse');
    expect(canonicalUri('/')).toBe('/');
    expect(canonicalUri('/a b/c')).toBe('/a%20b/c');
  });
  it('sorts and encodes query parameters (RFC 3986, upper-case hex)', () => {
    expect(canonicalQuery('b=2&a=1&A=0')).toBe('A=0&a=1&b=2');
    expect(canonicalQuery("x=a b*(')!")).toBe('x=a%20b%2A%28%27%29%21');
    expect(canonicalQuery('')).toBe('');
  });
  it('formats x-amz-date', () => {
    expect(amzDate(Date.UTC(2015, 7, 30, 12, 36, 0, 123))).toBe('20150830T123600Z');
  });
});
