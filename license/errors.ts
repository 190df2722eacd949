/**
 * Every way a licence, certificate, signature or armour can be wrong has a stable code.
 * Verification never throws anything else for bad input: callers map the code to a state
 * (`invalid`), an HTTP answer or a CLI line.
 */
export type LicenseErrorCode =
  | 'too_large'
  | 'armor_missing_header'
  | 'armor_missing_footer'
  | 'armor_invalid'
  | 'malformed'
  | 'bad_base64url'
  | 'bad_json'
  | 'duplicate_json_key'
  | 'bad_header'
  | 'alg_not_allowed'
  | 'header_param_not_allowed'
  | 'wrong_type'
  | 'unknown_key'
  | 'key_revoked'
  | 'kid_mismatch'
  | 'bad_certificate'
  | 'issuer_not_yet_valid'
  | 'issuer_expired'
  | 'bad_signature'
  | 'bad_payload'
  | 'license_revoked'
  | 'wrong_product'
  | 'environment_mismatch'
  | 'installation_mismatch'
  | 'not_yet_valid'
  | 'sequence_downgrade'
  | 'sequence_conflict'
  | 'bad_key_file';

export class LicenseError extends Error {
  override readonly name = 'LicenseError';
  constructor(
    readonly code: LicenseErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}
