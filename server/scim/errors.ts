/**
 * SCIM's own error shape (RFC 7644 §3.12): `{"schemas":[ERROR], "status":"404", "scimType"?,
 * "detail"}`, with `status` as a string. /scim answers only in this shape; the rest of the
 * API keeps the `{"error":{…}}` envelope (server/errors.ts).
 */
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** The scimType values of RFC 7644 §3.12 that Enclave sends. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export class ScimError extends Error {
  override readonly name = 'ScimError';
  constructor(
    readonly status: number,
    message: string,
    readonly scimType?: ScimType,
  ) {
    super(message);
  }

  toBody(): { schemas: string[]; status: string; scimType?: ScimType; detail: string } {
    return { schemas: [ERROR_SCHEMA], status: String(this.status), ...(this.scimType ? { scimType: this.scimType } : {}), detail: this.message };
  }
}

export const notFound = (what: 'User' | 'Group', id: string): ScimError => new ScimError(404, `${what} ${id.slice(0, 80)} not found`);
export const badValue = (detail: string): ScimError => new ScimError(400, detail, 'invalidValue');
