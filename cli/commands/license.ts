import type { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { dearmor } from '../../license/armor.js';
import { certifyIssuer } from '../../license/cert.js';
import { b64uDecode, strictJsonObject } from '../../license/encoding.js';
import { LicenseError } from '../../license/errors.js';
import type { Evaluation } from '../../license/evaluate.js';
import { issueLicense, type LicenseSpec } from '../../license/issue.js';
import { newKeyFile, publicHalf, readKeyFile, signingKey } from '../../license/keys.js';
import { activationRequest, usageExport, verifyUsageExport } from '../../license/reports.js';
import { LicenseService } from '../../license/service.js';
import { trustStore } from '../../license/trust.js';
import { verifyLicense } from '../../license/verify.js';
import { systemClock } from '../../server/clock.js';
import { resolveMasterKey } from '../../server/config/master-key.js';
import { RuntimeSettings } from '../../server/config/runtime-settings.js';
import { databaseFile } from '../../server/db/connection.js';
import { openStore, type OpenedStore } from '../../server/db/open-store.js';
import { APP_VERSION } from '../../server/paths.js';
import { cliConfig } from '../config.js';
import { CliError, printJson } from '../output.js';

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Runs fn with a LicenseService on this installation's database (no polling timer). */
async function withService<T>(fn: (svc: LicenseService) => T | Promise<T>): Promise<T> {
  const config = cliConfig();
  if (!config.databaseUrl && !existsSync(databaseFile(config.dataDir))) throw new CliError(`${databaseFile(config.dataDir)} does not exist: start Enclave once (or run enclave migrate) first`, 2);
  const master = resolveMasterKey(config, undefined, { create: false });
  let opened: OpenedStore;
  try {
    opened = await openStore(config, { appVersion: APP_VERSION, now: () => Date.now(), applicationName: 'enclave license' });
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
  try {
    const { store } = opened;
    const settings = new RuntimeSettings(store, master.box, systemClock);
    const svc = await new LicenseService({ store, settings, clock: systemClock, log: pino({ level: 'silent' }), mode: config.licenseMode, environment: config.licenseEnvironment, pollMs: 0 }).start();
    try {
      return await fn(svc);
    } finally {
      await svc.stop();
    }
  } finally {
    await opened.close();
  }
}

function licenceFailure(e: unknown): never {
  if (e instanceof LicenseError) throw new CliError(`${e.code}: ${e.message}`);
  throw e;
}

const fmt = (n: number | null): string => (n === null ? 'unlimited' : String(n));

function summary(e: Evaluation): string[] {
  const lines = [`state:        ${e.state}${e.problem ? ` (${e.problem.code}: ${e.problem.message})` : ''}`, `plan:         ${e.plan}`];
  if (e.licence) {
    lines.push(`licence:      ${e.licence.lid} seq ${e.licence.seq} for ${e.licence.customer.name} (${e.licence.customer.id})`);
    lines.push(`expires:      ${e.licence.expiresAt} (${e.licence.daysRemaining} days), grace until ${e.licence.graceEndsAt}`);
  }
  lines.push(`seats:        ${fmt(e.limits.seats)}`, `tenants:      ${fmt(e.limits.tenants)}`, `keys:         ${fmt(e.limits.keys)}`);
  lines.push(`tokens/month: ${e.limits.tokensMonth ? `${e.limits.tokensMonth.max} (${e.limits.tokensMonth.mode})` : 'unlimited'}`);
  lines.push(`boundaries:   ${e.limits.boundaries.join(', ')}`, `capabilities: ${e.capabilities.join(', ') || '(none)'}`);
  return lines;
}

/** "seats 100→50, 73 in use: new activations blocked" lines. */
export function entitlementDiff(before: Evaluation, after: Evaluation, usage: { seats: number; tenants: number; keys: number }): string[] {
  const out: string[] = [];
  for (const kind of ['seats', 'tenants', 'keys'] as const) {
    const a = before.limits[kind];
    const b = after.limits[kind];
    const used = usage[kind];
    const impact = b !== null && used > b ? `, ${used} in use: new ${kind} blocked until usage drops (nothing is removed)` : `, ${used} in use`;
    if (a !== b) out.push(`${kind} ${fmt(a)} -> ${fmt(b)}${impact}`);
  }
  const ta = before.limits.tokensMonth;
  const tb = after.limits.tokensMonth;
  if (JSON.stringify(ta) !== JSON.stringify(tb)) out.push(`tokens/month ${ta ? `${ta.max} ${ta.mode}` : 'unlimited'} -> ${tb ? `${tb.max} ${tb.mode}` : 'unlimited'}`);
  const added = after.capabilities.filter((c) => !before.capabilities.includes(c));
  const removed = before.capabilities.filter((c) => !after.capabilities.includes(c));
  if (added.length) out.push(`capabilities added: ${added.join(', ')}`);
  if (removed.length) out.push(`capabilities removed: ${removed.join(', ')}`);
  if (before.limits.boundaries.join() !== after.limits.boundaries.join()) out.push(`boundaries ${before.limits.boundaries.join(',')} -> ${after.limits.boundaries.join(',')}`);
  if (before.state !== after.state) out.push(`state ${before.state} -> ${after.state}`);
  return out;
}

export function registerLicense(program: Command): void {
  const lic = program.command('license').description('licence: install, show, verify, request; vendor: keygen, certify, issue, inspect');

  // ---------------------------------------------------------------- vendor side
  lic
    .command('keygen')
    .description('vendor: create an Ed25519 signing key (root or issuer); writes <kid>.key.json (private, 0600) and <kid>.pub.json')
    .requiredOption('--out <dir>', 'directory for the key files')
    .option('--kind <kind>', 'root or issuer', 'issuer')
    .option('--json', 'print JSON')
    .action((opts: { out: string; kind: string; json?: boolean }) => {
      if (opts.kind !== 'root' && opts.kind !== 'issuer') throw new CliError('--kind must be root or issuer');
      const key = newKeyFile(opts.kind);
      mkdirSync(opts.out, { recursive: true });
      const priv = path.join(opts.out, `${key.kid}.key.json`);
      const pub = path.join(opts.out, `${key.kid}.pub.json`);
      writeFileSync(priv, JSON.stringify(key, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
      writeFileSync(pub, JSON.stringify(publicHalf(key), null, 2) + '\n', { flag: 'wx' });
      const out = { kid: key.kid, kind: key.kind, privateKeyFile: priv, publicKeyFile: pub };
      if (opts.json) printJson(out);
      else {
        process.stdout.write(`created ${key.kind} key ${key.kid}\n  private: ${priv} (keep offline)\n  public:  ${pub}\n`);
        if (key.kind === 'issuer') process.stdout.write(`next: enclave license certify --root ROOT.key.json --issuer ${priv}\n`);
        else process.stdout.write('ship the public key in license/keys/roots.ts to trust it\n');
      }
    });

  lic
    .command('certify')
    .description('vendor: a root signs an issuer certificate (stored into the issuer key file)')
    .requiredOption('--root <file>', 'root key file (private)')
    .requiredOption('--issuer <file>', 'issuer key file (updated in place unless --out)')
    .option('--days <n>', 'validity in days', '730')
    .option('--out <file>', 'write the certified issuer key here instead')
    .option('--json', 'print JSON')
    .action((opts: { root: string; issuer: string; days: string; out?: string; json?: boolean }) => {
      try {
        const root = readKeyFile(opts.root);
        const issuer = readKeyFile(opts.issuer);
        if (root.kind !== 'root') throw new CliError(`${opts.root} is not a root key`);
        if (issuer.kind !== 'issuer') throw new CliError(`${opts.issuer} is not an issuer key`);
        const days = Number(opts.days);
        if (!Number.isInteger(days) || days < 1) throw new CliError('--days must be a positive integer');
        const now = Math.floor(Date.now() / 1000);
        const certificate = certifyIssuer(signingKey(root), issuer, { nbf: now - 300, exp: now + days * 86400, iat: now });
        const target = opts.out ?? opts.issuer;
        writeFileSync(target, JSON.stringify({ ...issuer, certificate }, null, 2) + '\n', { mode: 0o600 });
        const out = { issuer: issuer.kid, root: root.kid, validUntil: new Date((now + days * 86400) * 1000).toISOString(), file: target };
        if (opts.json) printJson(out);
        else process.stdout.write(`issuer ${out.issuer} certified by ${out.root} until ${out.validUntil}: ${target}\n`);
      } catch (e) {
        licenceFailure(e);
      }
    });

  lic
    .command('issue')
    .description('vendor: sign a licence from a JSON spec with an issuer key')
    .requiredOption('--key <file>', 'certified issuer key file')
    .requiredOption('--spec <file>', 'licence spec (JSON: seq, sub, aud, plan, capabilities, limits, term, …)')
    .requiredOption('--out <file>', 'licence file to write')
    .option('--json', 'print JSON')
    .action((opts: { key: string; spec: string; out: string; json?: boolean }) => {
      let specJson: LicenseSpec;
      try {
        specJson = JSON.parse(readText(opts.spec, 'spec')) as LicenseSpec;
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError(`${opts.spec} is not JSON`);
      }
      try {
        const { text, payload } = issueLicense(opts.key, specJson);
        writeFileSync(opts.out, text);
        if (opts.json) printJson({ lid: payload.lid, seq: payload.seq, customer: payload.sub.customer_id, expiresAt: payload.term.expires_at, file: opts.out });
        else process.stdout.write(`issued ${payload.lid} (seq ${payload.seq}) for ${payload.sub.name}, expires ${payload.term.expires_at}: ${opts.out}\n`);
      } catch (e) {
        licenceFailure(e);
      }
    });

  lic
    .command('inspect <file>')
    .description('decode a licence and check its signature chain in production and test trust (no installation needed)')
    .option('--json', 'print JSON')
    .action((file: string, opts: { json?: boolean }) => {
      const text = readText(file, 'licence');
      let header: Record<string, unknown>;
      let payload: Record<string, unknown>;
      try {
        const [h, p] = dearmor(text).split('.') as [string, string];
        header = strictJsonObject(b64uDecode(h, 'header'), 'header');
        payload = strictJsonObject(b64uDecode(p ?? '', 'payload'), 'payload');
      } catch (e) {
        licenceFailure(e);
      }
      const check = (mode: 'production' | 'test'): string => {
        try {
          verifyLicense(text, { store: trustStore(mode) });
          return 'valid';
        } catch (e) {
          return e instanceof LicenseError ? `${e.code}: ${e.message}` : (e as Error).message;
        }
      };
      const out = { header: { ...header, ic: header.ic ? '(issuer certificate)' : undefined }, payload, signature: { production: check('production'), test: check('test') } };
      if (opts.json) printJson(out);
      else {
        process.stdout.write(JSON.stringify(payload, null, 2) + '\n');
        process.stdout.write(`issuer ${String(header.kid)}\nsignature (production trust): ${out.signature.production}\nsignature (test trust):       ${out.signature.test}\n`);
      }
      if (out.signature.production !== 'valid' && out.signature.test !== 'valid') process.exitCode = 1;
    });

  // ---------------------------------------------------------------- admin side
  lic
    .command('verify <file>')
    .description('dry run: verify a licence for this installation and show what would change against current usage')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const text = readText(file, 'licence');
      await withService(async (svc) => {
        let r;
        try {
          r = svc.dryRun(text);
        } catch (e) {
          licenceFailure(e);
        }
        const usage = (await svc.status()).usage;
        const diff = entitlementDiff(r.before, r.after, usage);
        if (opts.json) printJson({ valid: true, lid: r.licence.payload.lid, seq: r.licence.payload.seq, before: r.before, after: r.after, diff, overLimit: r.after.overLimit });
        else {
          process.stdout.write(`valid: ${r.licence.payload.lid} (seq ${r.licence.payload.seq}) for ${r.licence.payload.sub.name}${r.licence.rootTrust === 'test' ? ' [TEST ROOT]' : ''}\n`);
          process.stdout.write(diff.length ? diff.map((d) => `  ${d}`).join('\n') + '\n' : '  no change in entitlements\n');
          for (const o of r.after.overLimit) process.stdout.write(`  over limit: ${o.guidance}\n`);
        }
      });
    });

  lic
    .command('install <file>')
    .description('verify and install a licence; running servers pick it up within seconds')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const text = readText(file, 'licence');
      await withService(async (svc) => {
        const before = svc.evaluation();
        let r;
        try {
          r = await svc.install(text);
        } catch (e) {
          licenceFailure(e);
        }
        const after = svc.evaluation();
        const diff = entitlementDiff(before, after, (await svc.status()).usage);
        if (opts.json) printJson({ result: r.result, lid: r.licence.payload.lid, seq: r.licence.payload.seq, state: after.state, diff, overLimit: after.overLimit });
        else {
          process.stdout.write(`${r.result === 'installed' ? 'installed' : 'already installed'}: ${r.licence.payload.lid} (seq ${r.licence.payload.seq}), state ${after.state}\n`);
          for (const d of diff) process.stdout.write(`  ${d}\n`);
          for (const o of after.overLimit) process.stdout.write(`  over limit: ${o.guidance}\n`);
        }
      });
    });

  lic
    .command('show')
    .description('licence state, limits and usage of this installation')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withService(async (svc) => {
        const s = await svc.status();
        if (opts.json) return printJson(s);
        process.stdout.write(`installation: ${s.installation.id} (${s.installation.environment})\nmode:         ${s.mode}${s.mode === 'test' ? '  <-- TEST MODE: test-root licences are trusted' : ''}\n`);
        process.stdout.write(summary(svc.evaluation()).join('\n') + '\n');
        process.stdout.write(`usage:        ${s.usage.seats} seats, ${s.usage.tenants} tenants, ${s.usage.keys} keys\n`);
        process.stdout.write(`trusted time: ${s.time.effectiveNow}${s.time.clockSuspect ? ` (CLOCK SUSPECT: ${s.time.suspectReason}; wall clock ${s.time.wallClock})` : ''}\n`);
        for (const b of s.banners) process.stdout.write(`[${b.level}] ${b.message}\n`);
        for (const o of s.overLimit) process.stdout.write(`over limit: ${o.guidance}\n`);
      });
    });

  lic
    .command('request')
    .description('write an activation request (installation id, version, counts) signed by the installation key, for your vendor')
    .option('--out <file>', 'write to a file instead of stdout')
    .action(async (opts: { out?: string }) => {
      await withService(async (svc) => {
        const s = await svc.status();
        const text = activationRequest(svc.installationIdentity, {
          environment: s.installation.environment,
          version: APP_VERSION,
          createdAt: s.time.effectiveNow,
          usage: { ...s.usage },
          ...(s.licence ? { licence: { lid: s.licence.lid, seq: s.licence.seq, customer: s.licence.customer.id } } : {}),
        });
        if (opts.out) {
          writeFileSync(opts.out, text);
          process.stdout.write(`activation request for ${s.installation.id} written to ${opts.out}\n`);
        } else process.stdout.write(text);
      });
    });

  const clock = lic.command('clock').description('trusted licence time');
  clock
    .command('confirm')
    .description('confirm the system clock is right after a large forward jump (licence time then follows it)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withService(async (svc) => {
        const t = await svc.confirmClock();
        const out = { trustedTime: new Date(t.hwm).toISOString(), wallClock: new Date().toISOString(), suspect: (await svc.status()).time.clockSuspect };
        if (opts.json) printJson(out);
        else process.stdout.write(`licence time confirmed: ${out.trustedTime}${out.suspect ? ' (the clock is still behind the trusted time: fix it; rolling back never extends a licence)' : ''}\n`);
      });
    });

  const usage = lic.command('usage').description('usage reports for the vendor (true-up)');
  usage
    .command('export')
    .description('write a hash-chained JSONL usage report for a month, signed by the installation key')
    .requiredOption('--month <YYYY-MM>', 'calendar month (UTC)')
    .option('--out <file>', 'file to write (default: stdout)')
    .action(async (opts: { month: string; out?: string }) => {
      if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(opts.month)) throw new CliError('--month must look like 2026-03');
      await withService(async (svc) => {
        const s = await svc.status();
        const start = Date.parse(`${opts.month}-01T00:00:00Z`);
        const end = Date.UTC(new Date(start).getUTCFullYear(), new Date(start).getUTCMonth() + 1, 1);
        const events = (await svc.events()).filter((e) => {
          const t = Date.parse(e.at);
          return t >= start && t < end;
        });
        const text = usageExport(
          svc.installationIdentity,
          {
            period: { month: opts.month, from: new Date(start).toISOString(), to: new Date(end).toISOString() },
            generatedAt: s.time.effectiveNow,
            version: APP_VERSION,
            ...(s.licence ? { lid: s.licence.lid, seq: s.licence.seq, customer: s.licence.customer.id } : {}),
          },
          [
            { type: 'snapshot', at: s.time.effectiveNow, state: s.state, seats: s.usage.seats, tenants: s.usage.tenants, keys: s.usage.keys, tokensMonth: s.usage.tokensMonth ?? null, hwm: s.time.effectiveNow, clockSuspect: s.time.clockSuspect },
            ...events.map((e) => ({ type: 'event', at: e.at, event: e.type, detail: e.detail })),
          ],
        );
        if (opts.out) {
          writeFileSync(opts.out, text);
          process.stdout.write(`usage for ${opts.month} written to ${opts.out}\n`);
        } else process.stdout.write(text);
      });
    });
  usage
    .command('verify <file>')
    .description('vendor: verify a usage export (hash chain and installation signature)')
    .option('--json', 'print JSON')
    .action((file: string, opts: { json?: boolean }) => {
      try {
        const r = verifyUsageExport(readText(file, 'usage export'));
        if (opts.json) printJson({ valid: true, ...r });
        else process.stdout.write(`valid usage export from ${r.installation}, ${r.records.length} record(s)\n`);
      } catch (e) {
        licenceFailure(e);
      }
    });
}

