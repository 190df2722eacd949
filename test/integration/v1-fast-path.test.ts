import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../helpers/app.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * The /v1 fast path (server/http/fast-path.ts) on bad input: what express answered before,
 * it answers now — authentication before the body, the JSON body rules (malformed, too
 * large declared or streamed, compressed, foreign charsets and encodings, not an object),
 * bad percent-encoding, the envelope and headers; and every other /v1 path still reaches
 * express.
 */
let env: GatewayEnv;
const LIMIT = 2048;

beforeAll(async () => {
  env = await gatewayEnv({ config: testConfig({ ENCLAVE_MAX_BODY_BYTES: String(LIMIT) }) });
  await env.addProvider({ name: 'fake', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: ['gpt-fake'] });
});
afterAll(() => env?.close());

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A raw request: headers exactly as given, the body written in the given pieces. */
function raw(method: string, path: string, headers: Record<string, string>, pieces: (string | Buffer)[] = []): Promise<Answer> {
  const u = new URL(env.app.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (const p of pieces) req.write(p);
    req.end();
  });
}

const auth = (): Record<string, string> => ({ authorization: `Bearer ${env.key}` });
const chat = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content: 'hi' }] });
const code = (a: Answer): string => (JSON.parse(a.body) as { error: { code: string } }).error.code;

describe('/v1 fast path', () => {
  it('a chat call answers with the request id and the security headers', async () => {
    const a = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'x-request-id': 'fp-1' }, [chat]);
    expect(a.status).toBe(200);
    expect(a.headers['x-request-id']).toBe('fp-1');
    expect(a.headers['content-security-policy']).toContain("default-src 'self'");
    expect(a.headers['x-content-type-options']).toBe('nosniff');
    expect(a.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('authenticates before reading the body: no key and a malformed body is 401, not 400', async () => {
    const a = await raw('POST', '/v1/chat/completions', { 'content-type': 'application/json' }, ['{"model": ']);
    expect(a.status).toBe(401);
    expect(code(a)).toBe('auth_required');
    const forged = await raw('POST', '/v1/chat/completions', { authorization: 'Bearer enk_forged', 'content-type': 'application/json' }, [chat]);
    expect(forged.status).toBe(401);
    const metrics = await (await fetch(`${env.app.url}/metrics`)).text();
    expect(metrics).toMatch(/enclave_auth_failures_total\{reason="[a-z_]+"\} [1-9]/);
  });

  it('malformed JSON: 400 invalid_json; a JSON body that is not an object: 400 invalid_request', async () => {
    const bad = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json' }, ['{"model": ']);
    expect(bad.status).toBe(400);
    expect(code(bad)).toBe('invalid_json');
    const arr = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json' }, ['[1,2]']);
    expect(arr.status).toBe(400);
    expect(code(arr)).toBe('invalid_request');
    const text = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'text/plain' }, [chat]);
    expect(text.status).toBe(400);
    expect(code(text)).toBe('invalid_request');
  });

  it('too large: 413 for a declared length and for a chunked body that grows past the limit', async () => {
    const declared = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'content-length': String(LIMIT + 1) }, ['{']);
    expect(declared.status).toBe(413);
    expect(code(declared)).toBe('body_too_large');
    const big = JSON.stringify({ model: 'gpt-fake', messages: [{ role: 'user', content: 'x'.repeat(LIMIT) }] });
    const chunked = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, [big.slice(0, 1000), big.slice(1000)]);
    expect(chunked.status).toBe(413);
    expect(code(chunked)).toBe('body_too_large');
    // A small gzip body that inflates past the limit is refused too.
    const bomb = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'content-encoding': 'gzip' }, [gzipSync(big)]);
    expect(bomb.status).toBe(413);
  });

  it('gzip bodies are read; unknown encodings and non-UTF-8 charsets are 415', async () => {
    const gz = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'content-encoding': 'gzip' }, [gzipSync(chat)]);
    expect(gz.status).toBe(200);
    const enc = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json', 'content-encoding': 'compress' }, [chat]);
    expect(enc.status).toBe(415);
    expect(code(enc)).toBe('unsupported_encoding');
    const cs = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json; charset=latin1' }, [chat]);
    expect(cs.status).toBe(415);
    expect(code(cs)).toBe('unsupported_encoding');
  });

  it('bad percent-encoding in a model id is 400; HEAD is answered without a body', async () => {
    const bad = await raw('GET', '/v1/models/%E0%A4%A', auth());
    expect(bad.status).toBe(400);
    expect(code(bad)).toBe('invalid_request');
    const head = await raw('HEAD', '/v1/models', auth());
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('other /v1 paths reach express: the files route answers (this key lacks its scope), an unknown one is 404 route_not_found', async () => {
    const files = await raw('GET', '/v1/files', auth());
    expect(files.status).toBe(403);
    expect(code(files)).not.toBe('route_not_found');
    const unknown = await raw('GET', '/v1/nope', auth());
    expect(unknown.status).toBe(404);
    expect(code(unknown)).toBe('route_not_found');
    const wrongMethod = await raw('DELETE', '/v1/chat/completions', auth());
    expect(wrongMethod.status).toBe(404);
  });

  it('a client that aborts its upload mid-body loses nothing and the server keeps serving', async () => {
    const u = new URL(env.app.url);
    await new Promise<void>((resolve) => {
      const req = http.request({ host: u.hostname, port: u.port, path: '/v1/chat/completions', method: 'POST', headers: { ...auth(), 'content-type': 'application/json', 'content-length': '500' }, agent: false });
      req.on('error', () => resolve());
      req.write('{"model": "gpt-');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    const ok = await raw('POST', '/v1/chat/completions', { ...auth(), 'content-type': 'application/json' }, [chat]);
    expect(ok.status).toBe(200);
  });
});
