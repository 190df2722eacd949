import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAppError } from '../../server/errors.js';
import { errorHandler } from '../../server/http/errors.js';
import { jsonBody, jsonTooDeep, MAX_JSON_DEPTH, readJson } from '../../server/http/json-body.js';

/**
 * Issue 16: a body nested 200k levels deep parsed fine and then overflowed the stack in
 * JSON.stringify on its way upstream. Bodies nested deeper than MAX_JSON_DEPTH are refused at
 * the door, before they are parsed, with 400 invalid_request — on the express middleware (lean
 * and fallback paths) and on the /v1 fast path's reader alike.
 */
const nest = (d: number, open = '[', close = ']') => open.repeat(d) + close.repeat(d);
const objects = (d: number) => '{"a":'.repeat(d) + '1' + '}'.repeat(d);

describe('jsonTooDeep', () => {
  it('counts arrays and objects, up to the limit and one past it', () => {
    expect(jsonTooDeep(nest(MAX_JSON_DEPTH))).toBe(false);
    expect(jsonTooDeep(nest(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(jsonTooDeep(objects(MAX_JSON_DEPTH))).toBe(false);
    expect(jsonTooDeep(objects(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(jsonTooDeep('['.repeat(200_000))).toBe(true);
    expect(jsonTooDeep('[' + '[],'.repeat(10_000) + '[]]')).toBe(false); // wide, not deep
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    const s = JSON.stringify({ content: '['.repeat(1000) + '"\\' + '{'.repeat(1000), x: ['\\"[[[['] });
    expect(JSON.parse(s)).toBeTruthy();
    expect(jsonTooDeep(s)).toBe(false);
    expect(jsonTooDeep(JSON.stringify({ a: '\\\\' }) + nest(70))).toBe(true);
  });
});

let server: http.Server;
let url = '';
beforeAll(async () => {
  const app = express();
  app.use(jsonBody(10 * 1024 * 1024));
  app.post('/', (req, res) => void res.json({ ok: true, kind: typeof req.body }));
  app.use(errorHandler());
  const fast = (req: http.IncomingMessage, res: http.ServerResponse) => {
    readJson(req, 10 * 1024 * 1024).then(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
      (e) => {
        const err = toAppError(e);
        res.writeHead(err.status, { 'content-type': 'application/json' }).end(JSON.stringify(err.toBody()));
      },
    );
  };
  server = http.createServer((req, res) => (req.url === '/fast' ? fast(req, res) : app(req, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => server.close());

async function post(path: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const r = await fetch(url + path, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  return { status: r.status, body: (await r.json()) as any };
}

describe('bodies nested too deep are refused at the door', () => {
  const deep = `{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":${nest(200_000)}}`;
  const cases: [string, string, string | Buffer, Record<string, string>][] = [
    ['express, lean path', '/', deep, { 'content-type': 'application/json' }],
    ['express, fallback (gzip)', '/', zlib.gzipSync(deep), { 'content-type': 'application/json', 'content-encoding': 'gzip' }],
    ['express, fallback (other media type parameters)', '/', deep, { 'content-type': 'application/json; charset="utf-8"' }],
    ['fast path reader', '/fast', deep, { 'content-type': 'application/json' }],
    ['fast path reader, unbalanced 200k [', '/fast', '['.repeat(200_000), { 'content-type': 'application/json' }],
    ['express, unbalanced 200k [', '/', '['.repeat(200_000), { 'content-type': 'application/json' }],
  ];
  for (const [name, path, body, headers] of cases) {
    it(name, async () => {
      const r = await post(path, body, headers);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', type: 'invalid_request_error' });
      expect(r.body.error.message).toBe(`Request body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels.`);
    });
  }

  it('bodies within the limit are parsed as before', async () => {
    expect((await post('/', `{"a":${nest(MAX_JSON_DEPTH - 1)}}`)).status).toBe(200);
    expect((await post('/fast', `{"a":${nest(MAX_JSON_DEPTH - 1)}}`)).status).toBe(200);
  });
});
