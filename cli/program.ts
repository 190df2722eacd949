import { Command, Help } from 'commander';
import { APP_VERSION } from '../server/paths.js';

/**
 * One command group. Its name and description live here so that `enclave --help` needs no
 * command module; the module (and the server code it pulls in) loads only when argv names
 * the group. test/unit/cli-program.test.ts checks this table against the modules.
 */
export interface CommandGroup {
  readonly name: string;
  readonly description: string;
  /** The group is itself a command with options (shown as `name [options]` in the list). */
  readonly options?: true;
  readonly load: () => Promise<(program: Command) => void>;
}

/** In the order `enclave --help` lists them. */
export const GROUPS: readonly CommandGroup[] = [
  {
    name: 'migrate',
    options: true,
    description: 'apply pending database migrations (the server also does this at start)',
    load: async () => (await import('./commands/migrate.js')).registerMigrate,
  },
  {
    name: 'db',
    description: 'PostgreSQL: copy an SQLite install into it, status, migrations (docs/postgres.md)',
    load: async () => (await import('./commands/db.js')).registerDb,
  },
  {
    name: 'config',
    description: 'show the effective configuration, rotate the master key',
    load: async () => (await import('./commands/config.js')).registerConfig,
  },
  {
    name: 'doctor',
    options: true,
    description:
      'check this installation: node, data dir, disk, clock, database, migrations, Redis, queues, master key, backup age; TLS and providers on request (exit 0 ok, 1 warnings, 2 failures)',
    load: async () => (await import('./commands/doctor.js')).registerDoctor,
  },
  {
    name: 'backup',
    description: 'verified backups: create, verify, restore; secrets export; recipient keys (schedule: jobs issue)',
    load: async () => (await import('./commands/backup.js')).registerBackup,
  },
  {
    name: 'jobs',
    description: 'background jobs: queue counts and failed jobs (retry, discard)',
    load: async () => (await import('./commands/jobs.js')).registerJobs,
  },
  {
    name: 'support-bundle',
    options: true,
    description:
      'diagnostics for support: versions, doctor, redacted config, logs, metrics, database statistics, licence claims; never the database, prompts or secrets',
    load: async () => (await import('./commands/support-bundle.js')).registerSupportBundle,
  },
  {
    name: 'upgrade',
    options: true,
    description: 'upgrade this installation: preflight, backup, load/pull images, migrate, start, verify (refuses to skip a required version stop)',
    load: async () => (await import('./commands/upgrade.js')).registerUpgrade,
  },
  {
    name: 'bundle',
    description: 'air-gapped install bundles',
    load: async () => (await import('./commands/bundle.js')).registerBundle,
  },
  {
    name: 'admin',
    description: 'platform administrators',
    load: async () => (await import('./commands/admin.js')).registerAdmin,
  },
  {
    name: 'tenants',
    description: 'create, list, rename, suspend and resume tenants',
    load: async () => (await import('./commands/tenants.js')).registerTenants,
  },
  {
    name: 'users',
    description: 'create, list, deactivate users; grant roles in tenants',
    load: async () => (await import('./commands/users.js')).registerUsers,
  },
  {
    name: 'keys',
    description: 'API keys: create (secret shown once), list, rotate, revoke',
    load: async () => (await import('./commands/keys.js')).registerKeys,
  },
  {
    name: 'providers',
    description: 'AI provider deployments (Ollama, OpenAI-compatible, Anthropic, Azure OpenAI, Bedrock, Vertex AI, Gemini) and model aliases',
    load: async () => (await import('./commands/providers.js')).registerProviders,
  },
  {
    name: 'audit',
    description: 'verify and export the hash-chained audit log',
    load: async () => (await import('./commands/audit.js')).registerAudit,
  },
  {
    name: 'siem',
    description: 'stream the audit log to SIEMs (Splunk, Elastic, Sentinel): syslog over TLS or signed HTTPS webhooks',
    load: async () => (await import('./commands/siem.js')).registerSiem,
  },
  {
    name: 'license',
    description: 'licence: install, show, verify, request; vendor: keygen, certify, issue, inspect',
    load: async () => (await import('./commands/license.js')).registerLicense,
  },
  {
    name: 'sso',
    description: 'OpenID Connect identity providers: per-tenant IdPs (the platform IdP comes from ENCLAVE_OIDC_*)',
    load: async () => (await import('./commands/sso.js')).registerSso,
  },
  {
    name: 'scim',
    description: 'SCIM 2.0 provisioning: per-tenant bearer tokens for Entra ID, Okta and other directories',
    load: async () => (await import('./commands/scim.js')).registerScim,
  },
  {
    name: 'usage',
    description: 'usage and cost reports from the rollups',
    load: async () => (await import('./commands/usage.js')).registerUsage,
  },
  {
    name: 'prices',
    description: 'model prices (integer micro-units per million tokens, versioned)',
    load: async () => (await import('./commands/prices.js')).registerPrices,
  },
  {
    name: 'plans',
    description: 'plans: capabilities and limits for tenants',
    load: async () => (await import('./commands/plans.js')).registerPlans,
  },
];

/**
 * The group commander will dispatch to: the first operand (the top-level program has no
 * options that take a value), or the one after `help`. Undefined for `enclave --help` and
 * the like.
 */
export function groupNamed(args: readonly string[]): string | undefined {
  const operands = args.filter((a) => !a.startsWith('-'));
  return operands[0] === 'help' ? operands[1] : operands[0];
}

/**
 * The program with every group: the real one for `only` (or for all groups when `only` is
 * 'all'), a stand-in with just its name and description for the others, which is all that
 * the top-level help and "did you mean" need.
 */
export async function buildProgram(only: string | 'all' | undefined): Promise<Command> {
  const standIns = new WeakMap<Command, string>();
  const program = new Command('enclave')
    .description('Enclave appliance administration')
    .version(APP_VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureHelp({
      subcommandTerm(this: Help, cmd: Command): string {
        return standIns.get(cmd) ?? Help.prototype.subcommandTerm.call(this, cmd);
      },
    });
  for (const g of GROUPS) {
    if (only === 'all' || g.name === only) (await g.load())(program);
    else standIns.set(program.command(g.name).description(g.description), g.options ? `${g.name} [options]` : g.name);
  }
  return program;
}
