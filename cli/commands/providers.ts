import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import pino from 'pino';
import { systemClock } from '../../server/clock.js';
import { resolveMasterKey } from '../../server/config/master-key.js';
import { Revision } from '../../server/identity/revision.js';
import { egressPolicy } from '../../server/providers/egress.js';
import { KIND_SPECS, PROVIDER_KIND_NAMES, isProviderKind, type KindField, type ProviderKind } from '../../server/providers/kinds.js';
import { DeploymentService } from '../../server/routing/deployments.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';
import { readStdin, withIdentity, type CliIdentity } from './admin.js';

/**
 * `enclave providers add|list|update|remove|test` and `enclave providers alias set|list|remove`:
 * provider deployments on the database directly (same service as the admin API). Running
 * servers pick changes up through the `gateway` revision poll (≤ 1 s).
 */
function withDeployments<T>(fn: (svc: DeploymentService, c: CliIdentity) => Promise<T> | T): Promise<T> {
  return withIdentity((c) => {
    const config = cliConfig();
    const master = resolveMasterKey(config, pino({ level: 'silent' }));
    const svc = new DeploymentService({
      store: c.store,
      secrets: master.box,
      clock: systemClock,
      revision: new Revision(c.store, 'gateway'),
      entitlements: () => c.entitlements,
      audit: c.identity.audit,
      tenants: c.identity.tenants,
      tenantEgress: egressPolicy(config.tenantProviderNetworks),
    });
    return fn(svc, c);
  });
}

const list = (v?: string): string[] | undefined => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));
const int = (v: string | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new CliError(`${what} must be an integer`, 2);
  return n;
};

interface Opts {
  name?: string;
  kind?: string;
  baseUrl?: string;
  boundary?: string;
  region?: string;
  models?: string;
  priority?: string;
  weight?: string;
  maxConcurrency?: string;
  timeoutMs?: string;
  firstTokenMs?: string;
  maxRetries?: string;
  tenant?: string;
  apiKeyStdin?: boolean;
  disabled?: boolean;
  enable?: boolean;
  disable?: boolean;
  json?: boolean;
}

/**
 * Every kind's own flags (server/providers/kinds.ts), declared once on add and update; a flag
 * of another kind than the deployment's is refused. A secret's flag takes a file (`-`: stdin).
 */
const KIND_FLAGS: readonly { kind: ProviderKind; field: KindField }[] = PROVIDER_KIND_NAMES.flatMap((kind) => KIND_SPECS[kind].fields.map((field) => ({ kind, field })));
const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

function kindFlags(c: Command): Command {
  const seen = new Set<string>();
  for (const { field } of KIND_FLAGS) {
    if (seen.has(field.flag)) continue;
    seen.add(field.flag);
    const kinds = KIND_FLAGS.filter((x) => x.field.flag === field.flag).map((x) => x.kind).join('|');
    c.option(field.type === 'boolean' ? `--${field.flag}` : `--${field.flag} <${field.secret ? 'file' : 'value'}>`, `[${kinds}] ${field.help}`);
  }
  return c;
}

