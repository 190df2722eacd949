import express from 'express';
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonBody } from '../../server/http/json-body.js';

/** The lean JSON reader answers like express.json for every body (same result, same error type and message). */
let lean: http.Server;
let full: http.Server;
const LIMIT = 64;

function serve(mw: express.RequestHandler): Promise<http.Server> {
  const app = express();
  app.use(mw);
  app.post('/', (req, res) => {
    res.json({ body: req.body ?? null });
  });
  app.use(((err, _req, res, _next) => {
    res.status(err.status ?? 500).json({ type: err.type, message: err.message });
  }) as express.ErrorRequestHandler);
  const s = http.createServer(app);
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

async function post(s: http.Server, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const { port } = s.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  lean = await serve(jsonBody(LIMIT));
  full = await serve(express.json({ limit: LIMIT, strict: true }));
});
afterAll(() => {
  lean.close();
  full.close();
});

describe('jsonBody', () => {
  const cases: [string, string | Buffer, Record<string, string>][] = [
    ['object', '{"a":1,"b":[true,null]}', { 'content-type': 'application/json' }],
    ['array', ' [1,2]', { 'content-type': 'application/json; charset=utf-8' }],
    ['empty', '', { 'content-type': 'application/json' }],
    ['bom', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"x":"é"}')]), { 'content-type': 'application/json' }],
    ['truncated', '{"a": ', { 'content-type': 'application/json' }],
    ['strict violation', '  "just a string"', { 'content-type': 'application/json' }],
    ['strict number', '12', { 'content-type': 'application/json' }],
    ['whitespace only', '   ', { 'content-type': 'application/json' }],
    ['too large', JSON.stringify({ t: 'x'.repeat(100) }), { 'content-type': 'application/json' }],
    ['other charset', '{}', { 'content-type': 'application/json; charset=latin1' }],
    ['not json', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['upper case type', '{"u":1}', { 'content-type': 'Application/JSON' }],
  ];
  for (const [name, body, headers] of cases) {
    it(`same answer as express.json: ${name}`, async () => {
      const a = await post(lean, body, headers);
      const b = await post(full, body, headers);
      expect(a).toEqual(b);
    });
  }
});
