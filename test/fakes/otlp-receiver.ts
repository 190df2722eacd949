import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/**
 * A local OTLP/HTTP trace receiver (what an OpenTelemetry Collector's `otlp` receiver does on
 * :4318): `POST /v1/traces` with an `ExportTraceServiceRequest` encoded as protobuf
 * (`application/x-protobuf`, decoded here by a small reader of the protobuf wire format against
 * the OTLP trace schema) or as OTLP JSON (`application/json`). Every span is kept, flattened
 * with its resource's attributes; `fail` makes it answer 503 (the exporter may retry).
 */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Record<string, unknown>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly statusMessage: string;
  readonly resource: Record<string, unknown>;
  /** Names of the span's events (their attributes are in `eventAttributes`). */
  readonly events: string[];
  readonly eventAttributes: Record<string, unknown>[];
  readonly encoding: 'protobuf' | 'json';
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly requests: { readonly path: string; readonly contentType: string; readonly headers: IncomingHttpHeaders }[] = [];
  fail = false;
  private server: Server | undefined;
  port = 0;

  /** `port` 0 picks a free one; a given port lets a test bring a "collector" back where it was. */
  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const contentType = String(req.headers['content-type'] ?? '');
        this.requests.push({ path: req.url ?? '/', contentType, headers: req.headers });
        if (this.fail) {
          res.writeHead(503).end();
          return;
        }
        const body = Buffer.concat(chunks);
        try {
          const json = contentType.includes('json');
          this.spans.push(...(json ? fromJson(JSON.parse(body.toString('utf8'))) : fromProtobuf(body)));
        } catch (e) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e));
          return;
        }
        res.writeHead(200, { 'content-type': contentType.includes('json') ? 'application/json' : 'application/x-protobuf' }).end(contentType.includes('json') ? '{}' : '');
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', () => r()));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

// ---- OTLP JSON -------------------------------------------------------------------------------

interface JsonAny {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAny[] };
  kvlistValue?: { values?: JsonKv[] };
  bytesValue?: string;
}
interface JsonKv {
  key: string;
  value: JsonAny;
}

function jsonValue(v: JsonAny | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(jsonValue);
  if (v.kvlistValue) return jsonAttrs(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return undefined;
}

function jsonAttrs(kvs: JsonKv[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) out[kv.key] = jsonValue(kv.value);
  return out;
}

// OTLP JSON as the test sees it: loosely typed on purpose (the receiver checks what it reads).
function fromJson(body: any): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = jsonAttrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: String(s.traceId ?? ''),
          spanId: String(s.spanId ?? ''),
          parentSpanId: String(s.parentSpanId ?? ''),
          name: String(s.name),
          kind: Number(s.kind ?? 0),
          attributes: jsonAttrs(s.attributes),
          status: Number(s.status?.code ?? 0),
          statusMessage: String(s.status?.message ?? ''),
          resource,
          events: (s.events ?? []).map((e: { name: string }) => e.name),
          eventAttributes: (s.events ?? []).map((e: { attributes?: JsonKv[] }) => jsonAttrs(e.attributes)),
          encoding: 'json',
        });
      }
    }
  }
  return out;
}

// ---- protobuf wire format --------------------------------------------------------------------

/** The fields of one protobuf message: number → values in order (varints as bigint, length-delimited as bytes). */
type Fields = Map<number, (bigint | Buffer)[]>;

function readVarint(b: Buffer, pos: { i: number }): bigint {
  let shift = 0n;
  let v = 0n;
  for (;;) {
    if (pos.i >= b.length) throw new Error('truncated varint');
    const byte = b[pos.i++]!;
    v |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return v;
    shift += 7n;
  }
}

function parse(b: Buffer): Fields {
  const out: Fields = new Map();
  const pos = { i: 0 };
  while (pos.i < b.length) {
    const tag = Number(readVarint(b, pos));
    const field = tag >>> 3;
    const wire = tag & 7;
    let v: bigint | Buffer;
    if (wire === 0) v = readVarint(b, pos);
    else if (wire === 1) {
      v = b.readBigUInt64LE(pos.i);
      pos.i += 8;
    } else if (wire === 2) {
      const len = Number(readVarint(b, pos));
      v = b.subarray(pos.i, pos.i + len);
      pos.i += len;
    } else if (wire === 5) {
      v = BigInt(b.readUInt32LE(pos.i));
      pos.i += 4;
    } else throw new Error(`unsupported wire type ${wire}`);
    const list = out.get(field);
    if (list) list.push(v);
    else out.set(field, [v]);
  }
  return out;
}

const bytes = (f: Fields, n: number): Buffer[] => (f.get(n) ?? []) as Buffer[];
const one = (f: Fields, n: number): Buffer | undefined => bytes(f, n)[0];
const str = (f: Fields, n: number): string => one(f, n)?.toString('utf8') ?? '';
const num = (f: Fields, n: number): number => Number((f.get(n)?.[0] as bigint | undefined) ?? 0n);

/** AnyValue: 1 string, 2 bool, 3 int64, 4 double (fixed64), 5 ArrayValue, 6 KeyValueList, 7 bytes. */
function anyValue(b: Buffer): unknown {
  const f = parse(b);
  if (f.has(1)) return str(f, 1);
  if (f.has(2)) return num(f, 2) !== 0;
  if (f.has(3)) return Number(BigInt.asIntN(64, f.get(3)![0] as bigint));
  if (f.has(4)) {
    const buf = Buffer.alloc(8);
    buf.writeBigUInt64LE(f.get(4)![0] as bigint);
    return buf.readDoubleLE(0);
  }
  if (f.has(5)) return bytes(parse(one(f, 5)!), 1).map(anyValue);
  if (f.has(6)) return attrs(bytes(parse(one(f, 6)!), 1));
  if (f.has(7)) return one(f, 7)!.toString('base64');
  return undefined;
}

/** KeyValue: 1 key, 2 AnyValue. */
function attrs(kvs: Buffer[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs) {
    const f = parse(kv);
    const v = one(f, 2);
    out[str(f, 1)] = v ? anyValue(v) : undefined;
  }
  return out;
}

/**
 * ExportTraceServiceRequest: 1 ResourceSpans* { 1 Resource { 1 KeyValue* }, 2 ScopeSpans* {
 * 2 Span* { 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 9 KeyValue*, 11 Event* {
 * 2 name, 3 KeyValue* }, 15 Status { 2 message, 3 code } } } }.
 */
function fromProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rsb of bytes(parse(body), 1)) {
    const rs = parse(rsb);
    const res = one(rs, 1);
    const resource = res ? attrs(bytes(parse(res), 1)) : {};
    for (const ssb of bytes(rs, 2)) {
      for (const sb of bytes(parse(ssb), 2)) {
        const s = parse(sb);
        const status = one(s, 15) ? parse(one(s, 15)!) : new Map();
        const events = bytes(s, 11).map(parse);
        out.push({
          traceId: one(s, 1)?.toString('hex') ?? '',
          spanId: one(s, 2)?.toString('hex') ?? '',
          parentSpanId: one(s, 4)?.toString('hex') ?? '',
          name: str(s, 5),
          kind: num(s, 6),
          attributes: attrs(bytes(s, 9)),
          status: num(status, 3),
          statusMessage: str(status, 2),
          resource,
          events: events.map((e) => str(e, 2)),
          eventAttributes: events.map((e) => attrs(bytes(e, 3))),
          encoding: 'protobuf',
        });
      }
    }
  }
  return out;
}
