import type { RequestHandler, Response } from 'express';
import type { Metrics } from './registry.js';
import { authFailureReason } from './known-series.js';

/**
 * Counts refusals by authentication (enclave_auth_failures_total{reason}): any 401, 403 or
 * 429 answer whose error envelope carries an `auth_*` code — the admin envelope and the
 * OpenAI shape both put it at `error.code`. Never labels by key, user or e-mail.
 *
 * Responses that passed this middleware carry the registry; `res.json` of the app's response
 * prototype is wrapped once (not per request) and counts for those responses only.
 */
const COUNT = Symbol('enclave.authFailures');
const wrapped = new WeakSet<object>();

type Counted = Response & { [COUNT]?: Metrics };

export function countAuthFailures(metrics: Metrics): RequestHandler {
  return (_req, res, next) => {
    (res as Counted)[COUNT] = metrics;
    const proto = Object.getPrototypeOf(res) as Response;
    if (!wrapped.has(proto)) wrapJson(proto);
    next();
  };
}

function wrapJson(proto: Response): void {
  wrapped.add(proto);
  const json = proto.json;
  proto.json = function (this: Counted, body?: unknown) {
    const metrics = this[COUNT];
    if (metrics) countAuthFailure(metrics, this.statusCode, (body as { error?: { code?: unknown } } | undefined)?.error?.code);
    return json.call(this, body);
  };
}

/** Counts one answer if it is an authentication refusal (401/403/429 with an `auth_*` code); the /v1 fast path calls it directly. */
export function countAuthFailure(metrics: Metrics, status: number, code: unknown): void {
  if ((status === 401 || status === 403 || status === 429) && typeof code === 'string' && code.startsWith('auth_')) metrics.authFailures.labels(authFailureReason(code)).inc();
}
