import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import express, { type RequestHandler } from 'express';
import { AppError } from '../errors.js';

/**
 * JSON request bodies: `express.json({ limit, strict: true })` semantics, with a lean path
 * for the common case that every /v1 call takes — `Content-Type: application/json` (or with
 * `charset=utf-8`), no `Content-Encoding`, a `Content-Length` within the limit. That path
 * reads the body with two listeners and `JSON.parse`s it; its failures carry the same error
 * `type`s body-parser uses (`entity.parse.failed`, `request.aborted`), so
 * server/http/errors.ts answers them with the same codes (invalid_json, request_aborted).
 * Everything else (other media types and charsets, compressed or chunked bodies, a declared
 * length over the limit → body_too_large) goes through express.json unchanged.
 */
const LEAN_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

/**
 * The deepest nesting of arrays and objects a request body may have. JSON.parse itself is
 * iterative and copes with any depth, but everything after it that walks the value
 * recursively (JSON.stringify when the call is sent upstream, structured clone, our own
 * walkers) overflows the stack somewhere past a few thousand levels — and a deep body is slow
 * to parse (200k levels ≈ 0.3 s). No API body needs more than a handful of levels (tool
 * schemas perhaps a dozen), so a deeper one is refused at the door, before it is parsed.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether the JSON text nests arrays/objects deeper than `max`, in one pass without parsing:
 * brackets are counted outside strings; a string is skipped with indexOf to its closing quote
 * (a quote preceded by an odd run of backslashes is escaped). Linear: each backslash run is
 * counted once. Invalid JSON gets whatever answer, JSON.parse reports it afterwards.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j < 0) return false;
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c) k--;
        if (((j - 1 - k) & 1) === 0) break;
      }
      i = j;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

function tooDeep(): AppError {
  return new AppError(400, 'invalid_request', `Request body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels.`);
}

interface BodyError extends Error {
  type: string;
  status: number;
  statusCode: number;
  expose: boolean;
  body?: string;
}

function bodyError(e: Error, type: string, status: number, body?: string): BodyError {
  return Object.assign(e, { type, status, statusCode: status, expose: true, ...(body !== undefined ? { body } : {}) });
}

export function jsonBody(limit: number): RequestHandler {
  // The fallback (compressed, chunked, other charsets) checks depth in body-parser's verify hook,
  // on the decoded bytes before it parses them; an AppError keeps its status and code there.
  const full = express.json({
    limit,
    strict: true,
    verify: (_req, _res, buf, encoding) => {
      const text = encoding && /^utf-?16/i.test(encoding) ? new TextDecoder(encoding).decode(buf) : buf.toString('utf8');
      if (jsonTooDeep(text)) throw tooDeep();
    },
  });
  return (req, res, next) => {
    const h = req.headers;
    const ct = h['content-type'];
    const cl = h['content-length'];
    if (ct === undefined || cl === undefined || h['content-encoding'] !== undefined || h['transfer-encoding'] !== undefined || req.readableEnded || !LEAN_TYPES.has(ct.toLowerCase())) {
      full(req, res, next);
      return;
    }
    const length = Number(cl);
    if (!Number.isSafeInteger(length) || length > limit) {
      full(req, res, next);
      return;
    }
    req.body = undefined;
    if (length === 0) {
      full(req, res, next);
      return;
    }
    const chunks: Buffer[] = [];
    let done = false;
    const onData = (c: Buffer): void => {
      chunks.push(c);
    };
    const cleanup = (): void => {
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onError);
    };
    const onEnd = (): void => {
      if (done) return;
      cleanup();
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      let text = buf.toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // body-parser's UTF-8 decoder drops a BOM
      if (jsonTooDeep(text)) {
        next(tooDeep());
        return;
      }
      let parsed: unknown;
      try {
        parsed = parseStrict(text);
      } catch (e) {
        next(bodyError(e as Error, 'entity.parse.failed', 400, text));
        return;
      }
      req.body = parsed;
      next();
    };
    const onAborted = (): void => {
      if (done) return;
      cleanup();
      next(bodyError(new Error('request aborted'), 'request.aborted', 400));
    };
    const onError = (e: Error): void => {
      if (done) return;
      cleanup();
      next(bodyError(e, 'request.aborted', 400));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('aborted', onAborted);
    req.once('error', onError);
  };
}

const FIRST_NON_WHITESPACE = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d]|$)/;

/** body-parser's strict JSON: an object or array at the top (empty body → {}), same messages. */
export function parseStrict(body: string): unknown {
  if (body.length === 0) return {};
  if (body[0] !== '{' && body[0] !== '[') {
    const first = FIRST_NON_WHITESPACE.exec(body)?.[1] || undefined;
    if (first !== '{' && first !== '[') throw strictError(body, first);
  }
  return JSON.parse(body);
}

