import type { Command } from 'commander';
import { createScim } from '../../server/scim/index.js';
import { serializeToken } from '../../server/scim/tokens.js';
import { systemClock } from '../../server/clock.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity, type CliIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';

/** `enclave scim token create|rotate|revoke|list --tenant T`: a tenant's SCIM bearer token (shown once). */
async function tokensOf(c: CliIdentity, tenantRef: string) {
  const t = await resolveTenant(c, tenantRef);
  const scim = createScim({ store: c.store, tenantStore: c.tenantStore, identity: c.identity, clock: systemClock, entitlements: () => c.entitlements });
  return { tenant: t, tokens: scim.tokens, service: scim.service, ctx: await c.identity.tenants.scopeTo(c.ctx, t.id, 'scim.token') };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function printIssued(kind: 'created' | 'rotated', slug: string, r: { token: Parameters<typeof serializeToken>[0]; secret: string }, json: boolean | undefined): void {
  if (json) {
    printJson({ ...serializeToken(r.token), token: r.secret });
    return;
  }
  process.stdout.write(
    `${kind} the SCIM token of ${slug} (${r.token.id}); it is shown only this once:\n${r.secret}\n` +
      `SCIM base URL: <ENCLAVE_PUBLIC_URL>/scim/v2 (Entra ID: Tenant URL; Okta: SCIM connector base URL)\n`,
  );
}

export function registerScim(program: Command): void {
  const scim = program.command('scim').description('SCIM 2.0 provisioning: per-tenant bearer tokens for Entra ID, Okta and other directories');
  const token = scim.command('token').description("a tenant's SCIM bearer token (hashed at rest, shown once, audited)");
  token
    .command('create')
    .description('create the tenant’s SCIM token (refused when it has one: rotate it)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON (the token in `token`)')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const { tenant, tokens, ctx } = await tokensOf(c, opts.tenant);
        printIssued('created', tenant.slug, await tokens.create(ctx), opts.json);
      }),
    );
  token
    .command('rotate')
    .description('issue a new SCIM token; the old one stops at once')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON (the token in `token`)')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const { tenant, tokens, ctx } = await tokensOf(c, opts.tenant);
        printIssued('rotated', tenant.slug, await tokens.rotate(ctx), opts.json);
      }),
    );
  token
    .command('revoke')
    .description('revoke the tenant’s SCIM token (provisioning stops until a new one is created)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const { tenant, tokens, ctx } = await tokensOf(c, opts.tenant);
        const revoked = await tokens.revoke(ctx);
        if (opts.json) printJson({ revoked });
        else process.stdout.write(`revoked the SCIM token of ${tenant.slug} (${revoked.join(', ')})\n`);
      }),
    );
  token
    .command('list')
    .description('the tenant’s live SCIM token (prefix, created, last used; never the secret)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const { tokens, ctx } = await tokensOf(c, opts.tenant);
        const rows = (await tokens.list(ctx)).map(serializeToken);
        if (opts.json) printJson(rows);
        else printTable(rows, ['id', 'prefix', 'created_at', 'created_by', 'last_used_at']);
      }),
    );
  const roles = scim.command('group-roles').description('directory groups → tenant roles (admin, member, viewer) for provisioned users');
  roles
    .command('set')
    .description('replace the rules; a user gets the highest role of their groups, else member (owners are never changed)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--map <group=role>', 'a directory group (displayName) and the role it gives (repeatable)', collect)
    .option('--clear', 'remove every rule (SCIM then never changes roles)')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; map?: string[]; clear?: boolean; json?: boolean }) =>
      withIdentity(async (c) => {
        if (!opts.clear && !opts.map?.length) throw new CliError('give --map GROUP=ROLE (repeatable) or --clear', 2);
        const rules = (opts.map ?? []).map((m) => {
          const i = m.lastIndexOf('=');
          if (i < 1) throw new CliError(`--map takes GROUP=ROLE (got ${m})`, 2);
          return { group: m.slice(0, i), role: m.slice(i + 1) };
        });
        const { tenant, service, ctx } = await tokensOf(c, opts.tenant);
        const saved = await service.setGroupRoles(ctx, opts.clear ? [] : rules);
        if (opts.json) printJson(saved);
        else process.stdout.write(saved.length ? `${tenant.slug}: ${saved.map((r) => `${r.group} → ${r.role}`).join(', ')}\n` : `${tenant.slug}: no group rules (SCIM does not change roles)\n`);
      }),
    );
  roles
    .command('show')
    .description("the tenant's group → role rules")
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const { service, ctx } = await tokensOf(c, opts.tenant);
        const rules = await service.groupRoles(ctx);
        if (opts.json) printJson(rules);
        else printTable(rules, ['group', 'role']);
      }),
    );
}
