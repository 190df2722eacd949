import { performance } from 'node:perf_hooks';
import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { SecretBox } from '../../config/secret-box.js';
import type { RequestContext } from '../../context.js';
import type { UsageRow } from '../../db/repos/usage.js';
import { newId } from '../../ids.js';
import { child, type Metrics } from '../../metrics/registry.js';
import type { ChatCompletion, ChatCompletionChunk } from '../../providers/index.js';
import type { Candidate } from '../../routing/catalogue.js';
import type { CallState, GatewayResult, Plan } from '../call.js';
import { factsOf, markGone } from '../call.js';
import type { Planner } from '../plan.js';
import type { PolicyCache } from '../policy-cache.js';
import type { GatewayDeps } from '../service.js';
import { finishCall } from '../usage-record.js';
import { choicesOfFold, choicesOfWhole, chunksOf, ChunkFold, wholeOf, type CacheEntry } from './entry.js';
import { cacheKey, deterministic, offersTools, replayable } from './key.js';
import { CacheRedis, entryKey } from './redis-store.js';
import { cacheOn, MAX_ENTRY_BYTES, type CacheSettings } from './settings.js';

/**
 * The governed response cache (issue 19). The pipeline (server/gateway/service.ts) calls
 * lookup() after planning (its Redis read then runs alongside admission) and answer() after
 * admission — so a hit has been authorized, policy-checked, content-scanned and counted by the
 * rate limits like any call — and before any attempt.
 *
 *  - off for the tenant and key (the default): lookup() returns undefined at once, nothing else
 *    runs (one property read on the cached policy entry and one on its key map);
 *  - not cacheable (no temperature 0 or seed, tools the tenant did not allow, log probabilities
 *    or audio asked for, embeddings) or the client sent `Cache-Control: no-store` / `x-enclave-cache: bypass`:
 *    `bypass`, nothing is read or stored (`no-cache`: not read, the fresh answer is stored);
 *  - otherwise one Redis read for the keys of the call's allowed candidates (tenant, deployment,
 *    classification, normalized request after redaction: key.ts); the first candidate with an
 *    entry that decrypts is authorized once more as the attempt would (approved, enabled,
 *    boundary, the key's model scope) and served: `hit`, a usage record with zero tokens and
 *    cost and the original's cost as saved_cost_micros; a stream is replayed as chunks the face
 *    encodes in its own format;
 *  - else `miss`: the call runs; a complete answer (status ok) is stored after its usage record
 *    is priced, encrypted with the master key (AAD = its Redis key), with the tenant's TTL,
 *    evicting the tenant's soonest-expiring entries beyond its size cap.
 * Redis unavailable (an error, or no answer within lookupTimeoutMs): served as a miss, never a
 * failed call; the store is skipped. Entries never cross tenants: the tenant is in the key, in
 * the Redis key's prefix and in the ciphertext's AAD.
 */
export type CacheStatus = 'hit' | 'miss' | 'bypass';

/** How many of a call's candidates are looked up (a fallback beyond them is not stored). */
const MAX_CANDIDATES = 4;

export interface ResponseCacheDeps {
  readonly redis: Redis;
  readonly secrets: SecretBox;
  readonly policies: PolicyCache;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly log: Logger;
  /** How long a lookup waits for Redis before the call goes on as a miss. */
  readonly lookupTimeoutMs?: number;
}

/** The client's cache directive: `Cache-Control: no-store` or `x-enclave-cache: bypass` (nothing read or stored), `no-cache` (not read). */
export type CacheDirective = 'no-store' | 'no-cache' | undefined;

export function cacheDirective(req: IncomingMessage): CacheDirective {
  const x = req.headers['x-enclave-cache'];
  const cc = req.headers['cache-control'];
  if (x === undefined && cc === undefined) return undefined;
  if (typeof x === 'string' && x.trim().toLowerCase() === 'bypass') return 'no-store';
  if (typeof cc !== 'string') return undefined;
  const v = cc.toLowerCase();
  return v.includes('no-store') ? 'no-store' : v.includes('no-cache') ? 'no-cache' : undefined;
}

