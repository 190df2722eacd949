import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { crc32 } from 'node:zlib';
import { FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';
import { vector } from './fake-openai.js';

/**
 * A fake AWS Bedrock runtime (and the control plane's ListFoundationModels) speaking the
 * real wire protocol:
 *  - every request must carry a valid SigV4 `Authorization` (service `bedrock`, the fake's
 *    region): the fake recomputes the signature from the bytes it received with the secret
 *    of the access key named in the credential scope — its own code, not the gateway's
 *    signer — and answers a bad one as AWS does (403, `x-amzn-errortype:
 *    InvalidSignatureException`, the same message); an unknown key or a wrong session token
 *    is UnrecognizedClientException, a stale x-amz-date "Signature expired";
 *  - `POST /model/{id}/converse` → Converse JSON; `/converse-stream` → the AWS event-stream
 *    binary framing with real prelude and message CRC32s (messageStart, contentBlockStart/
 *    Delta/Stop, messageStop, metadata; each payload padded with a `p` field like the
 *    service's), tool use when the request offers tools, images recorded as received;
 *  - `POST /model/amazon.titan-embed-text-…/invoke` → a Titan embedding with its token count;
 *  - errors: JSON `{"message": …}` with the type in `x-amzn-errortype`.
 * Faults (common.ts): rate_limit → 429 ThrottlingException; server_error → 500
 * InternalServerException; malformed → cut JSON, or a frame whose message CRC is wrong;
 * error_mid_stream → an exception frame (modelStreamErrorException); stall/drop mid-stream.
 */
export class FakeBedrock extends FakeUpstream {
  region = 'us-east-1';
  models = ['anthropic.claude-3-5-sonnet-20240620-v1:0', 'amazon.nova-pro-v1:0', 'meta.llama3-1-70b-instruct-v1:0'];
  embeddingModels = ['amazon.titan-embed-text-v2:0'];
  /** Access key id → its secret and (temporary credentials) session token. */
  readonly keys = new Map<string, { secret: string; token?: string }>([['AKIDFAKEBEDROCK', { secret: 'fake/secret+key' }]]);
  /** Requests whose signature checked out, and ones refused. */
  verified = 0;
  refused = 0;

  override reset(): void {
    super.reset();
    this.verified = 0;
    this.refused = 0;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    const why = this.checkSignature(req, seen);
    if (why) {
      this.refused++;
      return awsError(res, 403, why[0], why[1]);
    }
    this.verified++;
    if (seen.method === 'GET' && seen.path === '/foundation-models') {
      return json(res, 200, { modelSummaries: this.models.map((modelId) => ({ modelId, modelArn: `arn:aws:bedrock:${this.region}::foundation-model/${modelId}`, providerName: modelId.split('.')[0], responseStreamingSupported: true })) });
    }
    const inv = /^\/model\/([^/]+)\/invoke$/.exec(seen.path);
    if (seen.method === 'POST' && inv) {
      const model = decodeURIComponent(inv[1]!);
      if (!this.embeddingModels.includes(model)) return awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
      const text = String(seen.body?.inputText ?? '');
      const dims = Number(seen.body?.dimensions) || 1024;
      return json(res, 200, { embedding: vector(text, dims), embeddingsByType: { float: vector(text, dims) }, inputTextTokenCount: text.split(/\s+/).filter(Boolean).length });
    }
    const m = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(seen.path);
    if (seen.method !== 'POST' || !m) return awsError(res, 404, 'UnknownOperationException', undefined);
    const model = decodeURIComponent(m[1]!);
    if (!this.models.includes(model)) return awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
    if (fault?.mode === 'rate_limit') return awsError(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
    if (fault?.mode === 'server_error') return awsError(res, 500, 'InternalServerException', 'The server encountered an internal error while processing the request.');
    const body = seen.body;
    if (!Array.isArray(body?.messages) || body.messages.length === 0) return awsError(res, 400, 'ValidationException', 'A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    for (let i = 0; i < body.messages.length; i++) {
      if (body.messages[i].role !== (i % 2 === 0 ? 'user' : 'assistant')) return awsError(res, 400, 'ValidationException', 'A conversation must alternate between user and assistant roles.');
    }
    const tool: string | undefined = body.toolConfig?.tools?.[0]?.toolSpec?.name;
    const lastIsToolResult = body.messages.at(-1)?.content?.some((b: any) => b.toolResult);
    const useTool = tool !== undefined && !lastIsToolResult;
    const max = Number(body.inferenceConfig?.maxTokens);
    const pieces = Number.isInteger(max) && max > 0 ? REPLY_PIECES.slice(0, max) : REPLY_PIECES;
    const stopReason = useTool ? 'tool_use' : pieces.length < REPLY_PIECES.length ? 'max_tokens' : 'end_turn';
    const inputTokens = countTokens(body);
    const outputTokens = useTool ? 5 : pieces.length;
    const usage = { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens };
    if (m[2] === 'converse') {
      if (fault?.mode === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"output": {"message": {"role": "assistant", "content": [');
        return;
      }
      const content = useTool ? [{ toolUse: { toolUseId: 'tooluse_fake1', name: tool, input: { city: 'Paris' } } }] : [{ text: pieces.join('') }];
      return json(res, 200, { output: { message: { role: 'assistant', content } }, stopReason, usage, metrics: { latencyMs: 12 } });
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': 'fake-request-id' });
    const frames: Buffer[] = [event('messageStart', { role: 'assistant' })];
    if (useTool) {
      frames.push(
        event('contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: 'tooluse_fake1', name: tool } } }),
        event('contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '{"city":' } } }),
        event('contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '"Paris"}' } } }),
      );
    } else for (const p of pieces) frames.push(event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: p } }));
    frames.push(event('contentBlockStop', { contentBlockIndex: 0 }), event('messageStop', { stopReason }), event('metadata', { usage, metrics: { latencyMs: 12 } }));
    for (let i = 0; i < frames.length; i++) {
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return;
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      if (i === 2 && fault?.mode === 'error_mid_stream') {
        res.end(encodeMessage({ ':exception-type': 'modelStreamErrorException', ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message: 'The model crashed.', originalStatusCode: 500 })));
        return;
      }
      let f = frames[i]!;
      if (i === 2 && fault?.mode === 'malformed') {
        f = Buffer.from(f);
        f[f.length - 6]! ^= 0x20; // a flipped payload bit: the message CRC no longer matches
      }
      if (res.destroyed) return;
      res.write(f);
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
    }
    res.end();
  }

  /** The reason AWS would refuse this request's signature ([error type, message]), or undefined. */
  private checkSignature(req: IncomingMessage, seen: SeenRequest): [string, string] | undefined {
    const auth = req.headers.authorization;
    if (!auth) return ['MissingAuthenticationTokenException', 'Missing Authentication Token'];
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) return ['IncompleteSignatureException', 'Authorization header requires existence of either a \'X-Amz-Date\' or a \'Date\' header.'];
    const [, keyId, date, region, service, signedHeaders, signature] = m as unknown as string[];
    const key = this.keys.get(keyId!);
    if (!key) return ['UnrecognizedClientException', 'The security token included in the request is invalid.'];
    if (key.token !== undefined && req.headers['x-amz-security-token'] !== key.token) return ['UnrecognizedClientException', 'The security token included in the request is invalid.'];
    if (region !== this.region || service !== 'bedrock') return ['InvalidSignatureException', `Credential should be scoped to a valid region. `];
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const t = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    if (!Number.isFinite(t) || amzDate.slice(0, 8) !== date) return ['InvalidSignatureException', 'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.'];
    if (Math.abs(Date.now() - t) > 5 * 60_000) return ['InvalidSignatureException', `Signature expired: ${amzDate} is now earlier than the allowed window.`];
    const names = signedHeaders!.split(';');
    if (!names.includes('host') || !names.includes('x-amz-date')) return ['InvalidSignatureException', 'The request signature we calculated does not match the signature you provided.'];
    // The canonical request, built from what arrived: the path as sent with each segment encoded again.
    const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?') as [string, string?];
    const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const uri = rawPath.split('/').map(enc).join('/') || '/';
    const query = rawQuery
      .split('&')
      .filter(Boolean)
      .map((p) => p.split('=').map((x) => enc(decodeURIComponent(x))) as [string, string])
      .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
      .map(([k, v]) => `${k}=${v ?? ''}`)
      .join('&');
    const headerLines = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/ +/g, ' ')}\n`).join('');
    const hash = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
    const canonical = `${req.method}\n${uri}\n${query}\n${headerLines}\n${signedHeaders}\n${hash(seen.raw)}`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${date}/${region}/${service}/aws4_request\n${hash(canonical)}`;
    let k: Buffer = createHmac('sha256', `AWS4${key.secret}`).update(date!).digest();
    for (const part of [region!, service!, 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
    const expected = createHmac('sha256', k).update(toSign).digest();
    if (!timingSafeEqual(expected, Buffer.from(signature!, 'hex'))) {
      // As AWS does, the message goes on with the canonical request and string to sign it expected.
      return [
        'InvalidSignatureException',
        `The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'${canonical}'\n\nThe String-to-Sign should have been\n'${toSign}'\n`,
      ];
    }
    return undefined;
  }
}

function countTokens(body: any): number {
  let n = 0;
  for (const m of body.messages ?? []) for (const b of m.content ?? []) if (typeof b.text === 'string') n += b.text.split(/\s+/).filter(Boolean).length;
  for (const s of body.system ?? []) if (typeof s.text === 'string') n += s.text.split(/\s+/).filter(Boolean).length;
  return n;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': 'fake-request-id' });
  res.end(text);
}

/** An AWS JSON-protocol error: the type in `x-amzn-errortype`, `{"message": …}` in the body. */
function awsError(res: ServerResponse, status: number, type: string, message: string | undefined): void {
  const text = JSON.stringify(message === undefined ? {} : { message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': 'fake-request-id' });
  res.end(text);
}

/** An `event` frame with a JSON payload padded like the service's (`p`: letters that make lengths vary). */
function event(type: string, body: Record<string, unknown>): Buffer {
  return encodeMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ ...body, p: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ'.slice(0, 5 + type.length) }));
}

/** One event-stream message with string headers: prelude, prelude CRC, headers, payload, message CRC. */
export function encodeMessage(headers: Readonly<Record<string, string>>, payload: Buffer | string): Buffer {
  const hs: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt8(7, 1 + n.length); // type 7: string
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    hs.push(h);
  }
  const hb = Buffer.concat(hs);
  const pb = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const total = 12 + hb.length + pb.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(hb.length, 4);
  out.writeUInt32BE(crc32(out.subarray(0, 8)), 8);
  hb.copy(out, 12);
  pb.copy(out, 12 + hb.length);
  out.writeUInt32BE(crc32(out.subarray(0, total - 4)), total - 4);
  return out;
}

/**
 * A fake EC2 instance metadata service speaking IMDSv2: `PUT /latest/api/token` (with the
 * TTL header) hands out a session token that every GET must carry in
 * `x-aws-ec2-metadata-token` (a GET without one is 401, as with IMDSv1 switched off); the
 * role's credentials are at /latest/meta-data/iam/security-credentials/<role>.
 */
export class FakeImds extends FakeUpstream {
  role = 'enclave-bedrock-role';
  credentials = { AccessKeyId: 'ASIAFAKEROLE', SecretAccessKey: 'role/secret', Token: 'role-session-token', Expiration: new Date(Date.now() + 6 * 3600_000).toISOString() };
  private readonly tokens = new Set<string>();
  /** Credential documents served (a cached credential is not fetched again). */
  served = 0;

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): Promise<void> {
    if (seen.method === 'PUT' && seen.path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return text(res, 400, '');
      const t = `imds-${Math.random().toString(36).slice(2)}`;
      this.tokens.add(t);
      return text(res, 200, t);
    }
    if (!this.tokens.has(String(req.headers['x-aws-ec2-metadata-token'] ?? ''))) return text(res, 401, '');
    if (seen.path === '/latest/meta-data/iam/security-credentials/') return text(res, 200, this.role);
    if (seen.path === `/latest/meta-data/iam/security-credentials/${this.role}`) {
      this.served++;
      return text(res, 200, JSON.stringify({ Code: 'Success', Type: 'AWS-HMAC', LastUpdated: new Date().toISOString(), ...this.credentials }));
    }
    return text(res, 404, '');
  }
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
