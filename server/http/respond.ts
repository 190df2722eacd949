import type { ServerResponse } from 'node:http';

/**
 * A JSON answer on a plain node response — what express's `res.status(s).json(body)` writes
 * (`application/json; charset=utf-8`, a Content-Length, no ETag), for code that runs outside
 * express: the /v1 fast path and the gateway service, which both serve through it.
 */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(s));
  res.end(s);
}
