import type { Command } from 'commander';
import { CAPABILITIES, type Limits } from '../../server/metering/limits.js';
import { planInputSchema, planJson } from '../../server/metering/plans.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';
import { meteringFor } from './usage.js';

const LIMIT_FLAGS: [string, keyof Limits][] = [
  ['monthlyTokens', 'monthly_tokens'],
  ['monthlyCostMicros', 'monthly_cost_micros'],
  ['rpm', 'requests_per_minute'],
  ['tpm', 'tokens_per_minute'],
  ['concurrency', 'concurrent_requests'],
  ['maxKeys', 'max_keys'],
  ['maxActiveJobs', 'max_active_jobs'],
];

export function registerPlans(program: Command): void {
  const plans = program.command('plans').description('plans: capabilities and limits for tenants');
  plans
    .command('list')
    .description('list plans')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const rows = (await (await meteringFor(c)).plans.list()).map(planJson);
        if (opts.json) printJson(rows);
        else printTable(rows.map((p) => ({ ...p, capabilities: p.capabilities.join(','), limits: JSON.stringify(p.limits), allowed_models: p.allowed_models?.join(',') ?? '(all)' })), ['name', 'capabilities', 'limits', 'allowed_models', 'description']);
      }),
    );
  plans
    .command('set <name>')
    .description('create or update a plan (limits not given stay as they were; "none" removes one)')
    .option('--description <text>', 'description')
    .option('--capabilities <list>', `comma-separated: ${CAPABILITIES.join(', ')}`)
    .option('--models <list>', 'comma-separated allowed model names ("all" = every model)')
    .option('--monthly-tokens <n>', 'monthly token budget')
    .option('--monthly-cost-micros <n>', 'monthly cost budget in micro-units')
    .option('--rpm <n>', 'requests per minute')
    .option('--tpm <n>', 'tokens per minute')
    .option('--concurrency <n>', 'concurrent requests')
    .option('--max-keys <n>', 'API keys per tenant')
    .option('--max-active-jobs <n>', 'active jobs per lane')
    .option('--json', 'print JSON')
    .action((name: string, opts: Record<string, string | boolean | undefined>) =>
      withIdentity(async (c) => {
        const m = await meteringFor(c);
        const cur = m.plans.get(name);
        const limits: Record<string, number | null> = { ...(cur?.limits ?? {}) } as Record<string, number | null>;
        for (const [flag, key] of LIMIT_FLAGS) {
          const v = opts[flag];
          if (typeof v !== 'string') continue;
          if (v === 'none') delete limits[key];
          else if (/^\d+$/.test(v)) limits[key] = Number(v);
          else throw new CliError(`--${flag.replace(/[A-Z]/g, (x) => `-${x.toLowerCase()}`)} must be a whole number or "none"`, 2);
        }
        const input = planInputSchema.safeParse({
          name,
          ...(typeof opts.description === 'string' ? { description: opts.description } : {}),
          ...(typeof opts.capabilities === 'string' ? { capabilities: opts.capabilities.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
          ...(typeof opts.models === 'string' ? { allowed_models: opts.models === 'all' ? null : opts.models.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
          limits,
        });
        if (!input.success) throw new CliError(`${input.error.issues[0]?.path.join('.')}: ${input.error.issues[0]?.message}`, 2);
        const p = await m.plans.upsert(c.ctx, input.data);
        if (opts.json) printJson(planJson(p));
        else process.stdout.write(`plan ${name} ${cur ? 'updated' : 'created'}\n`);
      }),
    );
  plans
    .command('delete <name>')
    .description('delete a plan no tenant uses')
    .action((name: string) =>
      withIdentity(async (c) => {
        await (await meteringFor(c)).plans.remove(c.ctx, name);
        process.stdout.write(`plan ${name} deleted\n`);
      }),
    );
  plans
    .command('assign <tenant> <plan>')
    .description('assign a plan to a tenant ("default" for the default plan); audited, effective within 1 s')
    .action((ref: string, plan: string) =>
      withIdentity(async (c) => {
        const t = await resolveTenant(c, ref);
        await (await meteringFor(c)).plans.assign(c.ctx, t.id, plan === 'default' ? null : plan);
        process.stdout.write(`tenant ${t.slug} is on plan ${plan}\n`);
      }),
    );
}
