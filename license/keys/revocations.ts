/**
 * The revocation list shipped with this release: key ids (roots or issuers) and licence
 * ids that are never accepted again. Append only; bump `seq` with every change.
 * (A revoked issuer invalidates every licence it signed: re-issue those first.)
 */
export interface RevocationList {
  readonly seq: number;
  readonly kids: readonly string[];
  readonly lids: readonly string[];
}

export const SHIPPED_REVOCATIONS: RevocationList = {
  seq: 1,
  kids: [],
  lids: [],
};
