import type { Redis } from 'ioredis';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { AuditRow } from '../audit/log.js';
import type { Clock } from '../clock.js';
import { asc, gt } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import { newId } from '../ids.js';
import type { EgressPolicy } from '../providers/egress.js';
import { sendOtlp, sendSyslog, sendWebhook } from './deliver.js';
import { toEvent, type SiemEvent } from './event.js';
import type { SiemMetrics } from './metrics.js';
import { parseSinkConfig, type OtlpConfig, type SiemSinks, type SinkRow, type SyslogConfig, type WebhookConfig } from './sinks.js';

/**
 * The SIEM forwarder (worker role): the audit log is the outbox. For each enabled sink it reads
 * the entries after the sink's cursor, in seq order and in batches, delivers a batch, and moves
 * the cursor only once the sink acknowledged it (./deliver.ts says what that means per kind).
 * So nothing is lost while a sink is down — the backlog waits in the audit log — and a batch
 * whose acknowledgement was lost is sent again: at-least-once; every event carries seq, id and
 * hash for the receiver to de-duplicate and check the chain.
 *
 * Exactly one forwarder per sink across processes: a Redis lock per sink (SET NX PX, value =
 * this forwarder's id) taken before a delivery and renewed after each batch; its TTL (30 s)
 * outlives a delivery's timeout (15 s), and a forwarder that stops releases it. If a lock is
 * lost anyway (a process paused past the TTL), the cursor moves only from the value this
 * forwarder read (compare-and-set), so it never goes back; the worst case is a duplicate.
 *
 * Failures back off exponentially per sink (1 s, 2 s, 4 s … capped at 60 s), counted in the
 * sink's row, so a forwarder that takes over keeps the pace.
 */
export interface ForwarderOptions {
  readonly instanceId?: string;
  /** How often the sinks are looked at (ms). */
  readonly pollMs?: number;
  /** Events per delivery. */
  readonly batchSize?: number;
  /** Batches per sink per poll before the other sinks get their turn. */
  readonly batchesPerTick?: number;
  readonly lockTtlMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
}

export interface ForwarderDeps {
  readonly store: Store;
  readonly sinks: SiemSinks;
  readonly redis: Redis;
  readonly clock: Clock;
  readonly log: Logger;
  readonly egress: EgressPolicy;
  readonly metrics: SiemMetrics;
}

const ACQUIRE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export const lockKey = (sinkId: string): string => `enclave:siem:lock:${sinkId}`;

export function backoffMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

export class SiemForwarder {
  readonly id: string;
  private readonly o: Required<Omit<ForwarderOptions, 'instanceId'>>;
  private readonly held = new Set<string>();
  /** Set by stop(): no new pass and no new batch starts. */
  private readonly stopping = new AbortController();
  /** Aborts a delivery in flight: only when it outlasts stop()'s grace. */
  private readonly abortCtl = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private lastProblem: string | undefined;

  constructor(
    private readonly d: ForwarderDeps,
    opts: ForwarderOptions = {},
  ) {
    this.id = opts.instanceId ?? `fwd_${hostname()}_${process.pid}_${newId('f').slice(-6)}`;
    this.o = {
      pollMs: opts.pollMs ?? 500,
      batchSize: opts.batchSize ?? 200,
      batchesPerTick: opts.batchesPerTick ?? 20,
      lockTtlMs: opts.lockTtlMs ?? 30_000,
      backoffBaseMs: opts.backoffBaseMs ?? 1_000,
      backoffMaxMs: opts.backoffMaxMs ?? 60_000,
    };
  }

  start(): this {
    if (this.started) return this;
    this.started = true;
    this.schedule(0);
    this.d.log.info({ forwarder: this.id }, 'siem: forwarder started');
    return this;
  }

