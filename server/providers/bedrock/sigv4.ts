import { createHash, createHmac } from 'node:crypto';

/**
 * AWS Signature Version 4 (header form), written against node:crypto rather than taken from
 * `aws4fetch`: that library signs fetch `Request` objects through WebCrypto (async, a promise
 * chain and a `Request`/`Headers` copy per call), while the gateway's upstream client is
 * undici's request API with plain header records. Here one call costs two SHA-256 and one
 * HMAC (the derived signing key is cached per day/region/service), synchronously. It is
 * proven against AWS's published test suite (test/unit/sigv4.test.ts: get-vanilla,
 * post-vanilla, query ordering, header value case, session token).
 */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
  /** Epoch ms when temporary credentials expire (IMDS); absent = long-lived. */
  readonly expiresAt?: number | undefined;
}

export interface SignInput {
  readonly method: string;
  /** The request path as sent on the wire (already URI-encoded once), without the query. */
  readonly path: string;
  /** The query string as sent, without `?` (may be empty). */
  readonly query?: string;
  /** Headers to sign; must include `host`. Names in any case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
  readonly region: string;
  readonly service: string;
  readonly credentials: AwsCredentials;
  /** `YYYYMMDDTHHMMSSZ`. */
  readonly amzDate: string;
}

export interface Signed {
  readonly authorization: string;
  readonly signedHeaders: string;
  readonly canonicalRequest: string;
  readonly stringToSign: string;
  readonly signature: string;
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function sha256Hex(data: string | Buffer): string {
  if (data.length === 0) return EMPTY_SHA256;
  return createHash('sha256').update(data).digest('hex');
}

/** RFC 3986 encoding as AWS defines UriEncode: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper case). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The canonical URI of a non-S3 service: each segment of the path as sent encoded once more
 * (so a model id's `:`, sent as `%3A`, is signed as `%253A` — what Bedrock checks).
 */
export function canonicalUri(path: string): string {
  if (path === '' || path === '/') return '/';
  return path
    .split('/')
    .map((seg) => uriEncode(seg))
    .join('/');
}

/** Query parameters sorted by encoded name, then value. */
export function canonicalQuery(query: string | undefined): string {
  if (!query) return '';
  const pairs = query
    .split('&')
    .filter(Boolean)
    .map((p) => {
      const i = p.indexOf('=');
      const k = decodeURIComponent((i < 0 ? p : p.slice(0, i)).replace(/\+/g, ' '));
      const v = i < 0 ? '' : decodeURIComponent(p.slice(i + 1).replace(/\+/g, ' '));
      return [uriEncode(k), uriEncode(v)] as const;
    });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** A small cache of derived signing keys: the derivation is four HMACs, the key lives a day. */
const keyCache = new Map<string, Buffer>();

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const id = `${date}\n${region}\n${service}\n${secret}`;
  let k = keyCache.get(id);
  if (!k) {
    const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
    const kRegion = createHmac('sha256', kDate).update(region).digest();
    const kService = createHmac('sha256', kRegion).update(service).digest();
    k = createHmac('sha256', kService).update('aws4_request').digest();
    if (keyCache.size >= 64) keyCache.clear();
    keyCache.set(id, k);
  }
  return k;
}

export function signV4(i: SignInput): Signed {
  const names: string[] = [];
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(i.headers)) {
    const n = name.toLowerCase();
    // Trimmed, inner runs of spaces collapsed (the canonical header value).
    const v = value.trim().replace(/ +/g, ' ');
    const prev = values.get(n);
    if (prev === undefined) names.push(n);
    values.set(n, prev === undefined ? v : `${prev},${v}`);
  }
  names.sort();
  const signedHeaders = names.join(';');
  let canonicalHeaders = '';
  for (const n of names) canonicalHeaders += `${n}:${values.get(n)}\n`;
  const canonicalRequest = `${i.method}\n${canonicalUri(i.path)}\n${canonicalQuery(i.query)}\n${canonicalHeaders}\n${signedHeaders}\n${sha256Hex(i.body)}`;
  const date = i.amzDate.slice(0, 8);
  const scope = `${date}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = `AWS4-HMAC-SHA256\n${i.amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
  const signature = createHmac('sha256', signingKey(i.credentials.secretAccessKey, date, i.region, i.service))
    .update(stringToSign)
    .digest('hex');
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${i.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    signedHeaders,
    canonicalRequest,
    stringToSign,
    signature,
  };
}

/** `YYYYMMDDTHHMMSSZ` for a time. */
export function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}
