import type { RequestHandler } from 'express';
import type { Metrics } from './registry.js';
import { authFailureReason } from './known-series.js';

/**
 * Counts refusals by authentication (enclave_auth_failures_total{reason}): any 401, 403 or
 * 429 answer whose error envelope carries an `auth_*` code — the admin envelope and the
 * OpenAI shape both put it at `error.code`. Never labels by key, user or e-mail.
 */
export function countAuthFailures(metrics: Metrics): RequestHandler {
  return (_req, res, next) => {
    const json = res.json.bind(res);
    res.json = (body?: unknown) => {
      const s = res.statusCode;
      if (s === 401 || s === 403 || s === 429) {
        const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (typeof code === 'string' && code.startsWith('auth_')) metrics.authFailures.labels(authFailureReason(code)).inc();
      }
      return json(body);
    };
    next();
  };
}
