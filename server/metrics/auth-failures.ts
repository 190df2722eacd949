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
    if (metrics) {
      const s = this.statusCode;
      if (s === 401 || s === 403 || s === 429) {
        const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (typeof code === 'string' && code.startsWith('auth_')) metrics.authFailures.labels(authFailureReason(code)).inc();
      }
    }
    return json.call(this, body);
  };
}
