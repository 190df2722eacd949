import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Db } from '../db/connection.js';
import { readBackupRecords } from '../ops/backup/records.js';
import type { CheckOutcome } from './checks.js';

/**
 * The preflight checks added for operations (issue 10): clock sanity, backup age, TLS
 * certificate expiry, provider reachability. Each returns the doctor's CheckOutcome shape
 * with the fix in the message. Queue health is not here: no job queues exist yet (the jobs
 * issue adds its check to this engine when it adds the queues).
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function maxTimestamp(db: Db | undefined): { at: number; source: string } | undefined {
  if (!db) return undefined;
  let best: { at: number; source: string } | undefined;
  for (const [sql, source] of [
    ['SELECT max(updated_at) AS t FROM settings', 'settings'],
    ['SELECT max(applied_at) AS t FROM schema_migrations', 'schema_migrations'],
  ] as const) {
    try {
      const t = (db.$client.prepare(sql).get() as { t: number | null }).t;
      if (t && (!best || t > best.at)) best = { at: t, source };
    } catch {
      /* table not there */
    }
  }
  return best;
}

/** NTP state when timedatectl can tell; undefined when it cannot (containers without systemd). */
function ntpState(): 'synced' | 'unsynced' | undefined {
  try {
    const r = spawnSync('timedatectl', ['show', '-p', 'NTPSynchronized'], { encoding: 'utf8', timeout: 2000 });
    if (r.status !== 0) return undefined;
    if (/NTPSynchronized=yes/.test(r.stdout)) return 'synced';
    if (/NTPSynchronized=no/.test(r.stdout)) return 'unsynced';
  } catch {
    /* not installed */
  }
  return undefined;
}

/**
 * Clock sanity: the wall clock must not be behind what this installation already wrote
 * (licences, sessions, rate limits and audit order depend on it), and NTP should be
 * synchronized where the host can say so.
 */
export function clockCheck(db: Db | undefined, now: number, ntp: () => 'synced' | 'unsynced' | undefined = ntpState): CheckOutcome {
  const newest = maxTimestamp(db);
  const data: Record<string, unknown> = { now: new Date(now).toISOString() };
  if (newest) data.newestWrite = new Date(newest.at).toISOString();
  if (newest && newest.at - now > 5 * MINUTE) {
    return {
      id: 'clock',
      status: 'fail',
      message: `the clock (${new Date(now).toISOString()}) is behind data this installation wrote at ${new Date(newest.at).toISOString()} (${newest.source}); fix the system time and enable NTP`,
      data,
    };
  }
  const state = ntp();
  data.ntp = state ?? 'unknown';
  if (state === 'unsynced') {
    return { id: 'clock', status: 'warn', message: 'the clock is not NTP-synchronized; enable NTP (timedatectl set-ntp true, or chrony against your internal NTP server)', data };
  }
  return { id: 'clock', status: 'ok', message: state === 'synced' ? 'clock NTP-synchronized and not behind stored data' : 'clock not behind stored data (NTP state unknown here; make sure the host runs NTP)', data };
}

/** Installation age: when its first migration was applied. */
function installedAt(db: Db): number | undefined {
  try {
    return (db.$client.prepare('SELECT min(applied_at) AS t FROM schema_migrations').get() as { t: number | null }).t ?? undefined;
  } catch {
    return undefined;
  }
}

