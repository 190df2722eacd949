import { Command, CommanderError } from 'commander';
import { ConfigError } from '../server/config/load.js';
import { SecretError } from '../server/config/secret-box.js';
import { APP_VERSION } from '../server/paths.js';
import { registerAdmin } from './commands/admin.js';
import { registerAudit } from './commands/audit.js';
import { registerBackup } from './commands/backup.js';
import { registerJobs } from './commands/jobs.js';
import { registerSupportBundle } from './commands/support-bundle.js';
import { registerConfig } from './commands/config.js';
import { registerDoctor } from './commands/doctor.js';
import { registerLicense } from './commands/license.js';
import { registerKeys } from './commands/keys.js';
import { registerMigrate } from './commands/migrate.js';
import { registerBundle } from './commands/bundle.js';
import { registerUpgrade } from './commands/upgrade.js';
import { registerTenants } from './commands/tenants.js';
import { registerUsers } from './commands/users.js';
import { registerProviders } from './commands/providers.js';
import { registerSso } from './commands/sso.js';
import { registerUsage } from './commands/usage.js';
import { registerPrices } from './commands/prices.js';
import { registerPlans } from './commands/plans.js';
import { CliError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('enclave')
    .description('Enclave appliance administration')
    .version(APP_VERSION)
    .showHelpAfterError(false)
    .exitOverride();
  registerMigrate(program);
  registerConfig(program);
  registerDoctor(program);
  registerBackup(program);
  registerJobs(program);
  registerSupportBundle(program);
  registerUpgrade(program);
  registerBundle(program);
  registerAdmin(program);
  registerTenants(program);
  registerUsers(program);
  registerKeys(program);
  registerProviders(program);
  registerAudit(program);
  registerLicense(program);
  registerSso(program);
  registerUsage(program);
  registerPrices(program);
  registerPlans(program);
  return program;
}

/** Runs the CLI; every failure ends as one line on stderr and a non-zero exit code. */
export async function run(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      process.exitCode = e.exitCode;
      return;
    }
    const code = e instanceof CliError ? e.exitCode : e instanceof ConfigError ? 2 : 1;
    const message = e instanceof CliError || e instanceof ConfigError || e instanceof SecretError ? e.message : `failed: ${(e as Error).message}`;
    process.stderr.write(`enclave: ${message}\n`);
    process.exitCode = code;
  }
}

await run(process.argv);