/** The SyntaxError JSON.parse gives for the first offending character (body-parser's trick). */
function strictError(str: string, char: string | undefined): SyntaxError {
  const index = char === undefined ? -1 : str.indexOf(char);
  const partial = index !== -1 ? str.substring(0, index) + '#'.repeat(str.length - index) : '';
  try {
    JSON.parse(partial);
    return new SyntaxError('strict violation');
  } catch (e) {
    const err = e as SyntaxError;
    err.message = err.message.replace(/#+/g, (p) => str.substring(index, index + p.length));
    return err;
  }
}

/**
 * A JSON request body on a plain node request, for the /v1 fast path (server/http/
 * fast-path.ts): the same rules and answers as the express middleware above — only
 * `application/json` bodies are read (anything else resolves `undefined`, as express.json
 * leaves `req.body` unset), UTF-8 only (415 `unsupported_encoding` for other charsets),
 * gzip/deflate/br inflated, the limit enforced on the bytes received and inflated (413
 * `body_too_large`), strict JSON (400 `invalid_json`), an aborted upload 400 `request_aborted`.
 */
export function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const h = req.headers;
  const ct = h['content-type'];
  const type = ct === undefined ? '' : ct.toLowerCase();
  if (!LEAN_TYPES.has(type)) {
    const semi = type.indexOf(';');
    if ((semi < 0 ? type : type.slice(0, semi)).trim() !== 'application/json') {
      req.resume();
      return Promise.resolve(undefined);
    }
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/.exec(type)?.[1];
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      req.resume();
      return Promise.reject(new AppError(415, 'unsupported_encoding', `unsupported charset "${charset.toUpperCase()}"`));
    }
  }
  const declared = h['content-length'] === undefined ? undefined : Number(h['content-length']);
  if (declared !== undefined && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  const enc = (h['content-encoding'] ?? 'identity').toLowerCase();
  let src: Readable = req;
  if (enc !== 'identity') {
    const inflate = enc === 'gzip' ? zlib.createGunzip() : enc === 'deflate' ? zlib.createInflate() : enc === 'br' ? zlib.createBrotliDecompress() : undefined;
    if (!inflate) {
      req.resume();
      return Promise.reject(new AppError(415, 'unsupported_encoding', `unsupported content encoding "${enc}"`));
    }
    src = req.pipe(inflate);
    req.once('aborted', () => inflate.destroy(new Error('request aborted')));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (e: AppError): void => {
      if (done) return;
      done = true;
      req.resume();
      reject(e);
    };
    src.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        fail(tooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    src.once('end', () => {
      if (done) return;
      done = true;
      let text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (jsonTooDeep(text)) {
        reject(tooDeep());
        return;
      }
      try {
        resolve(parseStrict(text));
      } catch (e) {
        reject(new AppError(400, 'invalid_json', `Request body is not valid JSON: ${(e as Error).message}`));
      }
    });
    const aborted = (): void => fail(new AppError(400, 'request_aborted', 'The client aborted the request body.'));
    req.once('aborted', aborted);
    src.once('error', (e: Error) => (src === req ? aborted() : fail(new AppError(400, 'invalid_json', `Request body could not be decoded: ${e.message}`))));
  });
}

function tooLarge(limit: number): AppError {
  return new AppError(413, 'body_too_large', `Request body is larger than the limit of ${limit} bytes.`);
}