/** Backup age from the last-success record `enclave backup create` keeps in the settings table. */
export function backupAgeCheck(db: Db | undefined, now: number, maxAgeHours: number): CheckOutcome {
  if (!db) return { id: 'backup_age', status: 'warn', message: 'no database, so no backup record; start Enclave, then run: enclave backup create' };
  const { lastSuccess, lastVerified } = readBackupRecords(db.$client);
  const warnMs = maxAgeHours * HOUR;
  const data: Record<string, unknown> = {};
  if (lastVerified) data.lastVerified = new Date(lastVerified.at).toISOString();
  if (!lastSuccess) {
    const since = installedAt(db);
    if (since !== undefined && now - since < warnMs) {
      return { id: 'backup_age', status: 'ok', message: `no backup yet (installation is ${((now - since) / HOUR).toFixed(1)} h old); schedule one: enclave backup create --recipient KEY`, data };
    }
    return { id: 'backup_age', status: 'warn', message: 'no backup has been made; run: enclave backup create (and schedule it)', data };
  }
  const age = now - lastSuccess.at;
  Object.assign(data, { lastSuccess: new Date(lastSuccess.at).toISOString(), ageHours: Math.round((age / HOUR) * 10) / 10, file: lastSuccess.file });
  const human = age < 2 * DAY ? `${(age / HOUR).toFixed(1)} h` : `${(age / DAY).toFixed(1)} days`;
  if (age > 7 * warnMs) return { id: 'backup_age', status: 'fail', message: `the last backup is ${human} old; run: enclave backup create, and check the backup schedule`, data };
  if (age > warnMs) return { id: 'backup_age', status: 'warn', message: `the last backup is ${human} old (more than ${maxAgeHours} h); run: enclave backup create, and check the backup schedule`, data };
  return { id: 'backup_age', status: 'ok', message: `last backup ${human} ago${lastVerified ? `, last verified ${new Date(lastVerified.at).toISOString()}` : ' (never verified: enclave backup verify FILE)'}`, data };
}

/** TLS certificate: readable, valid now, not expiring within 30 days (warn) / 7 days (fail), covers the public host. */
export function tlsCheck(file: string, publicUrl: string | undefined, now: number): CheckOutcome {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (e) {
    return { id: 'tls', status: 'fail', message: `cannot read the certificate ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); point --tls-cert to a PEM certificate` };
  }
  const notAfter = Date.parse(cert.validTo);
  const notBefore = Date.parse(cert.validFrom);
  const days = Math.floor((notAfter - now) / DAY);
  const data = { file, subject: cert.subject, validFrom: new Date(notBefore).toISOString(), validTo: new Date(notAfter).toISOString(), daysRemaining: days };
  if (now < notBefore) return { id: 'tls', status: 'fail', message: `certificate is not valid before ${data.validFrom}; check the clock or reissue it`, data };
  if (now >= notAfter) return { id: 'tls', status: 'fail', message: `certificate expired at ${data.validTo}; renew it (the installer regenerates its own: installer/install.sh)`, data };
  if (publicUrl) {
    const host = new URL(publicUrl).hostname;
    const ok = /^[\d.]+$|:/.test(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
    if (!ok) return { id: 'tls', status: 'fail', message: `certificate does not cover ${host} (ENCLAVE_PUBLIC_URL); reissue it with that name`, data };
  }
  if (days < 7) return { id: 'tls', status: 'fail', message: `certificate expires in ${days} day(s) (${data.validTo}); renew it now`, data };
  if (days < 30) return { id: 'tls', status: 'warn', message: `certificate expires in ${days} days (${data.validTo}); renew it soon`, data };
  return { id: 'tls', status: 'ok', message: `certificate valid until ${data.validTo} (${days} days)`, data };
}

/** Opt-in: every enabled provider deployment answers HTTP at its base URL (any status below 500). */
export async function providersCheck(db: Db | undefined, timeoutMs = 3000): Promise<CheckOutcome> {
  if (!db) return { id: 'providers', status: 'fail', message: 'no database; start Enclave first' };
  let rows: { name: string; base_url: string }[];
  try {
    rows = db.$client.prepare('SELECT name, base_url FROM provider_deployments WHERE enabled = 1 ORDER BY name').all() as { name: string; base_url: string }[];
  } catch {
    return { id: 'providers', status: 'ok', message: 'no provider deployments in this release yet' };
  }
  if (!rows.length) return { id: 'providers', status: 'ok', message: 'no provider deployments configured; add one: enclave providers add' };
  const results = await Promise.all(
    rows.map(async (r) => {
      try {
        const res = await fetch(r.base_url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        return { name: r.name, ok: res.status < 500, detail: `HTTP ${res.status}` };
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code;
        return { name: r.name, ok: false, detail: cause ?? (e as Error).name };
      }
    }),
  );
  const bad = results.filter((r) => !r.ok);
  const data = { providers: results };
  if (bad.length) {
    return { id: 'providers', status: 'fail', message: `${bad.length} of ${results.length} provider(s) unreachable: ${bad.map((b) => `${b.name} (${b.detail})`).join(', ')}; check the URL, DNS, firewall and that the provider runs`, data };
  }
  return { id: 'providers', status: 'ok', message: `all ${results.length} provider(s) answer`, data };
}
