import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { systemClock } from '../../server/clock.js';
import { resolveMasterKey } from '../../server/config/master-key.js';
import { RuntimeSettings } from '../../server/config/runtime-settings.js';
import { Metrics } from '../../server/metrics/registry.js';
import type { Role } from '../../server/access/permissions.js';
import { idpInput, PLATFORM_REF, serializeIdp, SsoService } from '../../server/sso/service.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';
import { readStdin, withIdentity, type CliIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';
import pino from 'pino';

/** `enclave sso add|list|remove|test`: tenant IdPs (platform IdP: bootstrap settings) without a running server. */
function ssoOf(c: CliIdentity): SsoService {
  const config = cliConfig();
  const log = pino({ level: 'silent' });
  const { box } = resolveMasterKey(config, log);
  return new SsoService({
    config,
    log,
    clock: systemClock,
    store: c.store,
    tenantStore: c.tenantStore,
    secrets: box,
    settings: new RuntimeSettings(c.store, box, systemClock),
    redis: undefined,
    metrics: new Metrics(),
    identity: c.identity,
    entitlements: () => c.entitlements,
  });
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function rules(values: string[], claim: 'roles' | 'groups') {
  return values.map((v) => {
    const i = v.lastIndexOf('=');
    if (i < 1) throw new CliError(`--map-${claim === 'roles' ? 'role' : 'group'} takes VALUE=ROLE (got ${v})`, 2);
    return { claim, value: v.slice(0, i), role: v.slice(i + 1) as Role };
  });
}

export function registerSso(program: Command): void {
  const sso = program.command('sso').description('OpenID Connect identity providers: per-tenant IdPs (the platform IdP comes from ENCLAVE_OIDC_*)');
  sso
    .command('add')
    .description('add a tenant IdP (client secret from --client-secret-file or standard input)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .requiredOption('--name <name>', 'button label')
    .requiredOption('--issuer <url>', 'exact issuer URL (https)')
    .requiredOption('--client-id <id>', 'client id registered at the IdP')
    .option('--client-secret-file <file>', 'file holding the client secret (else read from stdin)')
    .option('--scopes <scopes>', 'scopes (default "openid email profile")')
    .option('--claim-source <source>', 'id_token | access_token | userinfo (default id_token)')
    .option('--roles-path <path>', 'dotted claim path of roles, e.g. realm_access.roles')
    .option('--groups-path <path>', 'dotted claim path of groups, e.g. groups')
    .option('--map-role <value=role>', 'roles claim value → tenant role (repeatable)', collect)
    .option('--map-group <value=role>', 'groups claim value → tenant role (repeatable)', collect)
    .option('--default-role <role>', 'role for users no rule matches (default: refuse them)')
    .option('--domain <domain>', 'allowed e-mail domain (repeatable)', collect)
    .option('--jit', 'create users on first login')
    .option('--enforce-sso', 'members of the tenant must sign in through an IdP (platform admins keep local login)')
    .option('--json', 'print JSON')
    .action((opts: Record<string, any>) =>
      withIdentity(async (c) => {
        const t = await resolveTenant(c, opts.tenant as string);
        const secret = opts.clientSecretFile ? readFileSync(opts.clientSecretFile as string, 'utf8').trim() : (await readStdin()).trim();
        const input = idpInput.safeParse({
          name: opts.name,
          issuer: opts.issuer,
          client_id: opts.clientId,
          client_secret: secret,
          ...(opts.scopes ? { scopes: opts.scopes } : {}),
          ...(opts.claimSource ? { claim_source: opts.claimSource } : {}),
          ...(opts.rolesPath ? { roles_path: opts.rolesPath } : {}),
          ...(opts.groupsPath ? { groups_path: opts.groupsPath } : {}),
          mapping: [...rules(opts.mapRole ?? [], 'roles'), ...rules(opts.mapGroup ?? [], 'groups')],
          ...(opts.defaultRole ? { default_role: opts.defaultRole } : {}),
          allowed_domains: opts.domain ?? [],
          jit: Boolean(opts.jit),
          enforce_sso: Boolean(opts.enforceSso),
        });
        if (!input.success) {
          const issue = input.error.issues[0]!;
          throw new CliError(`${issue.path.join('.')}: ${issue.message}`, 2);
        }
        const row = await ssoOf(c).createIdp((await c.identity.tenants.scopeTo(c.ctx, t.id, 'sso.idp.create')), input.data);
        if (opts.json) printJson(serializeIdp(row));
        else process.stdout.write(`added IdP ${row.name} (${row.id}) to ${t.slug}; redirect URI: <ENCLAVE_PUBLIC_URL>/auth/oidc/callback\n`);
      }),
    );
  sso
    .command('list')
    .description('list the platform IdP and tenant IdPs')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--json', 'print JSON')
    .action((opts: { tenant?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const s = ssoOf(c);
        const tenants = opts.tenant ? [await resolveTenant(c, opts.tenant)] : (await c.identity.tenants.list(c.ctx, { limit: 200 })).data;
        const rows: Record<string, unknown>[] = [];
        if (!opts.tenant && s.platformConfigured()) {
          const p = await s.platformView(c.ctx);
          rows.push({ id: PLATFORM_REF, tenant: '(platform)', name: 'Single sign-on', issuer: p.issuer, client_id: p.client_id, enabled: true, jit: p.settings.jit, enforce_sso: false });
        }
        for (const t of tenants) {
          for (const r of (await s.listIdps((await c.identity.tenants.scopeTo(c.ctx, t.id, 'sso.idp.read'))))) rows.push({ ...serializeIdp(r), tenant: t.slug });
        }
        if (opts.json) printJson(rows);
        else printTable(rows, ['id', 'tenant', 'name', 'issuer', 'client_id', 'enabled', 'jit', 'enforce_sso']);
      }),
    );
  sso
    .command('remove <idp>')
    .description('remove a tenant IdP (its users keep their accounts)')
    .action((id: string) =>
      withIdentity(async (c) => {
        const s = ssoOf(c);
        const t = await s.repo.idpTenant(id);
        if (!t) throw new CliError(`no IdP ${id}`, 3);
        await s.deleteIdp((await c.identity.tenants.scopeTo(c.ctx, t.id, 'sso.idp.delete')), id);
        process.stdout.write(`removed IdP ${id} from ${t.slug}\n`);
      }),
    );
  sso
    .command('test <idp>')
    .description('check discovery, PKCE S256 and JWKS of an IdP ("platform" or an IdP id) and show the last received mapped claims')
    .option('--json', 'print JSON')
    .action((ref: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const s = ssoOf(c);
        let ctx = c.ctx;
        if (ref !== PLATFORM_REF) {
          const t = await s.repo.idpTenant(ref);
          if (!t) throw new CliError(`no IdP ${ref}`, 3);
          ctx = await c.identity.tenants.scopeTo(c.ctx, t.id, 'sso.idp.read');
        }
        const r = await s.test(ctx, ref);
        if (opts.json) printJson(r);
        else {
          process.stdout.write(`${r.ok ? 'ok' : `FAILED (${r.reason})`}: issuer ${r.issuer}; PKCE S256 ${r.pkce_s256 ? 'yes' : 'no'}; end-session ${r.end_session ? 'yes' : 'no'}\n`);
          const l = r.last_claims;
          if (!l) process.stdout.write('no login received yet\n');
          else {
            process.stdout.write(`last login ${new Date(l.at).toISOString()} (claims from ${l.source})\n`);
            process.stdout.write(`  roles  (${l.roles_path ?? 'no path'}): ${l.roles.join(', ') || '(none)'}\n`);
            process.stdout.write(`  groups (${l.groups_path ?? 'no path'}): ${l.groups.join(', ') || '(none)'}\n`);
            process.stdout.write(`  claims received: ${l.claim_names.join(', ')}\n`);
          }
        }
        if (!r.ok) process.exitCode = 1;
      }),
    );
}