interface Keyed {
  readonly c: Candidate;
  readonly key: string;
}

/** A lookup in flight (lookup() → answer()): bypass (no keys), no-cache (keys, no read), or a read. */
export interface CacheLookup {
  readonly settings?: CacheSettings;
  readonly keyed?: readonly Keyed[];
  readonly read?: Promise<Found | undefined | 'error'> | undefined;
}

interface Found {
  readonly c: Candidate;
  readonly entry: CacheEntry;
  readonly bytes: number;
}

const BYPASS_LOOKUP: CacheLookup = {};

/** The cache's part of one call (CallState.cache): its status for the facts and the usage record, and what a miss stores. */
export class CacheTicket {
  /** What the hit saved (the original call's cost minus what the hit is charged), for the usage record. */
  saved = 0;
  /** What the hit is charged (the tenant's hit_cost_fraction of the original cost). */
  charge = 0;
  private fold: ChunkFold | undefined;
  private whole: ChatCompletion | undefined;

  constructor(
    readonly status: CacheStatus,
    private readonly cache?: ResponseCache,
    private readonly tenantId?: string,
    private readonly settings?: CacheSettings,
    private readonly keyed?: readonly Keyed[],
  ) {}

  /** A streamed chunk as relayed (only a call that will be stored folds them). */
  chunk(c: ChatCompletionChunk): void {
    if (this.keyed) (this.fold ??= new ChunkFold()).add(c);
  }

  /** A whole answer as returned. */
  result(r: unknown): void {
    if (this.keyed) this.whole = r as ChatCompletion;
  }

  /** The call is over and priced (finishCall): a complete answer is stored. Never throws. */
  end(row: UsageRow, st: CallState): void {
    if (!this.keyed || !this.cache || row.status !== 'ok' || !st.deployment) return;
    const dep = st.deployment.id;
    const k = this.keyed.find((x) => x.c.deployment.id === dep && x.c.model === st.model);
    if (!k) return;
    const choices = this.whole ? choicesOfWhole(this.whole) : this.fold ? choicesOfFold(this.fold) : undefined;
    if (!choices?.length) return;
    const entry: CacheEntry = { v: 1, dep, choices, usage: { prompt_tokens: row.promptTokens, completion_tokens: row.completionTokens }, cost: row.costMicros, at: row.createdAt };
    this.cache.store(this.tenantId!, k.key, entry, this.settings!);
  }
}

const BYPASS = new CacheTicket('bypass');

export class ResponseCache {
  private readonly store_: CacheRedis;
  private readonly secret: Buffer;
  private readonly timeoutMs: number;
  private readonly lookups: { hit: Counted; miss: Counted; bypass: Counted; error: Counted };
  private readonly stored: Counted;
  private readonly served: Counted;

  constructor(private readonly d: ResponseCacheDeps) {
    this.store_ = new CacheRedis(d.redis);
    this.secret = d.secrets.derive('response-cache-key');
    this.timeoutMs = d.lookupTimeoutMs ?? 250;
    const l = d.metrics.cacheLookups;
    // Pre-exported at zero (absent ≠ zero).
    this.lookups = { hit: child(l, 'hit'), miss: child(l, 'miss'), bypass: child(l, 'bypass'), error: child(l, 'error') };
    for (const c of Object.values(this.lookups)) c.inc(0);
    this.stored = child(d.metrics.cacheBytes, 'stored');
    this.served = child(d.metrics.cacheBytes, 'served');
    this.stored.inc(0);
    this.served.inc(0);
    d.metrics.cacheEvictions.inc(0);
  }

  get redis(): CacheRedis {
    return this.store_;
  }