  private schedule(ms: number): void {
    if (this.stopping.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .catch((e: unknown) => this.problem(`siem: forwarder pass failed: ${(e as Error).message}`))
        .finally(() => {
          this.running = undefined;
          this.schedule(this.o.pollMs);
        });
    }, ms);
    this.timer.unref();
  }

  /** Logs a problem once until it changes (a Redis outage would otherwise log every poll). */
  private problem(msg: string): void {
    if (msg === this.lastProblem) return;
    this.lastProblem = msg;
    this.d.log.warn({ forwarder: this.id }, msg);
  }

  /** One pass over the sinks (exported for tests that step the forwarder). */
  async tick(): Promise<void> {
    const rows = await this.d.sinks.rows();
    const enabled = new Set(rows.filter((r) => r.enabled).map((r) => r.id));
    for (const id of [...this.held]) if (!enabled.has(id)) await this.release(id);
    const head = await this.d.sinks.headSeq();
    for (const r of rows) {
      if (this.stopping.signal.aborted) return;
      if (!r.enabled || r.cursorSeq >= head) continue;
      const due = (r.lastErrorAt ?? 0) + backoffMs(r.failures, this.o.backoffBaseMs, this.o.backoffMaxMs);
      if (r.failures > 0 && this.d.clock.now() < due) continue;
      if (!(await this.acquire(r.id))) continue;
      await this.deliver(r);
    }
    this.lastProblem = undefined;
  }

  private async acquire(sinkId: string): Promise<boolean> {
    const ok = (await this.d.redis.eval(ACQUIRE, 1, lockKey(sinkId), this.id, this.o.lockTtlMs)) === 1;
    if (ok) this.held.add(sinkId);
    else this.held.delete(sinkId);
    return ok;
  }

  private async release(sinkId: string): Promise<void> {
    this.held.delete(sinkId);
    await this.d.redis.eval(RELEASE, 1, lockKey(sinkId), this.id).catch(() => undefined);
  }

  private read(after: number): Promise<AuditRow[]> {
    const { q, t } = this.d.store;
    return this.d.store.all(q.select().from(t.auditLog).where(gt(t.auditLog.seq, after)).orderBy(asc(t.auditLog.seq)).limit(this.o.batchSize));
  }

  private async deliver(sink: SinkRow): Promise<void> {
    let cursor = sink.cursorSeq;
    for (let i = 0; i < this.o.batchesPerTick && !this.stopping.signal.aborted; i++) {
      const rows = await this.read(cursor);
      if (!rows.length) return;
      const events = rows.map(toEvent);
      const started = performance.now();
      try {
        await this.send(sink, events);
      } catch (e) {
        const msg = (e as Error).message;
        await this.d.sinks.failed(sink.id, msg);
        this.d.metrics.failures.labels(sink.name).inc();
        this.d.log.warn({ sink: sink.name, firstSeq: rows[0]!.seq, events: rows.length, failures: sink.failures + 1, err: msg }, 'siem: delivery failed; retrying with backoff');
        return;
      }
      const to = rows.at(-1)!.seq;
      if (!(await this.d.sinks.advance(sink.id, cursor, to))) {
        // Another forwarder (lock lost) or an administrator moved it: leave it to them.
        this.d.log.warn({ sink: sink.name, expected: cursor }, 'siem: the cursor moved under this forwarder; stepping back');
        await this.release(sink.id);
        return;
      }
      this.d.metrics.delivered.labels(sink.name).inc(rows.length);
      this.d.log.debug({ sink: sink.name, from: cursor + 1, to, ms: Math.round(performance.now() - started) }, 'siem: delivered');
      cursor = to;
      sink = { ...sink, failures: 0 };
      if (rows.length < this.o.batchSize) return;
      if (!(await this.acquire(sink.id))) return; // renew; lost: another forwarder has it now
    }
  }

  /** Sends events to the sink (no cursor change): the forwarder's deliveries and `sinks test`. */
  send(sink: SinkRow, events: readonly SiemEvent[]): Promise<void> {
    return sendTo(this.d, sink, events, this.abortCtl.signal);
  }

  /**
   * Stops polling, lets a delivery in progress finish and move the cursor (up to `graceMs`; only
   * then is it aborted), releases the locks. Aborting at once would make the next holder resend
   * a batch the receiver already had: a graceful handover delivers nothing twice.
   */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    const inFlight = this.running;
    if (inFlight !== undefined) {
      let grace: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((r) => (grace = setTimeout(() => r(true), graceMs)));
      const late = await Promise.race([inFlight.then(() => false), expired]);
      clearTimeout(grace);
      if (late) this.abortCtl.abort();
      await inFlight;
    }
    for (const id of [...this.held]) await this.release(id);
    if (this.started) this.d.log.info({ forwarder: this.id }, 'siem: forwarder stopped');
  }
}

/** One delivery to one sink, by kind. */
export async function sendTo(d: Pick<ForwarderDeps, 'sinks' | 'egress' | 'clock'> & { log?: Logger }, sink: SinkRow, events: readonly SiemEvent[], signal?: AbortSignal): Promise<void> {
  const config = parseSinkConfig(sink.kind, JSON.parse(sink.config));
  if (sink.kind === 'syslog') return sendSyslog(config as SyslogConfig, events, d.egress, signal);
  if (sink.kind === 'otlp') {
    const { rejected } = await sendOtlp((config as OtlpConfig).url, d.sinks.secretOf(sink), events, d.egress, signal);
    if (rejected) d.log?.warn({ sink: sink.name, rejected, firstSeq: events[0]?.seq }, 'siem: the OTLP collector rejected records as malformed (not sent again)');
    return;
  }
  const secret = d.sinks.secretOf(sink);
  if (!secret) throw new Error('webhook_no_secret: the sink has no signing secret (remove and add it again)');
  return sendWebhook(config as WebhookConfig, sink, secret, events, d.egress, d.clock, signal);
}
