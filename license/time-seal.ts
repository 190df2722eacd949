import { verifyInstallationSignature, type Installation, type InstallationRecord } from './installation.js';
import type { TimeState } from './trusted-time.js';

/**
 * The trusted-time high-water mark is stored in a settings row that anyone with write access
 * to the database can edit: lowering it would un-expire a licence. So the stored state is
 * signed with the installation key (license/installation.ts; the private half is encrypted
 * under the master key, which is not in the database), and a row that does not verify is
 * never believed: it can neither lower nor raise the trusted time (the service then falls
 * back to the wall clock and the floors, among them the newest audit entry, and says so).
 */
export interface SealedTime extends TimeState {
  readonly installationId: string;
  /** base64url Ed25519 signature of timeBytes(). */
  readonly sig: string;
}

function timeBytes(installationId: string, s: TimeState): Buffer {
  return Buffer.from(JSON.stringify(['enclave-license-time-v1', installationId, s.hwm, s.suspect, s.epoch]));
}

export function sealTime(state: TimeState, inst: Installation): SealedTime {
  const plain: TimeState = { hwm: state.hwm, suspect: state.suspect, epoch: state.epoch };
  return { ...plain, installationId: inst.id, sig: inst.sign(timeBytes(inst.id, plain)) };
}

export type OpenedTime = { readonly state: TimeState } | { readonly tampered: string };

/** The stored state if its signature verifies under this installation's key; else why not. */
export function openTime(raw: unknown, inst: InstallationRecord): OpenedTime {
  const r = raw as Partial<SealedTime> | null;
  if (!r || typeof r !== 'object' || typeof r.hwm !== 'number' || !Number.isFinite(r.hwm) || typeof r.epoch !== 'number') return { tampered: 'the stored trusted-time record is malformed' };
  if (typeof r.sig !== 'string') return { tampered: 'the stored trusted-time record is not signed (written by an older release, or edited by hand)' };
  const state: TimeState = { hwm: r.hwm, suspect: r.suspect ?? null, epoch: r.epoch };
  if (r.installationId !== inst.id || !verifyInstallationSignature(inst.publicKey, timeBytes(inst.id, state), r.sig)) {
    return { tampered: 'the stored trusted-time record does not carry a valid signature of this installation (edited)' };
  }
  return { state };
}