  /**
   * The pipeline's first hook, right after planning: undefined when the cache is off for this
   * caller (the call goes on; nothing else runs). Otherwise the lookup starts here — its Redis
   * read overlaps admission — and answer() decides after admission.
   */
  lookup(ctx: RequestContext, st: CallState, plan: Plan, planner: Planner): CacheLookup | undefined {
    if (st.endpoint !== 'chat') return undefined;
    const s = this.d.policies.get(ctx).cache;
    if (!cacheOn(s, ctx.principal?.keyId)) return undefined;
    const body = st.call.body;
    const directive = st.call.cacheDirective;
    if (directive === 'no-store' || !deterministic(body) || !replayable(body) || (!s.allowTools && offersTools(body))) return BYPASS_LOOKUP;
    const tenantId = ctx.tenant!.id;
    const keyed: Keyed[] = [];
    const wasRedacted = st.policy.redacted;
    // `caller`: each key (or web-chat user) has entries of its own; a caller without either shares nothing.
    const p = ctx.principal;
    const partition = s.partition === 'tenant' ? '' : p ? `${p.kind}:${p.id}` : `request:${ctx.requestId}`;
    for (const c of plan.candidates.slice(0, MAX_CANDIDATES)) keyed.push({ c, key: cacheKey(this.secret, tenantId, c.deployment.id, plan.classification, planner.bodyFor(plan, c, body, st), partition) });
    // bodyFor noted the redactions of the candidates above; the attempt (or a hit) notes its own.
    st.redactedTypes = undefined;
    if (!wasRedacted) delete st.policy.redacted;
    if (directive === 'no-cache') return { settings: s, keyed, read: undefined };
    return { settings: s, keyed, read: this.read(ctx, tenantId, keyed) };
  }

  /**
   * The second hook, after admission: the hit's result (its usage record made, or made when its
   * chunks end), or undefined when the call goes on (a miss stores its answer at the end).
   */
  async answer(ctx: RequestContext, st: CallState, plan: Plan, planner: Planner, d: GatewayDeps, l: CacheLookup): Promise<GatewayResult | undefined> {
    const tenantId = ctx.tenant!.id;
    if (!l.keyed) {
      st.cache = BYPASS;
      this.lookups.bypass.inc();
      return undefined;
    }
    if (!l.read) {
      st.cache = new CacheTicket('bypass', this, tenantId, l.settings, l.keyed);
      this.lookups.bypass.inc();
      return undefined;
    }
    const found = await l.read;
    if (found === 'error') {
      this.lookups.error.inc();
      st.cache = new CacheTicket('miss'); // Redis is away: nothing would be stored either
      return undefined;
    }
    if (!found) {
      this.lookups.miss.inc();
      st.cache = new CacheTicket('miss', this, tenantId, l.settings, l.keyed);
      return undefined;
    }
    // The same final check as an attempt on this deployment (approved, enabled, tenant, boundary, key scope).
    planner.authorizeDeployment(ctx, plan, st, found.c);
    planner.bodyFor(plan, found.c, st.call.body, st); // the facts: which detectors the answer's request had redacted
    this.lookups.hit.inc();
    this.served.inc(found.bytes);
    return this.serve(ctx, st, d, found.c, found.entry, l.settings!);
  }

  /** The first candidate with an entry that decrypts; 'error' when Redis is unavailable. Never rejects. */
  private async read(ctx: RequestContext, tenantId: string, keyed: readonly Keyed[]): Promise<Found | undefined | 'error'> {
    let values: (string | null)[];
    try {
      values = await this.withTimeout(this.store_.get(keyed.map((k) => entryKey(tenantId, k.key))));
    } catch (e) {
      ctx.log.warn({ err: (e as Error)?.message }, 'response cache unavailable; answering as a miss');
      return 'error';
    }
    for (let i = 0; i < keyed.length; i++) {
      const raw = values[i];
      if (!raw) continue;
      const k = keyed[i]!;
      const entry = this.open(ctx, tenantId, k.key, raw);
      if (entry && entry.dep === k.c.deployment.id) return { c: k.c, entry, bytes: raw.length };
    }
    return undefined;
  }

