import type { Command } from 'commander';
import { isRole } from '../../server/access/permissions.js';
import { serializeUser, type UserRow } from '../../server/identity/users.js';
import { CliError, printJson, printTable } from '../output.js';
import { readStdin, withIdentity, type CliIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';

async function resolveUser(c: CliIdentity, ref: string): Promise<UserRow> {
  const u = await c.identity.users.resolve(ref);
  if (!u) throw new CliError(`no user ${ref}`, 3);
  return u;
}

export function registerUsers(program: Command): void {
  const users = program.command('users').description('create, list, deactivate users; grant roles in tenants');
  users
    .command('create')
    .description('create a user (with a local password from stdin, or SSO-only without)')
    .requiredOption('--email <email>', 'e-mail address')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read the password from standard input')
    .option('--platform-admin', 'make the user a platform administrator')
    .option('--tenant <tenant>', 'also add the user to this tenant')
    .option('--role <role>', 'role in --tenant (owner|admin|member|viewer)', 'member')
    .option('--json', 'print JSON')
    .action(async (opts: { email: string; name?: string; passwordStdin?: boolean; platformAdmin?: boolean; tenant?: string; role: string; json?: boolean }) => {
      if (!isRole(opts.role)) throw new CliError('--role must be owner, admin, member or viewer', 2);
      const password = opts.passwordStdin ? await readStdin() : null;
      await withIdentity(async (c) => {
        const u = await c.identity.users.create(c.ctx, { email: opts.email, password, platformAdmin: opts.platformAdmin ?? false, ...(opts.name ? { name: opts.name } : {}) });
        if (opts.tenant) await c.identity.users.grant(await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id), u.id, opts.role as 'member');
        if (opts.json) printJson(serializeUser(u));
        else process.stdout.write(`created user ${u.email} (${u.id})\n`);
      });
    });
  users
    .command('list')
    .description('list users (with --tenant: that tenant’s members and roles)')
    .option('--tenant <tenant>', 'only members of this tenant')
    .option('--json', 'print JSON')
    .action((opts: { tenant?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await (opts.tenant ? c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id) : c.ctx);
        const rows: ReturnType<typeof serializeUser>[] = [];
        let cursor: string | undefined;
        do {
          const p = await (opts.tenant ? c.identity.users.members(ctx, { limit: 200, ...(cursor ? { cursor } : {}) }) : c.identity.users.list(ctx, { limit: 200, ...(cursor ? { cursor } : {}) }));
          rows.push(...p.data);
          cursor = p.next_cursor ?? undefined;
        } while (cursor);
        if (opts.json) printJson(rows);
        else printTable(rows, ['id', 'email', 'name', 'status', 'platform_admin', ...(opts.tenant ? ['role'] : [])]);
      }),
    );
  for (const [cmd, desc] of [
    ['deactivate', 'deactivate: sessions end and keys stop at once; data stays'],
    ['reactivate', 'reactivate a deactivated user'],
  ] as const) {
    users
      .command(`${cmd} <user>`)
      .description(desc)
      .option('--json', 'print JSON')
      .action((ref: string, opts: { json?: boolean }) =>
        withIdentity(async (c) => {
          const id = (await resolveUser(c, ref)).id;
          const u = await (cmd === 'deactivate' ? c.identity.users.deactivate(c.ctx, id) : c.identity.users.reactivate(c.ctx, id));
          if (opts.json) printJson(serializeUser(u));
          else process.stdout.write(`user ${u.email} is ${u.status}\n`);
        }),
      );
  }
  users
    .command('grant <user>')
    .description('give the user a role in a tenant (adds the membership or changes the role)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .requiredOption('--role <role>', 'owner|admin|member|viewer')
    .option('--json', 'print JSON')
    .action((ref: string, opts: { tenant: string; role: string; json?: boolean }) =>
      withIdentity(async (c) => {
        if (!isRole(opts.role)) throw new CliError('--role must be owner, admin, member or viewer', 2);
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id);
        const m = await c.identity.users.grant(ctx, (await resolveUser(c, ref)).id, opts.role);
        if (opts.json) printJson(serializeUser(m.user, { role: m.role }));
        else process.stdout.write(`${m.user.email} is ${m.role} in ${ctx.tenant!.slug}\n`);
      }),
    );
  users
    .command('revoke <user>')
    .description('remove the user from a tenant (their keys there stop)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .action((ref: string, opts: { tenant: string }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id);
        await c.identity.users.removeMember(ctx, (await resolveUser(c, ref)).id);
        process.stdout.write(`removed ${ref} from ${ctx.tenant!.slug}\n`);
      }),
    );
  users
    .command('unlock <email>')
    .description('clear a sign-in lock after repeated failed logins')
    .action((email: string) =>
      withIdentity(async (c) => {
        await c.identity.sessions.unlock(c.ctx, email);
        process.stdout.write(`unlocked ${email.toLowerCase()}\n`);
      }),
    );
  users
    .command('set-password <user>')
    .description('set a new password from stdin (ends every session of the user)')
    .requiredOption('--password-stdin', 'read the password from standard input')
    .action(async (ref: string) => {
      const password = await readStdin();
      await withIdentity(async (c) => {
        await c.identity.users.setPassword(c.ctx, (await resolveUser(c, ref)), password);
        process.stdout.write(`password set for ${ref}; their sessions ended\n`);
      });
    });
}
