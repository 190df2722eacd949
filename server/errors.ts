/**
 * The one error type. Every refusal Enclave makes carries an HTTP status, a stable
 * machine-readable `code` and a human message; routes throw it and the error handler
 * renders the envelope `{"error":{"message","type","code","param"}}` (the OpenAI shape,
 * used by /v1 and the admin API alike).
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'quota_error'
  | 'policy_error'
  | 'provider_error'
  | 'server_error'
  | 'unavailable_error';

export interface ErrorBody {
  error: {
    message: string;
    type: ErrorType;
    code: string;
    param: string | null;
    [extra: string]: unknown;
  };
}

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly type: ErrorType;
  readonly param: string | null;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    opts: {
      type?: ErrorType;
      param?: string;
      details?: Record<string, unknown>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.type = opts.type ?? defaultType(status);
    this.param = opts.param ?? null;
    this.details = opts.details;
    this.headers = opts.headers;
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param, ...this.details } };
  }
}

function defaultType(status: number): ErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 429:
      return 'rate_limit_error';
    case 503:
      return 'unavailable_error';
    default:
      return status >= 500 ? 'server_error' : 'invalid_request_error';
  }
}

/** Any thrown value as an AppError; unknown errors become a 500 that reveals nothing. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  return new AppError(500, 'internal_error', 'Internal error; the request id identifies it in the server log.', {
    cause: err,
  });
}

export const notFound = (what: string, param?: string): AppError =>
  new AppError(404, 'not_found', `${what} not found`, param === undefined ? {} : { param });
