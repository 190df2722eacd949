import type { Command } from 'commander';
import { serializeKey } from '../../server/keys/service.js';
import type { Classification } from '../../server/context.js';
import { CliError, printJson, printTable } from '../output.js';
import { withIdentity, type CliIdentity } from './admin.js';
import { resolveTenant } from './tenants.js';

/** `30d`, `12h`, `90m`, `45s` → milliseconds. */
export function parseDuration(v: string, what: string): number {
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(v.trim());
  if (!m) throw new CliError(`${what} must look like 30d, 12h, 90m or 45s`, 2);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's']!;
}

const list = (v?: string): string[] | undefined => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

async function keyCtx(c: CliIdentity, id: string) {
  const t = await c.identity.keys.tenantOf(id);
  if (!t) throw new CliError(`no key ${id}`, 3);
  return c.identity.tenants.scopeTo(c.ctx, t.id);
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys: create (secret shown once), list, rotate, revoke');
  keys
    .command('create')
    .description('create an API key; the secret is printed once')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .requiredOption('--name <name>', 'key name')
    .option('--owner <email>', 'owner user (its role caps the key); default: no owner (service key, admin ceiling)')
    .option('--scopes <list>', 'comma-separated scopes (default models:invoke,models:list,embeddings:create)')
    .option('--models <list>', 'comma-separated allowed models (default: all the tenant may use)')
    .option('--max-classification <level>', 'public|internal|confidential|restricted')
    .option('--expires <duration>', 'lifetime such as 30d')
    .option('--json', 'print JSON (includes the secret)')
    .action((opts: { tenant: string; name: string; owner?: string; scopes?: string; models?: string; maxClassification?: string; expires?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id);
        let ownerUserId: string | null = null;
        if (opts.owner) {
          const u = await c.identity.users.resolve(opts.owner);
          if (!u) throw new CliError(`no user ${opts.owner}`, 3);
          ownerUserId = u.id;
        }
        if (opts.maxClassification && !['public', 'internal', 'confidential', 'restricted'].includes(opts.maxClassification)) {
          throw new CliError('--max-classification must be public, internal, confidential or restricted', 2);
        }
        const scopes = list(opts.scopes);
        const models = list(opts.models);
        const { key, secret } = await c.identity.keys.create(ctx, {
          name: opts.name,
          ownerUserId,
          ...(scopes ? { scopes } : {}),
          ...(models ? { allowedModels: models } : {}),
          ...(opts.maxClassification ? { maxClassification: opts.maxClassification as Classification } : {}),
          ...(opts.expires ? { expiresAt: Date.now() + parseDuration(opts.expires, '--expires') } : {}),
        });
        if (opts.json) printJson({ ...serializeKey(key, Date.now()), secret });
        else {
          process.stdout.write(`created key ${key.id} (${key.prefix}) in ${ctx.tenant!.slug}\n`);
          process.stdout.write(`secret (shown once, store it now): ${secret}\n`);
        }
      }),
    );
  keys
    .command('list')
    .description('list the API keys of a tenant (never the secrets)')
    .requiredOption('--tenant <tenant>', 'tenant slug or id')
    .option('--json', 'print JSON')
    .action((opts: { tenant: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await c.identity.tenants.scopeTo(c.ctx, (await resolveTenant(c, opts.tenant)).id);
        const rows: ReturnType<typeof serializeKey>[] = [];
        let cursor: string | undefined;
        do {
          const p = await c.identity.keys.list(ctx, { limit: 200, ...(cursor ? { cursor } : {}) });
          rows.push(...p.data);
          cursor = p.next_cursor ?? undefined;
        } while (cursor);
        if (opts.json) printJson(rows);
        else printTable(rows.map((r) => ({ ...r, scopes: r.scopes.join(','), expires_at: r.expires_at ? new Date(r.expires_at).toISOString() : '' })), ['id', 'prefix', 'name', 'status', 'owner_user_id', 'scopes', 'expires_at']);
      }),
    );
  keys
    .command('rotate <id>')
    .description('create a successor with the same settings (secret printed once); the old key ends now or after --overlap')
    .option('--overlap <duration>', 'keep the old key valid this long (e.g. 1h)')
    .option('--json', 'print JSON (includes the new secret)')
    .action((id: string, opts: { overlap?: string; json?: boolean }) =>
      withIdentity(async (c) => {
        const ctx = await keyCtx(c, id);
        const out = await c.identity.keys.rotate(ctx, id, opts.overlap ? { overlapSeconds: parseDuration(opts.overlap, '--overlap') / 1000 } : {});
        if (opts.json) printJson({ ...serializeKey(out.key, Date.now()), secret: out.secret, previous: serializeKey(out.previous, Date.now()) });
        else {
          process.stdout.write(`rotated ${id} -> ${out.key.id} (${out.key.prefix})\n`);
          process.stdout.write(`secret (shown once, store it now): ${out.secret}\n`);
        }
      }),
    );
  keys
    .command('revoke <id>')
    .description('revoke a key (every running server refuses it within a second)')
    .option('--json', 'print JSON')
    .action((id: string, opts: { json?: boolean }) =>
      withIdentity(async (c) => {
        const k = await c.identity.keys.revoke(await keyCtx(c, id), id);
        if (opts.json) printJson(serializeKey(k, Date.now()));
        else process.stdout.write(`revoked ${k.id} (${k.prefix})\n`);
      }),
    );
}
