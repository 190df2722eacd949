import type { FastRoute } from '../http/fast-path.js';
import type { Telemetry } from './index.js';

/**
 * The /v1 (and /ollama) fast-path routes with each request in its server span, the client's
 * `traceparent` as its parent. The span covers the handler: the call, and for a stream every
 * chunk until the response ends (authentication and the body read come before it). Without
 * telemetry the routes are returned as they are: nothing is added per request.
 */
export function tracedRoutes(t: Telemetry | undefined, routes: FastRoute[]): FastRoute[] {
  if (!t) return routes;
  return routes.map((r) => ({
    ...r,
    handle: (ctx, req, res, body, params) => t.http(ctx, req, res, r.template, async () => r.handle(ctx, req, res, body, params)),
  }));
}
