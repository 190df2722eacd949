import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { newId } from '../ids.js';
import type { Metrics } from '../metrics/registry.js';

declare global {
  // Express's own extension point for request properties.
  namespace Express {
    interface Request {
      ctx: RequestContext;
    }
  }
}

/** Accepted client request ids: printable, short, no spaces (they end up in logs). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Gives every request its context and id (the client's X-Request-Id when well-formed,
 * else a fresh `req_…`), echoes the id back, and writes one log line when the response
 * is finished or the client goes away: method, route template, status, duration, tenant.
 * Never bodies, never headers.
 */
export function requestContext(log: Logger, clock: Clock, metrics: Metrics) {
  return (req: Request, res: Response, next: NextFunction): void => {
    req.ctx = beginRequest(req, res, log, metrics, () => routeTemplate(req), clock);
    next();
  };
}

/**
 * The framework-neutral part of {@link requestContext}, shared with the /v1 fast path
 * (server/http/fast-path.ts): the request id, the context, and the request's log line and
 * metrics once the response finished or the client went away. `route()` is asked then.
 */
export function beginRequest(req: IncomingMessage, res: ServerResponse, log: Logger, metrics: Metrics, route: () => string, clock: Clock): RequestContext {
  const started = process.hrtime.bigint();
  const given = req.headers['x-request-id'];
  const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : newId('req');
  res.setHeader('x-request-id', requestId);
  const ctx = httpContext(requestId, log, clock);
  let logged = false;
  const done = (): void => {
    if (logged) return;
    logged = true;
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    const status = res.writableFinished ? res.statusCode : 499;
    const r = route();
    metrics.observeHttp(r, req.method ?? 'GET', status, durationMs / 1000);
    // The base logger with the request id as the first field writes the same line as the
    // request's child logger would, without making one per request just for this.
    const level = status >= 500 ? 'error' : 'info';
    if (!log.isLevelEnabled(level)) return;
    const line = {
      requestId,
      method: req.method,
      route: r,
      status,
      durationMs: Math.round(durationMs * 100) / 100,
      tenant: ctx.tenant?.slug,
    };
    log[level](line, 'request');
  };
  res.on('finish', done);
  res.on('close', done);
  return ctx;
}

/** A request header's (first) value; node gives arrays only for headers that may repeat. */
export function requestHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A request's context. `log` (a pino child bound to the request id) is made on first use:
 * most calls never log, and a child logger per request cost more than the rest of this
 * middleware. An own enumerable getter, so `{ ...ctx }` copies still carry it.
 */
function httpContext(requestId: string, base: Logger, clock: Clock): RequestContext {
  let child: Logger | undefined;
  return {
    requestId,
    clock,
    scopes: [],
    get log(): Logger {
      return (child ??= base.child({ requestId }));
    },
  };
}

/** The matched route template (`/v1/models/:id`), never the raw path with its ids. */
export function routeTemplate(req: Request): string {
  const route = (req as Request & { route?: { path?: unknown } }).route;
  if (route && typeof route.path === 'string') return `${req.baseUrl}${route.path}`;
  return req.baseUrl || 'unmatched';
}

/**
 * The client's address with `hops` trusted reverse proxies in front (ENCLAVE_TRUST_PROXY):
 * each trusted proxy appends the address it received the request from to X-Forwarded-For,
 * so the client is the entry `hops` from the right (the rightmost is what the nearest proxy
 * saw). Entries further left were written by the client itself and are never believed;
 * this is what express's `req.ip` gives with `trust proxy` set to the same number.
 * With fewer entries than hops, the leftmost is taken (every entry came through a proxy).
 */
export function clientIp(req: IncomingMessage, hops: number): string | undefined {
  if (hops > 0) {
    const h = req.headers['x-forwarded-for'];
    const xff = Array.isArray(h) ? h.join(',') : h;
    if (xff) {
      const list = xff.split(',');
      // the socket peer is the nearest proxy; hop 1 is the rightmost header entry
      const entry = list[Math.max(0, list.length - hops)]?.trim();
      if (entry) return entry;
    }
  }
  return req.socket.remoteAddress;
}
