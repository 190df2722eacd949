import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { clientIp } from '../http/request-context.js';

/**
 * Who may read GET /metrics (api and worker alike). The series say which deployments and
 * routes are busy, failing or slow, and the server binds 0.0.0.0 by default, so /metrics is
 * never open to the network by accident:
 *  - with a bearer token (ENCLAVE_METRICS_TOKEN or _FILE; compose's Prometheus sends it)
 *    anyone presenting it may read, from anywhere;
 *  - without one, only loopback clients (a Prometheus or curl on the same host), unless an
 *    operator opened it explicitly with ENCLAVE_METRICS_PUBLIC=true.
 * "Loopback" is the socket's peer, and a request that came through a proxy (it carries
 * X-Forwarded-For) counts as local only when the trusted hops (ENCLAVE_TRUST_PROXY) say the
 * client itself is loopback: a reverse proxy on the same host must not make the internet local.
 */
export interface MetricsAccess {
  readonly token?: string | undefined;
  /** ENCLAVE_METRICS_PUBLIC: serve /metrics without a token to every client. */
  readonly public?: boolean;
  /** ENCLAVE_TRUST_PROXY hops. */
  readonly trustProxy?: number;
}

export type MetricsDecision = 'allow' | 'token_required' | 'not_local';

export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}

export function metricsGate(access: MetricsAccess): (req: IncomingMessage) => MetricsDecision {
  const expected = access.token ? createHash('sha256').update(access.token).digest() : undefined;
  return (req) => {
    if (expected) {
      const h = req.headers.authorization;
      const given = /^Bearer (.+)$/.exec(typeof h === 'string' ? h : '')?.[1] ?? '';
      // Hash both sides so the comparison is constant-time whatever the lengths.
      return timingSafeEqual(createHash('sha256').update(given).digest(), expected) ? 'allow' : 'token_required';
    }
    if (access.public) return 'allow';
    if (!isLoopback(req.socket.remoteAddress)) return 'not_local';
    if (req.headers['x-forwarded-for'] === undefined) return 'allow';
    const hops = access.trustProxy ?? 0;
    return hops > 0 && isLoopback(clientIp(req, hops)) ? 'allow' : 'not_local';
  };
}

export const TOKEN_MESSAGE = 'GET /metrics needs "Authorization: Bearer <token>" (ENCLAVE_METRICS_TOKEN or the content of ENCLAVE_METRICS_TOKEN_FILE).';
export const LOCAL_MESSAGE =
  'GET /metrics is served only to clients on this host while no ENCLAVE_METRICS_TOKEN is set: set a token for remote scrapers (or ENCLAVE_METRICS_PUBLIC=true to open it to everyone).';
