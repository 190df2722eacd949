import type { Command } from 'commander';
import { MeteringRepo } from '../../server/db/repos/metering.js';
import { Revision } from '../../server/identity/revision.js';
import { systemClock } from '../../server/clock.js';
import { PlanService } from '../../server/metering/plans.js';
import { Pricing } from '../../server/metering/prices.js';
import { Reports, toCsv } from '../../server/metering/reports.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity, type CliIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';

/**
 * Metering services over the CLI's store (changes reach running servers through the
 * `metering` revision), with the plan and price caches loaded.
 */
export async function meteringFor(c: CliIdentity) {
  const repo = new MeteringRepo(c.store);
  const revision = new Revision(c.store, 'metering');
  const plans = new PlanService(repo, revision, systemClock, () => c.identity.audit);
  const pricing = new Pricing(repo, revision, systemClock, () => c.identity.audit);
  await pricing.ensureBundled();
  await Promise.all([plans.load(), pricing.load()]);
  return { repo, revision, plans, pricing, reports: new Reports(repo, plans, systemClock) };
}

const BY = ['model', 'user', 'key', 'provider', 'boundary', 'day'] as const;

export function registerUsage(program: Command): void {
  const usage = program.command('usage').description('usage and cost reports from the rollups');
  usage
    .command('report')
    .description("a tenant's usage for a calendar month (tenant time zone)")
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--month <YYYY-MM>', 'month (default: the current one)')
    .option('--by <dimension>', `group by ${BY.join('|')}`)
    .option('--user <id>', 'only this user')
    .option('--key <id>', 'only this API key')
    .option('--json', 'print JSON')
    .option('--csv', 'print CSV')
    .action((opts: { tenant: string; month?: string; by?: string; user?: string; key?: string; json?: boolean; csv?: boolean }) =>
      withIdentity(async (c) => {
        if (opts.by && !(BY as readonly string[]).includes(opts.by)) throw new CliError(`--by must be one of ${BY.join(', ')}`, 2);
        if (opts.month && !/^\d{4}-(0[1-9]|1[0-2])$/.test(opts.month)) throw new CliError('--month must be YYYY-MM', 2);
        const t = await resolveTenant(c, opts.tenant);
        const rep = await (await meteringFor(c)).reports.report({
          tenantId: t.id,
          ...(opts.month ? { month: opts.month } : {}),
          ...(opts.by ? { by: opts.by as (typeof BY)[number] } : {}),
          ...(opts.user ? { userId: opts.user } : {}),
          ...(opts.key ? { keyId: opts.key } : {}),
        });
        if (opts.json) printJson(rep);
        else if (opts.csv) process.stdout.write(toCsv(rep.rows, opts.by ?? 'total'));
        else {
          process.stdout.write(`tenant ${rep.tenant}, ${rep.month} (${rep.timezone})\n`);
          printTable(
            [...rep.rows.map((r) => ({ ...r, group: r.group ?? '(none)' })), { group: 'TOTAL', ...rep.total }],
            ['group', 'requests', 'errors', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cost_micros'],
          );
        }
      }),
    );
}