  /** Decrypts an entry; one that does not (another master key, tampered) is a miss. */
  private open(ctx: RequestContext, tenantId: string, key: string, raw: string): CacheEntry | undefined {
    try {
      const e = JSON.parse(this.d.secrets.decrypt(raw, aad(tenantId, key))) as CacheEntry;
      return e.v === 1 && Array.isArray(e.choices) ? e : undefined;
    } catch (e) {
      ctx.log.warn({ err: (e as Error)?.name }, 'response cache entry could not be read; answering as a miss');
      return undefined;
    }
  }

  private serve(ctx: RequestContext, st: CallState, d: GatewayDeps, c: Candidate, e: CacheEntry, s: CacheSettings): GatewayResult {
    const ticket = new CacheTicket('hit');
    ticket.charge = Math.round(e.cost * s.hitCostFraction);
    ticket.saved = e.cost - ticket.charge;
    st.cache = ticket;
    st.deployment = c.deployment;
    st.model = c.model;
    st.promptTokens = 0;
    st.completionTokens = 0;
    st.status = 'ok';
    st.outcome = 'ok';
    st.httpStatus = 200;
    const facts = factsOf(ctx, st);
    const id = `chatcmpl-${newId('cache')}`;
    const now = this.d.clock.now();
    if (!st.stream) {
      const body = wholeOf(e, id, st.alias!, now);
      st.content?.result('chat', body);
      finishCall(d, ctx, st);
      return { kind: 'whole', body, facts };
    }
    return { kind: 'stream', chunks: new Replay(chunksOf(e, id, st.alias!, now), st, () => finishCall(d, ctx, st)), facts };
  }

  /** Encrypts and stores an entry, off the call path. Never throws. */
  store(tenantId: string, key: string, entry: CacheEntry, s: CacheSettings): void {
    let value: string;
    try {
      value = this.d.secrets.encrypt(JSON.stringify(entry), aad(tenantId, key));
    } catch (e) {
      this.d.log.error({ err: (e as Error)?.name }, 'response cache entry could not be encrypted');
      return;
    }
    if (value.length > Math.min(MAX_ENTRY_BYTES, s.maxBytes)) return;
    const ttlMs = s.ttlSeconds * 1000;
    this.store_.put(tenantId, key, value, ttlMs, s.maxBytes, this.d.clock.now()).then(
      (r) => {
        this.stored.inc(value.length);
        if (r.evicted) this.d.metrics.cacheEvictions.inc(r.evicted);
      },
      (e: Error) => this.d.log.warn({ err: e.message }, 'response cache entry not stored (redis unavailable)'),
    );
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer from redis within ${this.timeoutMs} ms`)), this.timeoutMs);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });
  }
}

interface Counted {
  inc(v?: number): void;
}

/** The AAD binds a ciphertext to its tenant and key: a value copied under another key or tenant does not decrypt. */
function aad(tenantId: string, key: string): string {
  return `response_cache:${tenantId}:${key}`;
}

/**
 * A hit's chunks for a streaming face: content capture sees them as relayed; the usage record
 * is made when they end, or when the face returns early (its client went away: a disconnect).
 */
class Replay implements AsyncIterable<ChatCompletionChunk>, AsyncIterator<ChatCompletionChunk> {
  private i = 0;
  private done = false;

  constructor(
    private readonly chunks: readonly ChatCompletionChunk[],
    private readonly st: CallState,
    private readonly finish: () => void,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<ChatCompletionChunk> {
    return this;
  }

  next(): Promise<IteratorResult<ChatCompletionChunk>> {
    if (this.i < this.chunks.length) {
      if (this.i === 0) this.st.ttftMs = performance.now() - this.st.t0;
      const c = this.chunks[this.i++]!;
      this.st.content?.chunk(c);
      return Promise.resolve({ value: c, done: false });
    }
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  return(): Promise<IteratorResult<ChatCompletionChunk>> {
    if (this.i < this.chunks.length && !this.done) markGone(this.st);
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.finish();
  }
}
