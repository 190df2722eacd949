import type { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { CliError, printJson } from '../output.js';
import { withIdentity } from './admin.js';
import { parseDuration } from './keys.js';
import { resolveTenant } from './tenants.js';

/** An ISO date/time or a duration back from now (`7d`). */
function parseSince(v: string, what: string): number {
  if (/^\d+\s*[smhd]$/.test(v.trim())) return Date.now() - parseDuration(v, what);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`${what} must be an ISO date/time or a duration such as 7d`, 2);
  return t;
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('verify and export the hash-chained audit log');
  audit
    .command('verify')
    .description('walk the whole chain; names the first broken entry (exit 1)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withIdentity(async ({ identity }) => {
        const r = await identity.audit.verify();
        if (opts.json) printJson(r);
        if (!r.ok) {
          if (!opts.json) process.stderr.write(`enclave: audit chain broken at entry ${r.broken.seq}${r.broken.id ? ` (${r.broken.id})` : ''}: ${r.broken.problem}\n`);
          process.exitCode = 1;
          return;
        }
        if (!opts.json) process.stdout.write(`audit chain intact: ${r.checked} entries${r.head ? `, head ${r.head.hash.slice(0, 16)}…` : ''}\n`);
      }),
    );
  audit
    .command('export')
    .description('write entries as JSON lines (oldest first)')
    .option('--tenant <tenant>', 'only this tenant’s entries')
    .option('--since <when>', 'ISO date/time or duration back from now (7d)')
    .option('--until <when>', 'ISO date/time or duration back from now')
    .option('--out <file>', 'write to a file instead of standard output')
    .action((opts: { tenant?: string; since?: string; until?: string; out?: string }) =>
      withIdentity(async (c) => {
        // The admin API's serializer; loaded here so that `audit verify` does not load express.
        const { serializeAudit } = await import('../../server/admin/routes.js');
        const tenantId = opts.tenant ? (await resolveTenant(c, opts.tenant)).id : undefined;
        const ctx = await (tenantId ? c.identity.tenants.scopeTo(c.ctx, tenantId) : c.ctx);
        await c.identity.access.require(ctx, tenantId ? 'audit:export' : 'platform:audit:read');
        const out = opts.out ? createWriteStream(opts.out) : process.stdout;
        let n = 0;
        for await (const e of c.identity.audit.iterate({
          ...(tenantId ? { tenantId } : {}),
          ...(opts.since ? { since: parseSince(opts.since, '--since') } : {}),
          ...(opts.until ? { until: parseSince(opts.until, '--until') } : {}),
        })) {
          if (!out.write(JSON.stringify(serializeAudit(e)) + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
          n++;
        }
        await c.identity.audit.record(ctx, { action: 'audit.export', details: { entries: n, since: opts.since ?? null, until: opts.until ?? null } });
        if (opts.out) {
          await new Promise<void>((r) => (out as ReturnType<typeof createWriteStream>).end(() => r()));
          process.stderr.write(`exported ${n} entries to ${opts.out}\n`);
        }
      }),
    );
}
