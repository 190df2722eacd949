import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, toAppError } from '../errors.js';

/** Unknown routes: 404 in the error envelope. */
export const notFoundHandler: RequestHandler = (req) => {
  throw new AppError(404, 'route_not_found', `No route for ${req.method} ${req.path}`);
};

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

/** Maps body-parser failures to our codes; anything unexpected becomes a logged 500. */
export function errorHandler(): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = fromBodyParser(err as BodyParserError) ?? toAppError(err);
    if (e.status >= 500) req.ctx?.log.error({ err: e.cause ?? e, code: e.code }, 'request failed');
    if (res.headersSent) {
      // A streamed response already started: all we can do is end it.
      res.end();
      return;
    }
    if (e.headers) res.set(e.headers);
    res.status(e.status).json(e.toBody());
  };
}

function fromBodyParser(err: BodyParserError): AppError | undefined {
  switch (err?.type) {
    case 'entity.parse.failed':
      return new AppError(400, 'invalid_json', `Request body is not valid JSON: ${err.message}`);
    case 'entity.too.large':
      return new AppError(413, 'body_too_large', `Request body is larger than the limit of ${err.limit} bytes.`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError(415, 'unsupported_encoding', err.message);
    case 'request.aborted':
      return new AppError(400, 'request_aborted', 'The client aborted the request body.');
    default:
      return undefined;
  }
}
