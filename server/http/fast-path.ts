import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { AppError, toAppError } from '../errors.js';
import type { Identity } from '../identity/index.js';
import { authenticateRequest, clientInfo } from '../identity/http.js';
import { countAuthFailure } from '../metrics/auth-failures.js';
import type { Metrics } from '../metrics/registry.js';
import type { Telemetry } from '../telemetry/index.js';
import { readJson } from './json-body.js';
import { beginRequest, clientIp } from './request-context.js';
import { sendJson } from './respond.js';
import { setSecurityHeaders } from './security-headers.js';

/**
 * The /v1 hot path, served on node:http without express. Every AI call passes here, and
 * express's per-request machinery (prototype swaps on req/res, a router walk, res.json's
 * content negotiation) cost more CPU than the gateway's own work — measured ≈ 80–200 µs per
 * request on this project's machine against a plain handler (bench/README.md).
 *
 * It is not a second web framework: the pieces that make a request — request id, context,
 * log line and metrics (beginRequest), security headers, authentication
 * (authenticateRequest), the JSON body rules (readJson), the error envelope — are the same
 * functions the express stack uses, so /v1 answers exactly as it did behind express. Only
 * the routing is its own: a short list of routes, matched by method and a RegExp; a request
 * none of them matches goes to express unchanged.
 */
export interface FastRoute {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** The route template in logs and metrics (`/v1/models/:id`). */
  readonly template: string;
  /** Matches the whole path (case-insensitive, optional trailing slash); groups are the params. */
  readonly pattern: RegExp;
  /** Whether the handler gets the parsed JSON body (POST) or the body is drained unread. */
  readonly body: boolean;
  /** The error body for this route's clients (default: OpenAI's `{error: {message, type, code, param}}`). */
  readonly errorBody?: (e: AppError) => unknown;
  handle(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, body: unknown, params: readonly string[]): void | Promise<void>;
}

export interface FastPathOptions {
  readonly routes: readonly FastRoute[];
  readonly identity: Identity;
  readonly log: Logger;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly maxBodyBytes: number;
  /** ENCLAVE_TRUST_PROXY: trusted proxy hops; the client address from X-Forwarded-For, as express's `req.ip` with `trust proxy` set to the same number. */
  readonly trustProxy: number;
  readonly fallback: RequestListener;
  /** OpenTelemetry: each request in a server span, authentication included (server/telemetry); absent = none. */
  readonly telemetry?: Telemetry | undefined;
}

export function fastPath(o: FastPathOptions): RequestListener {
  const routes = o.routes;
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.method !== method) continue;
      const m = r.pattern.exec(path);
      if (m) {
        void serve(o, r, m.slice(1), req, res, path);
        return;
      }
    }
    // Everything else — other /v1 routes (batches, files, usage), the admin API, the UI,
    // unknown paths and methods (404, OPTIONS) — is express's.
    o.fallback(req, res);
  };
}

async function serve(o: FastPathOptions, route: FastRoute, params: string[], req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const ctx = beginRequest(req, res, o.log, o.metrics, () => route.template, o.clock);
  setSecurityHeaders(res);
  if (o.telemetry) return o.telemetry.http(ctx, req, res, route.template, () => handle(o, route, params, ctx, req, res, path));
  return handle(o, route, params, ctx, req, res, path);
}

/** Authentication, the body, the route's handler; any failure answered in the route's error shape. */
async function handle(o: FastPathOptions, route: FastRoute, params: string[], ctx: RequestContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    let decoded: string[];
    try {
      decoded = params.map((p) => decodeURIComponent(p));
    } catch {
      req.resume();
      throw new AppError(400, 'invalid_request', `Malformed percent-encoding in ${path}.`);
    }
    ctx.client = clientInfo(clientIp(req, o.trustProxy), req.headers['user-agent']);
    // Authentication before the body is read: an unauthenticated caller never costs a parse.
    try {
      await authenticateRequest(o.identity, req, ctx, true, false);
    } catch (e) {
      req.resume();
      throw e;
    }
    const body = route.body ? await readJson(req, o.maxBodyBytes) : (req.resume(), undefined);
    await route.handle(ctx, req, res, body, decoded);
  } catch (e) {
    sendError(o, ctx, res, e, route.errorBody);
  }
}

/** The error envelope, as server/http/errors.ts's errorHandler writes it behind express. */
function sendError(o: FastPathOptions, ctx: RequestContext, res: ServerResponse, err: unknown, errorBody?: (e: AppError) => unknown): void {
  const e = toAppError(err);
  if (e.status >= 500) ctx.log.error({ err: e.cause ?? e, code: e.code }, 'request failed');
  if (res.headersSent) {
    res.end();
    return;
  }
  if (e.headers) for (const k of Object.keys(e.headers)) res.setHeader(k, e.headers[k]!);
  // enclave_auth_failures_total, as express routes count it (server/metrics/auth-failures.ts).
  countAuthFailure(o.metrics, e.status, e.code);
  sendJson(res, e.status, errorBody ? errorBody(e) : e.toBody());
}

/** The client's address (server/http/request-context.ts: trusted proxy hops, rightmost X-Forwarded-For entries). */
export { clientIp };
