import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';

/**
 * A syslog-over-TLS receiver (RFC 5425) for tests: a node:tls server that parses octet-counted
 * frames (`MSG-LEN SP SYSLOG-MSG`, RFC 6587 §3.4.1) of RFC 5424 messages — PRI, version,
 * timestamp, hostname, app-name, procid, msgid, structured data (escapes honoured) and the
 * message (BOM stripped). Like a real syslog server it reads each connection to its end and
 * then closes its side. `kill()` drops the listener and every open connection at once (what a
 * crashed receiver does); `start()` again listens on the same port.
 */
export interface SyslogMessage {
  readonly pri: number;
  readonly version: number;
  readonly timestamp: string;
  readonly hostname: string;
  readonly appName: string;
  readonly procId: string;
  readonly msgId: string;
  /** SD-ID → params. */
  readonly sd: Record<string, Record<string, string>>;
  readonly msg: string;
}

export class SyslogFrameError extends Error {}

/** Parses one RFC 5424 message (throws SyslogFrameError on anything malformed). */
export function parseRfc5424(text: string): SyslogMessage {
  const head = /^<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(text);
  if (!head) throw new SyslogFrameError(`not an RFC 5424 header: ${text.slice(0, 80)}`);
  let i = head[0].length;
  const sd: Record<string, Record<string, string>> = {};
  if (text[i] === '-') i++;
  else {
    while (text[i] === '[') {
      i++;
      const idEnd = text.slice(i).search(/[ \]]/);
      if (idEnd < 0) throw new SyslogFrameError('unterminated SD-ELEMENT');
      const id = text.slice(i, i + idEnd);
      i += idEnd;
      const params: Record<string, string> = {};
      while (text[i] === ' ') {
        i++;
        const eq = text.indexOf('="', i);
        if (eq < 0) throw new SyslogFrameError('SD-PARAM without ="');
        const name = text.slice(i, eq);
        i = eq + 2;
        let value = '';
        for (;;) {
          const c = text[i];
          if (c === undefined) throw new SyslogFrameError('unterminated PARAM-VALUE');
          if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\' || text[i + 1] === ']')) {
            value += text[i + 1];
            i += 2;
          } else if (c === '"') {
            i++;
            break;
          } else {
            value += c;
            i++;
          }
        }
        params[name] = value;
      }
      if (text[i] !== ']') throw new SyslogFrameError('SD-ELEMENT not closed');
      i++;
      sd[id] = params;
    }
  }
  let msg = '';
  if (text[i] === ' ') msg = text.slice(i + 1).replace(/^\uFEFF/, '');
  else if (i !== text.length) throw new SyslogFrameError('garbage after structured data');
  return { pri: Number(head[1]), version: Number(head[2]), timestamp: head[3]!, hostname: head[4]!, appName: head[5]!, procId: head[6]!, msgId: head[7]!, sd, msg };
}

/** Splits octet-counted frames off `buf`; returns the messages and the unconsumed rest. */
export function splitFrames(buf: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    const sp = buf.indexOf(0x20, at);
    if (sp < 0) break;
    const lenText = buf.subarray(at, sp).toString('ascii');
    if (!/^[1-9]\d{0,8}$/.test(lenText)) throw new SyslogFrameError(`bad MSG-LEN ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    if (buf.length < sp + 1 + len) break;
    messages.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
    at = sp + 1 + len;
  }
  return { messages, rest: buf.subarray(at) };
}

export class SyslogReceiver {
  readonly messages: SyslogMessage[] = [];
  readonly errors: string[] = [];
  /** Connections accepted (each delivery is one). */
  connections = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;
  /**
   * While true, a connection the sender has finished is read to its end but not closed from this
   * side (the server is half-open capable): the sender's batch stays unconfirmed (in flight) until
   * release() — a slow receiver, for tests of what a forwarder does with a batch in flight.
   */
  holdAcks = false;
  private readonly held: TLSSocket[] = [];
  private readonly raw = new Set<Socket>();

  constructor(private readonly tls: { key: string; cert: string; ca?: string; requestCert?: boolean }) {}

  async start(port = this.port): Promise<this> {
    const server = createServer({ allowHalfOpen: true, key: this.tls.key, cert: this.tls.cert, ...(this.tls.ca ? { ca: this.tls.ca } : {}), requestCert: this.tls.requestCert ?? false, rejectUnauthorized: this.tls.requestCert ?? false }, (s) => this.accept(s));
    server.on('tlsClientError', (e) => this.errors.push(`tls: ${e.message}`));
    // Every TCP connection, also those whose TLS handshake failed: half-open ones would otherwise
    // keep server.close() waiting in kill().
    server.on('connection', (raw: Socket) => {
      this.raw.add(raw);
      raw.on('close', () => this.raw.delete(raw));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const a = server.address();
    this.port = typeof a === 'object' && a ? a.port : port;
    return this;
  }

  private accept(s: TLSSocket): void {
    this.connections++;
    this.sockets.add(s);
    let buf: Buffer = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      try {
        const r = splitFrames(Buffer.concat([buf, d]));
        buf = r.rest;
        for (const m of r.messages) this.messages.push(parseRfc5424(m));
      } catch (e) {
        this.errors.push((e as Error).message);
        s.destroy();
      }
    });
    s.on('end', () => {
      if (buf.length) this.errors.push(`connection ended inside a frame (${buf.length} bytes)`);
      // Closing our side is the confirmation the sender waits for; allowHalfOpen lets us decide when.
      if (this.holdAcks) this.held.push(s);
      else s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => this.sockets.delete(s));
  }

  /** Connections read to their end and not yet confirmed (see holdAcks). */
  get heldCount(): number {
    return this.held.length;
  }

  /** Confirms the held connections (closes our side) and stops holding. */
  release(): void {
    this.holdAcks = false;
    for (const s of this.held.splice(0)) s.end();
  }

  /** The received events (the JSON in each message), in arrival order. */
  events<T = Record<string, unknown>>(): T[] {
    return this.messages.map((m) => JSON.parse(m.msg) as T);
  }

  /** Stops listening and drops every connection at once, as a crashed receiver does. */
  async kill(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    for (const r of this.raw) r.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
