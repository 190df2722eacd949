import type { RuntimeSettings } from '../server/config/runtime-settings.js';
import type { Store } from '../server/db/store.js';
import { LicenseError } from './errors.js';
import { verifyLicense, type VerifiedLicense, type VerifyContext } from './verify.js';

/**
 * Where the licence lives: rows of the `settings` table (no table of its own).
 *   license.current    the installed licence text (what every process loads)
 *   license.lkg        the last text that verified (used when current no longer does)
 *   license.sequences  highest installed seq per customer (anti-downgrade)
 *   license.time       the trusted-time state (HWM)
 *   license.events     the last install / state-change events (until the audit log takes them)
 */
export const K = {
  current: 'license.current',
  lkg: 'license.lkg',
  sequences: 'license.sequences',
  time: 'license.time',
  events: 'license.events',
} as const;

export interface StoredLicense {
  readonly text: string;
  readonly installedAt: string;
  readonly fingerprint: string;
}

type Sequences = Record<string, { seq: number; lid: string; fingerprint: string }>;

export interface LicenseEvent {
  readonly at: string;
  readonly type: 'installed' | 'state_changed' | 'rejected' | 'clock_confirmed' | 'clock_suspect' | 'clock_tampered';
  readonly detail: Record<string, unknown>;
}

/**
 * Appends events to the stored list (the newest 50). A read-modify-write of one row, so it runs
 * in a transaction that locks the row first: two processes recording at once both land.
 */
export function recordEvents(store: Store, settings: RuntimeSettings, events: readonly LicenseEvent[]): Promise<void> {
  if (events.length === 0) return Promise.resolve();
  return store.tx(async () => {
    await lockSettings(store, K.events);
    const list = (await safeGet<LicenseEvent[]>(settings, K.events)) ?? [];
    list.push(...events);
    await settings.set(K.events, list.slice(-50));
  });
}

export async function safeGet<T>(settings: RuntimeSettings, key: string): Promise<T | undefined> {
  try {
    return await settings.get<T>(key);
  } catch {
    return undefined;
  }
}


/**
 * Serialises read-modify-writes of a settings row across processes and replicas, inside a
 * `store.tx`. SQLite: nothing to do, the transaction is BEGIN IMMEDIATE (the database's write
 * lock is held from the first read). PostgreSQL (READ COMMITTED): two transactions could both
 * read the old value and both write; a transaction-scoped advisory lock on the key's hash
 * makes the second wait until the first commits, and its reads then see that commit. An
 * advisory lock rather than `SELECT … FOR UPDATE`: the row may not exist yet (first install).
 */
export function lockSettings(store: Store, key: string): Promise<void> {
  return store.lock(`enclave:settings:${key}`);
}

export interface InstallResult {
  readonly result: 'installed' | 'unchanged';
  readonly licence: VerifiedLicense;
  readonly previous?: { readonly lid: string; readonly seq: number };
}

/**
 * Verifies and installs a licence (CLI and admin API both come here). Refuses: anything
 * verifyLicense refuses, a licence not valid yet, a lower seq than the highest installed
 * for the customer, and a different licence with the same seq. Re-installing the same
 * licence is idempotent. Limits below current usage are accepted (reported as over-limit).
 */
export async function installLicense(
  store: Store,
  settings: RuntimeSettings,
  text: string,
  ctx: VerifyContext & { nowMs: number },
): Promise<InstallResult> {
  const licence = verifyLicense(text, ctx);
  const p = licence.payload;
  if (p.nbf * 1000 > ctx.nowMs + 5 * 60_000) {
    throw new LicenseError('not_yet_valid', `this licence is valid from ${new Date(p.nbf * 1000).toISOString()}; install it then`);
  }
  // One transaction holding the sequences' lock from the first read: two installs at once (two
  // admins, two replicas) cannot both pass the sequence checks (see lockSettings).
  return store.tx(async (): Promise<InstallResult> => {
      await lockSettings(store, K.sequences);
      const seqs = (await safeGet<Sequences>(settings, K.sequences)) ?? {};
      const prevCurrent = await safeGet<StoredLicense>(settings, K.current);
      const highest = seqs[p.sub.customer_id];
      if (highest && p.seq < highest.seq) {
        throw new LicenseError('sequence_downgrade', `licence sequence ${p.seq} is older than the installed ${highest.seq} (${highest.lid}) for customer ${p.sub.customer_id}`, {
          installed: highest.seq,
          offered: p.seq,
        });
      }
      if (highest && p.seq === highest.seq && highest.fingerprint !== licence.fingerprint) {
        throw new LicenseError('sequence_conflict', `a different licence with sequence ${p.seq} (${highest.lid}) is already installed; ask your vendor for a newer sequence`);
      }
      if (prevCurrent?.fingerprint === licence.fingerprint) return { result: 'unchanged', licence };
      let previous: InstallResult['previous'];
      if (prevCurrent) {
        const prevSeq = Object.values(seqs).find((s) => s.fingerprint === prevCurrent.fingerprint);
        if (prevSeq) previous = { lid: prevSeq.lid, seq: prevSeq.seq };
      }
      seqs[p.sub.customer_id] = { seq: p.seq, lid: p.lid, fingerprint: licence.fingerprint };
      await settings.set(K.sequences, seqs);
      const stored: StoredLicense = { text, installedAt: new Date(ctx.nowMs).toISOString(), fingerprint: licence.fingerprint };
      await settings.set(K.current, stored);
      await settings.set(K.lkg, stored);
      await recordEvents(store, settings, [{ at: stored.installedAt, type: 'installed', detail: { lid: p.lid, seq: p.seq, customer: p.sub.customer_id, previous } }]);
      return { result: 'installed', licence, ...(previous ? { previous } : {}) };
  });
}
