import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Shared plumbing of the fake upstreams: a node:http server on 127.0.0.1 (free port),
 * a log of what reached it (method, path, headers, parsed body) and a queue of faults.
 *
 * Fault modes (each consumed by one request, in order; `always` repeats one forever):
 *  - rate_limit         429 with Retry-After (seconds) and the provider's error body
 *  - server_error       500 with the provider's error body
 *  - slow_first_token   waits `delayMs` before the response starts
 *  - stall_mid_stream   sends the first chunk(s), then nothing (socket left open)
 *  - drop               destroys the socket before any response
 *  - drop_mid_stream    sends the first chunk(s), then destroys the socket
 *  - malformed          200 with a body that is not valid JSON / NDJSON / SSE JSON
 *  - error_mid_stream   (SSE fakes) sends a chunk, then an SSE `error` event
 *  - overloaded         (Anthropic) 529 overloaded_error
 *  - content_filter     (Azure OpenAI) the prompt (plain calls) or the answer (streams) is filtered
 */
export type FaultMode =
  | 'rate_limit'
  | 'server_error'
  | 'slow_first_token'
  | 'stall_mid_stream'
  | 'drop'
  | 'drop_mid_stream'
  | 'malformed'
  | 'error_mid_stream'
  /** Anthropic's 529 overloaded_error (fake-anthropic). */
  | 'overloaded'
  /** Azure's content filter: 400 content_filter on the prompt, or a filtered answer (fake-azure-openai). */
  | 'content_filter';

export interface Fault {
  readonly mode: FaultMode;
  readonly delayMs?: number;
  readonly retryAfterS?: number;
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: any;
  /** The body's bytes as received (UTF-8), e.g. to check a signature over them. */
  readonly raw: string;
  /** Set when the client went away before the response finished. */
  aborted: boolean;
  finished: boolean;
}

export abstract class FakeUpstream {
  readonly requests: SeenRequest[] = [];
  private readonly faults: Fault[] = [];
  private always: Fault | undefined;
  /** Delay before every response (ms), e.g. to simulate a model's latency. */
  latencyMs = 0;
  /** Delay between stream chunks (ms). */
  chunkDelayMs = 0;
  private server: http.Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  url = '';
  /** When false, requests are not recorded (benchmarks). */
  record = true;
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections = 0;
  /** TCP connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Held responses (see hold()); undefined when responses flow. */
  private held: (() => void)[] | undefined;

  /** Queues faults for the next requests, in order. */
  fail(...faults: (Fault | FaultMode)[]): this {
    for (const f of faults) this.faults.push(typeof f === 'string' ? { mode: f } : f);
    return this;
  }
  /** Faults queued by fail() that no request has consumed yet. */
  get pendingFaults(): readonly Fault[] {
    return [...this.faults];
  }
  /**
   * Fails when a fault queued by fail() was never consumed: a test whose fault never fired
   * tested nothing (like undici's assertNoPendingInterceptors()). Call it at the end of a
   * test, before reset().
   */
  assertNoPendingFaults(): void {
    if (this.faults.length > 0) {
      const modes = this.faults.map((f) => f.mode).join(', ');
      throw new Error(`${this.faults.length} queued fault(s) never reached a request: ${modes}`);
    }
  }
  /**
   * Holds every response from now on (the request is recorded and its fault taken first)
   * until the returned function is called: "N calls are in flight upstream" without timing.
   */
  hold(): () => void {
    const held: (() => void)[] = (this.held ??= []);
    return () => {
      if (this.held === held) this.held = undefined;
      for (const release of held.splice(0)) release();
    };
  }
  failAlways(f: Fault | FaultMode | undefined): this {
    this.always = typeof f === 'string' ? { mode: f } : f;
    return this;
  }
  reset(): void {
    this.requests.length = 0;
    this.faults.length = 0;
    this.always = undefined;
    for (const release of this.held?.splice(0) ?? []) release();
    this.held = undefined;
    this.latencyMs = 0;
    this.chunkDelayMs = 0;
  }
  /** Model lists and version probes never take a queued fault (a fake whose calls live under /models overrides this). */
  protected takesFaults(path: string): boolean {
    return !(path.includes('/models') || path.includes('/tags') || path.includes('/version'));
  }
  protected nextFault(): Fault | undefined {
    return this.faults.shift() ?? this.always;
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void>;

  async start(): Promise<this> {
    this.server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      void this.dispatch(req, res);
    });
    this.server.on('connection', (s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const release of this.held?.splice(0) ?? []) release();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: any = undefined;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const seen: SeenRequest = { method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0]!, headers: req.headers, body, raw, aborted: false, finished: false };
    if (this.record) this.requests.push(seen);
    res.on('close', () => {
      if (!res.writableFinished) seen.aborted = true;
    });
    res.on('finish', () => {
      seen.finished = true;
    });
    const fault = this.takesFaults(seen.path) ? this.nextFault() : undefined;
    try {
      if (fault?.mode === 'drop') {
        req.socket.destroy();
        return;
      }
      if (this.held) {
        const held = this.held;
        await new Promise<void>((release) => held.push(release));
      }
      if (fault?.mode === 'slow_first_token') await sleep(fault.delayMs ?? 1000);
      if (this.latencyMs) await sleep(this.latencyMs);
      if (res.destroyed) return;
      await this.handle(req, res, seen, fault);
    } catch (e) {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(e) }));
      } else res.destroy();
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rough token count of a request's messages: whitespace-separated words. */
export function countWords(messages: any[] | undefined): number {
  let n = 0;
  for (const m of messages ?? []) {
    const c = m?.content;
    if (typeof c === 'string') n += c.split(/\s+/).filter(Boolean).length;
    else if (Array.isArray(c)) for (const p of c) if (typeof p?.text === 'string') n += p.text.split(/\s+/).filter(Boolean).length;
  }
  return n;
}

export function lastUserText(messages: any[] | undefined): string {
  const m = [...(messages ?? [])].reverse().find((x) => x?.role === 'user');
  if (!m) return '';
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content)) return m.content.map((p: any) => p?.text ?? '').join(' ');
  return '';
}

/** The fixed reply the fakes generate: split into these pieces when streamed. */
export const REPLY_PIECES = ['Hello', ' from', ' the', ' fake', ' model', '.'];
