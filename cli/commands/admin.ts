import type { Store } from '../../server/db/store.js';
import { createTenantStore, type TenantStore } from '../../server/db/tenant-store.js';
import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import pino from 'pino';
import type { Entitlements } from '../../server/access/entitlements.js';
import { resolveMasterKey } from '../../server/config/master-key.js';
import { RuntimeSettings } from '../../server/config/runtime-settings.js';
import { startLicense } from '../../license/boot.js';
import type { LicenseService } from '../../license/service.js';
import { systemClock } from '../../server/clock.js';
import type { RequestContext } from '../../server/context.js';
import { openStore, type OpenedStore } from '../../server/db/open-store.js';
import { AppError } from '../../server/errors.js';
import { createIdentity, systemContext, type Identity } from '../../server/identity/index.js';
import { serializeUser } from '../../server/identity/users.js';
import { APP_VERSION } from '../../server/paths.js';
import { cliConfig } from '../config.js';
import { CliError, printJson } from '../output.js';

/**
 * The identity services over the database, for CLI commands. The CLI changes the database
 * directly; running servers notice through the identity revision poll (≤ 1 s). Actions are
 * audited as actor `system:cli` with the OS user in the details.
 */
export interface CliIdentity {
  readonly identity: Identity;
  readonly ctx: RequestContext;
  /** The database (server/db/store.ts): SQLite in the data dir or PostgreSQL (ENCLAVE_DATABASE_URL). */
  readonly store: Store;
  readonly tenantStore: TenantStore;
  /** The installed licence, as the server sees it: the CLI's growth checks obey the same limits. */
  readonly entitlements: Entitlements;
  close(): Promise<void>;
}

export async function openIdentity(): Promise<CliIdentity> {
  const config = cliConfig();
  mkdirSync(config.dataDir, { recursive: true });
  let opened: OpenedStore;
  try {
    // The same database and schema version as the server (migrated here too, under PostgreSQL's lock).
    opened = await openStore(config, { appVersion: APP_VERSION, now: () => Date.now(), applicationName: 'enclave cli' });
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
  const log = pino({ level: 'silent' });
  const { store } = opened;
  const tenantStore = createTenantStore(store);
  let license: LicenseService;
  try {
    // Same master key resolution as the server (embedded mode generates one on first use).
    const settings = new RuntimeSettings(store, resolveMasterKey(config, log).box, systemClock);
    license = await startLicense({ config, store, settings, clock: systemClock, log });
  } catch (e) {
    await opened.close();
    throw e;
  }
  const identity = createIdentity({ store, tenantStore, clock: systemClock, log, entitlements: () => license });
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    /* no passwd entry in some containers */
  }
  const ctx = systemContext(log, systemClock, 'cli', `cli_${process.pid}`);
  ctx.client = { userAgent: `enclave-cli/${APP_VERSION} (os user ${user})` };
  return {
    identity,
    ctx,
    store,
    tenantStore,
    entitlements: license,
    close: async () => {
      await license.stop();
      await opened.close();
    },
  };
}

/** Runs fn with the CLI identity; AppErrors become one-line CLI errors. */
export async function withIdentity<T>(fn: (c: CliIdentity) => Promise<T> | T): Promise<T> {
  const c = await openIdentity();
  try {
    return await fn(c);
  } catch (e) {
    if (e instanceof AppError) throw new CliError(`${e.code}: ${e.message}`, e.status === 404 ? 3 : 1);
    throw e;
  } finally {
    await c.close();
  }
}

export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new CliError('--password-stdin reads the password from standard input; pipe it in');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('platform administrators');
  admin
    .command('create')
    .description('create a platform administrator (break-glass local login, also when tenants enforce SSO)')
    .requiredOption('--email <email>', 'e-mail address')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--json', 'print JSON')
    .action(async (opts: { email: string; name?: string; passwordStdin?: boolean; json?: boolean }) => {
      if (!opts.passwordStdin) throw new CliError('pass --password-stdin and pipe the password in (never on the command line)', 2);
      const password = await readStdin();
      await withIdentity(async ({ identity, ctx }) => {
        const existing = await identity.users.byEmail(opts.email);
        if (existing) throw new CliError(`a user with e-mail ${existing.email} already exists`);
        const u = await identity.users.create(ctx, { email: opts.email, password, platformAdmin: true, ...(opts.name ? { name: opts.name } : {}) });
        if (opts.json) printJson(serializeUser(u));
        else process.stdout.write(`created platform administrator ${u.email} (${u.id})\n`);
      });
    });
}
