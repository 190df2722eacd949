import type { Command } from 'commander';
import { serializeDomain } from '../../server/identity/domains.js';
import { serializeTenant, type TenantRow } from '../../server/identity/tenants.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity, type CliIdentity } from './admin.js';

export async function resolveTenant(c: CliIdentity, ref: string): Promise<TenantRow> {
  const t = await c.identity.tenants.resolve(ref);
  if (!t) throw new CliError(`no tenant ${ref}`, 3);
  return t;
}

export function registerTenants(program: Command): void {
  const tenants = program.command('tenants').description('create, list, rename, suspend and resume tenants');
  tenants
    .command('create <slug>')
    .description('create a tenant')
    .option('--name <name>', 'display name')
    .option('--plan <plan>', 'plan reference')
    .option('--classification <level>', 'default data classification (public|internal|confidential|restricted)')
    .option('--json', 'print JSON')
    .action((slug: string, opts: { name?: string; plan?: string; classification?: string; json?: boolean }) =>
      withIdentity(async ({ identity, ctx }) => {
        if (opts.classification && !['public', 'internal', 'confidential', 'restricted'].includes(opts.classification)) {
          throw new CliError('--classification must be public, internal, confidential or restricted', 2);
        }
        const t = await identity.tenants.create(ctx, {
          slug,
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.plan ? { plan: opts.plan } : {}),
          ...(opts.classification ? { defaultClassification: opts.classification as 'internal' } : {}),
        });
        if (opts.json) printJson(serializeTenant(t));
        else process.stdout.write(`created tenant ${t.slug} (${t.id})\n`);
      }),
    );
  tenants
    .command('list')
    .description('list tenants')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withIdentity(async ({ identity, ctx }) => {
        const rows: ReturnType<typeof serializeTenant>[] = [];
        let cursor: string | undefined;
        do {
          const p = await identity.tenants.list(ctx, { limit: 200, ...(cursor ? { cursor } : {}) });
          rows.push(...p.data);
          cursor = p.next_cursor ?? undefined;
        } while (cursor);
        if (opts.json) printJson(rows);
        else printTable(rows, ['id', 'slug', 'name', 'status', 'plan', 'default_classification']);
      }),
    );
  tenants
    .command('rename <tenant> <name>')
    .description('change the display name')
    .option('--json', 'print JSON')
    .action((ref: string, name: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const t = await c.identity.tenants.update(c.ctx, (await resolveTenant(c, ref)).id, { name });
        if (opts.json) printJson(serializeTenant(t));
        else process.stdout.write(`renamed ${t.slug} to ${t.name}\n`);
      }),
    );
  for (const [cmd, status] of [['suspend', 'suspended'], ['resume', 'active']] as const) {
    tenants
      .command(`${cmd} <tenant>`)
      .description(cmd === 'suspend' ? 'suspend: its keys and sessions are refused (tenant_suspended); data stays' : 'resume a suspended tenant')
      .option('--json', 'print JSON')
      .action((ref: string, opts: { json?: boolean }) =>
        withIdentity(async (c) => {
          const t = await c.identity.tenants.setStatus(c.ctx, (await resolveTenant(c, ref)).id, status);
          if (opts.json) printJson(serializeTenant(t));
          else process.stdout.write(`tenant ${t.slug} is ${t.status}\n`);
        }),
      );
  }

  // Verified e-mail domains (issue 16): only a platform administrator (this CLI) adds and
  // verifies them; a verified domain lets the tenant's IdP link and JIT-create accounts of it.
  const domains = tenants.command('domains').description("e-mail domains verified for a tenant (what its IdP may link and create)");
  domains
    .command('list <tenant>')
    .description('list the domains added to a tenant and whether they are verified')
    .option('--json', 'print JSON')
    .action((ref: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, ref)).id);
        const rows = (await c.identity.domains.list(ctx)).map(serializeDomain);
        if (opts.json) printJson(rows);
        else printTable(rows.map((r) => ({ ...r, challenge: `${r.challenge.name} TXT ${r.challenge.value}` })), ['domain', 'verified', 'verified_at', 'challenge']);
      }),
    );
  domains
    .command('add <tenant> <domain>')
    .description('add a domain (not yet verified); prints the DNS TXT challenge the tenant can publish')
    .option('--json', 'print JSON')
    .action((ref: string, domain: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, ref)).id);
        const row = serializeDomain((await c.identity.domains.add(ctx, domain)));
        if (opts.json) printJson(row);
        else process.stdout.write(`added ${row.domain} to ${ctx.tenant!.slug} (not verified)\nchallenge: ${row.challenge.name} TXT "${row.challenge.value}"\nverify once you have checked the tenant controls it: enclave tenants domains verify ${ctx.tenant!.slug} ${row.domain}\n`);
      }),
    );
  domains
    .command('verify <tenant> <domain>')
    .description('record that you (a platform administrator) verified the tenant controls this domain')
    .option('--json', 'print JSON')
    .action((ref: string, domain: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, ref)).id);
        const row = serializeDomain((await c.identity.domains.verify(ctx, domain)));
        if (opts.json) printJson(row);
        else process.stdout.write(`${row.domain} is verified for ${ctx.tenant!.slug}\n`);
      }),
    );
  domains
    .command('remove <tenant> <domain>')
    .description('remove a domain (its IdP no longer links or creates accounts of it)')
    .action((ref: string, domain: string) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, ref)).id);
        await c.identity.domains.remove(ctx, domain);
        process.stdout.write(`removed ${domain} from ${ctx.tenant!.slug}\n`);
      }),
    );
}
