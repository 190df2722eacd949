import { createHmac } from 'node:crypto';

/**
 * The cache key of one request: HMAC-SHA256 (a key derived from the master key, so a key name
 * seen in Redis cannot be matched against a guessed prompt) over
 *   tenant id · partition · resolved deployment id · classification · the normalized request
 * (partition: empty when the tenant shares its entries, else the caller: settings `partition`).
 * The request is what that deployment would receive (server/gateway/plan.ts bodyFor: the
 * upstream model name, redacted for a deployment off the machine, no stream fields), minus
 * fields that do not change the answer, as canonical JSON (keys sorted), so the same request
 * through any face (Chat Completions, Responses, Messages, Ollama, batch) is the same key.
 *
 * The classification is part of the key: an answer made under one classification is served
 * only to requests of exactly that classification (never from a stricter one to a laxer one,
 * nor the other way): the simplest rule that is obviously right.
 */

/** Fields that identify or describe the caller, not the answer. */
const IGNORED = new Set(['user', 'metadata', 'store', 'safety_identifier', 'prompt_cache_key', 'service_tier', 'stream', 'stream_options']);

export function cacheKey(secret: Buffer, tenantId: string, deploymentId: string, classification: string, upstreamBody: Readonly<Record<string, unknown>>, partition = ''): string {
  const h = createHmac('sha256', secret);
  h.update(tenantId);
  h.update('\u0000');
  h.update(partition);
  h.update('\u0000');
  h.update(deploymentId);
  h.update('\u0000');
  h.update(classification);
  h.update('\u0000');
  h.update(canonical(upstreamBody, true));
  return h.digest('base64url');
}

/** JSON with object keys sorted (arrays keep their order); undefined members left out as JSON.stringify does. */
export function canonical(v: unknown, top = false): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonical(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of Object.keys(o).sort()) {
    const x = o[k];
    if (x === undefined || (top && IGNORED.has(k))) continue;
    parts.push(`${JSON.stringify(k)}:${canonical(x)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Deterministic enough to cache: temperature 0 or a seed (the rule). */
export function deterministic(body: Readonly<Record<string, unknown>>): boolean {
  return body.temperature === 0 || (typeof body.seed === 'number' && Number.isFinite(body.seed));
}

/** What a stored answer cannot give back (log probabilities, audio output): such requests are not cached. */
export function replayable(body: Readonly<Record<string, unknown>>): boolean {
  return body.logprobs !== true && !(Array.isArray(body.modalities) && body.modalities.includes('audio')) && body.audio === undefined;
}

/** The request offers tools (or legacy functions) the model may call. */
export function offersTools(body: Readonly<Record<string, unknown>>): boolean {
  return (Array.isArray(body.tools) && body.tools.length > 0) || (Array.isArray(body.functions) && body.functions.length > 0);
}
