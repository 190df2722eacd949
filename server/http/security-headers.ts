import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';

/**
 * The security headers of every response, computed once: the same values helmet 8 sets with
 * this configuration (CSP without defaults — the web UI ships its own assets only, no CDN,
 * no inline scripts; no HSTS, which the TLS-terminating proxy or installer sets), written by
 * one middleware instead of helmet's twelve. test/unit/security-headers.test.ts checks the
 * list against helmet's own output, so the two cannot drift apart.
 */
export const CSP_DIRECTIVES: Readonly<Record<string, readonly string[]>> = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'"],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'frame-ancestors': ["'none'"],
  'form-action': ["'self'"],
};

export const SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  [
    'Content-Security-Policy',
    Object.entries(CSP_DIRECTIVES)
      .map(([k, v]) => `${k} ${v.join(' ')}`)
      .join(';'),
  ],
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];

export function securityHeaders(): RequestHandler {
  return (_req, res, next) => {
    setSecurityHeaders(res);
    res.removeHeader('X-Powered-By');
    next();
  };
}

/** Writes {@link SECURITY_HEADERS} on a response (the express middleware and the /v1 fast path). */
export function setSecurityHeaders(res: ServerResponse): void {
  const list = SECURITY_HEADERS;
  for (let i = 0; i < list.length; i++) res.setHeader(list[i]![0], list[i]![1]);
}