async function readSecretFile(path: string, flag: string): Promise<string> {
  if (path === '-') return readStdin();
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (e) {
    throw new CliError(`--${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 2);
  }
}

/** The kind's settings and credentials from its flags; a flag of another kind is an error. */
async function kindBody(kind: ProviderKind, o: Record<string, unknown>): Promise<Record<string, unknown>> {
  const own = new Set(KIND_SPECS[kind].fields.map((f) => f.flag));
  for (const { field } of KIND_FLAGS) {
    if (o[camel(field.flag)] !== undefined && !own.has(field.flag)) throw new CliError(`--${field.flag} is not an option of kind ${kind}`, 2);
  }
  const settings: Record<string, string | boolean> = {};
  const credentials: Record<string, string> = {};
  let stdinUsed = o.apiKeyStdin === true;
  for (const field of KIND_SPECS[kind].fields) {
    const v = o[camel(field.flag)];
    if (v === undefined) continue;
    if (field.secret) {
      if (v === '-') {
        if (stdinUsed) throw new CliError(`--${field.flag} -: standard input is already taken by another flag`, 2);
        stdinUsed = true;
      }
      credentials[field.key] = await readSecretFile(String(v), field.flag);
    } else settings[field.key] = field.type === 'boolean' ? true : String(v);
  }
  return { ...(Object.keys(settings).length ? { settings } : {}), ...(Object.keys(credentials).length ? { credentials } : {}) };
}

function common(c: Command): Command {
  return kindFlags(c)
    .option('--boundary <boundary>', 'local | private | public')
    .option('--region <label>', 'region label (policies may restrict by region)')
    .option('--models <list>', 'comma-separated model names offered (e.g. llama3.1:8b,nomic-embed-text)')
    .option('--priority <n>', 'lower is tried first (default 100)')
    .option('--weight <n>', 'share among equal priorities (default 1)')
    .option('--max-concurrency <n>', 'concurrent calls to this deployment (default 64)')
    .option('--timeout-ms <n>', 'total time limit per call')
    .option('--first-token-ms <n>', 'time-to-first-token limit')
    .option('--max-retries <n>', 'retries on retryable errors before falling back (default 2)')
    .option('--api-key-stdin', 'read the upstream API key from standard input')
    .option('--json', 'print JSON');
}

async function body(o: Opts): Promise<Record<string, unknown>> {
  const options: Record<string, number> = {};
  const t = int(o.timeoutMs, '--timeout-ms');
  if (t !== undefined) options.totalMs = t;
  const f = int(o.firstTokenMs, '--first-token-ms');
  if (f !== undefined) options.firstTokenMs = f;
  const r = int(o.maxRetries, '--max-retries');
  if (r !== undefined) options.maxRetries = r;
  const b: Record<string, unknown> = {};
  if (o.baseUrl !== undefined) b.base_url = o.baseUrl;
  if (o.boundary !== undefined) b.boundary = o.boundary;
  if (o.region !== undefined) b.region = o.region;
  if (o.models !== undefined) b.models = list(o.models);
  if (o.priority !== undefined) b.priority = int(o.priority, '--priority');
  if (o.weight !== undefined) b.weight = int(o.weight, '--weight');
  if (o.maxConcurrency !== undefined) b.max_concurrency = int(o.maxConcurrency, '--max-concurrency');
  if (Object.keys(options).length) b.options = options;
  if (o.apiKeyStdin) b.api_key = await readStdin();
  return b;
}

const COLUMNS = ['name', 'kind', 'boundary', 'region', 'tenant', 'base_url', 'models', 'approved', 'enabled', 'has_api_key', 'id'];
async function rows(ds: Awaited<ReturnType<DeploymentService['list']>>, c: CliIdentity) {
  const slug = async (id: string | null) => (id === null ? '(platform)' : ((await c.identity.tenants.byId(id))?.slug ?? id));
  return Promise.all(ds.map(async (d) => ({ ...d, tenant: await slug(d.tenant_id), models: (d.models as { name: string }[]).map((m) => m.name).join(',') })));
}

export function registerProviders(program: Command): void {
  const p = program.command('providers').description('AI provider deployments (Ollama, OpenAI-compatible, Anthropic, Azure OpenAI, Bedrock, Vertex AI, Gemini) and model aliases');

  common(
    p
      .command('add')
      .description('add a provider deployment (approved at once)')
      .requiredOption('--name <name>', 'unique name, e.g. ollama-1')
      .requiredOption('--kind <kind>', `${PROVIDER_KIND_NAMES.join(' | ')} (openai: any OpenAI-compatible endpoint)`)
      .option('--base-url <url>', 'e.g. http://127.0.0.1:11434 (ollama) or https://host/v1 (openai); derived for anthropic, gemini, azure-openai (--azure-resource), bedrock and vertex (--region)')
      .option('--tenant <tenant>', 'make it private to one tenant (slug or id): only that tenant sees and uses its models'),
  ).action((o: Opts) =>
    withDeployments(async (svc, c) => {
      if (!isProviderKind(o.kind)) throw new CliError(`--kind must be one of ${PROVIDER_KIND_NAMES.join(', ')}`, 2);
      const k = await kindBody(o.kind, o as Record<string, unknown>);
      const b = await body(o);
      if (!o.boundary) throw new CliError('--boundary is required (local, private or public)', 2);
      const d = await svc.create(c.ctx, { ...b, ...k, name: o.name, kind: o.kind, ...(o.tenant ? { tenant_id: o.tenant } : {}) });
      if (o.json) printJson(d);
      else process.stdout.write(`added provider ${d.name} (${d.id}), boundary ${d.boundary}\n`);
    }),
  );

  p.command('list')
    .description('list provider deployments (credentials are never shown)')
    .option('--tenant <tenant>', "only this tenant's private deployments (slug or id)")
    .option('--platform', 'only platform-wide deployments')
    .option('--json', 'print JSON')
    .action((o: Opts & { platform?: boolean }) =>
      withDeployments(async (svc, c) => {
        if (o.tenant && o.platform) throw new CliError('use --tenant or --platform, not both', 2);
        const ds = await svc.list(o.tenant ? { tenantId: await svc.tenantId(o.tenant) } : o.platform ? { tenantId: null } : {});
        if (o.json) printJson(ds);
        else printTable(await rows(ds, c), COLUMNS);
      }),
    );

  common(p.command('update <name>').description('change a provider deployment').option('--base-url <url>', 'new base URL').option('--enable', 'enable').option('--disable', 'disable')).action(
    (name: string, o: Opts) =>
      withDeployments(async (svc, c) => {
        const k = await kindBody((await svc.row(name)).kind, o as Record<string, unknown>);
        const b = { ...(await body(o)), ...k };
        if (o.enable) b.enabled = true;
        if (o.disable) b.enabled = false;
        const d = await svc.update(c.ctx, name, b);
        if (o.json) printJson(d);
        else process.stdout.write(`updated provider ${d.name}\n`);
      }),
  );

  p.command('remove <name>')
    .description('remove a provider deployment')
    .action((name: string) =>
      withDeployments(async (svc, c) => {
        await svc.remove(c.ctx, name);
        process.stdout.write(`removed provider ${name}\n`);
      }),
    );

  p.command('test <name>')
    .description("call the deployment's model list with its stored settings")
    .option('--json', 'print JSON')
    .action((name: string, o: Opts) =>
      withDeployments(async (svc) => {
        const r = await svc.test(name);
        if (o.json) printJson(r);
        else process.stdout.write(r.ok ? `ok: ${r.models!.length} models in ${r.latency_ms} ms (${r.models!.slice(0, 10).join(', ')})\n` : `failed: ${r.error}\n`);
        if (!r.ok) throw new CliError(`provider ${name} did not answer: ${r.error}`);
      }),
    );

  const alias = p.command('alias').description('model aliases: a name that resolves to deployments by priority/weight');
  alias
    .command('set <name>')
    .description('create or replace an alias; targets as deployment=model[@priority], e.g. ollama-1=llama3.1:8b@1,cloud=gpt-4o@2')
    .requiredOption('--targets <list>', 'comma-separated deployment=model[@priority]')
    .option('--tenant <id|slug>', "the tenant's own alias (wins over a same-named model for that tenant only)")
    .option('--json', 'print JSON')
    .action((name: string, o: { targets: string; tenant?: string; json?: boolean }) =>
      withDeployments(async (svc, c) => {
        const targets = list(o.targets)!.map((t) => {
          const m = /^([^=]+)=([^@]+)(?:@(\d+))?$/.exec(t);
          if (!m) throw new CliError(`target "${t}" must look like deployment=model[@priority]`, 2);
          return { deployment: m[1]!, model: m[2]!, ...(m[3] ? { priority: Number(m[3]) } : {}) };
        });
        const a = await svc.setAlias(c.ctx, { name, targets, ...(o.tenant ? { tenant_id: o.tenant } : {}) });
        if (o.json) printJson(a);
        else process.stdout.write(`alias ${name} → ${targets.map((t) => `${t.deployment}/${t.model}`).join(', ')}\n`);
      }),
    );
  alias
    .command('list')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) =>
      withDeployments(async (svc) => {
        const as = await svc.listAliases();
        if (o.json) printJson(as);
        else printTable(as.map((a) => ({ name: a.name, tenant: a.tenant_id ?? '(platform)', targets: (a.targets as { deployment: string; model: string }[]).map((t) => `${t.deployment}/${t.model}`).join(',') })), ['name', 'tenant', 'targets']);
      }),
    );
  alias
    .command('remove <name>')
    .action((name: string) =>
      withDeployments(async (svc, c) => {
        await svc.removeAlias(c.ctx, name);
        process.stdout.write(`removed alias ${name}\n`);
      }),
    );
}
