import type { Command } from 'commander';
import { priceJson } from '../../server/metering/prices.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity } from './admin.js';
import { meteringFor } from './usage.js';

const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`${name} must be a whole number of micro-units`, 2);
  return Number(v);
};

export function registerPrices(program: Command): void {
  const prices = program.command('prices').description('model prices (integer micro-units per million tokens, versioned)');
  prices
    .command('list')
    .description('current prices (newest version of each model/deployment)')
    .option('--model <model>', 'every version of one model')
    .option('--json', 'print JSON')
    .action((opts: { model?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const m = await meteringFor(c);
        const rows = (await (opts.model ? m.pricing.history(opts.model) : m.pricing.list())).map(priceJson);
        if (opts.json) printJson(rows);
        else printTable(rows, ['model', 'deployment_id', 'version', 'input_micros_per_mtok', 'output_micros_per_mtok', 'request_micros', 'currency', 'source']);
      }),
    );
  prices
    .command('set <model>')
    .description('set a price (adds a new version; e.g. $2.50 per 1M input tokens = --input 2500000)')
    .requiredOption('--input <micros>', 'input (prompt) price per million tokens, micro-units')
    .requiredOption('--output <micros>', 'output (completion) price per million tokens, micro-units')
    .option('--request <micros>', 'fee per request, micro-units')
    .option('--deployment <id>', 'only for this deployment')
    .option('--currency <ISO>', 'currency code (default USD)')
    .option('--json', 'print JSON')
    .action((model: string, opts: { input: string; output: string; request?: string; deployment?: string; currency?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        if (opts.currency && !/^[A-Z]{3}$/.test(opts.currency)) throw new CliError('--currency must be a 3-letter ISO code', 2);
        const m = await meteringFor(c);
        const req = int('--request', opts.request);
        const p = await m.pricing.set(c.ctx, {
          model,
          input_micros_per_mtok: int('--input', opts.input)!,
          output_micros_per_mtok: int('--output', opts.output)!,
          ...(req !== undefined ? { request_micros: req } : {}),
          ...(opts.deployment ? { deployment_id: opts.deployment } : {}),
          ...(opts.currency ? { currency: opts.currency } : {}),
        });
        if (opts.json) printJson(priceJson(p));
        else process.stdout.write(`price of ${model} set (version ${p.version})\n`);
      }),
    );
}
