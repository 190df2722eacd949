import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { ensureDir, syncTree, writeIfChanged, type FileChange } from './files.js';
import { publicUrl, readEnvFile, renderEnv, type EnvValues } from './env-file.js';
import { InstallerError, run, runOrThrow } from './exec.js';
import { COMPOSE_PROJECT, DEFAULT_IMAGE, GENERATED, RELEASE_VERSION, SHIPPED, VOLUMES, releasePath } from './layout.js';
import { formatReport, runPreflight, type PreflightReport } from './preflight.js';
import { ensureRealm, issuerFor } from './realm.js';
import { ensureSecrets } from './secrets.js';
import { ensureTls } from './tls.js';

export interface InstallOptions {
  readonly dir: string;
  readonly hostname?: string;
  readonly httpPort?: number;
  readonly httpsPort?: number;
  readonly sans?: readonly string[];
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly tlsCa?: string;
  readonly adminEmail?: string;
  readonly ollama?: boolean;
  readonly image?: string;
  readonly version?: string;
  readonly logLevel?: string;
  /** Air-gapped: a verified bundle directory whose images are loaded instead of pulled. */
  readonly offlineBundle?: string;
  readonly pull?: boolean;
  readonly start?: boolean;
  readonly skipChecks?: readonly string[];
  /** chown secrets to container users; default: only when running as root. */
  readonly chown?: boolean;
  readonly out?: (line: string) => void;
}

export interface InstallResult {
  readonly dir: string;
  readonly publicUrl: string;
  readonly preflight: PreflightReport;
  readonly changes: FileChange[];
  readonly caFingerprint: string;
  readonly adminUsername: string;
}

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const EMAIL_RE = /^[^\s@"'\\$]+@[^\s@"'\\$]+$/;

export function composeArgs(dir: string): string[] {
  return ['compose', '--project-directory', dir, '-f', path.join(dir, 'docker-compose.yml'), '-p', COMPOSE_PROJECT];
}

/** Creates the external volumes that do not exist yet (never touches existing ones). */
export function ensureVolumes(out: (l: string) => void): string[] {
  const created: string[] = [];
  for (const v of VOLUMES) {
    if (run('docker', ['volume', 'inspect', v]).code === 0) continue;
    runOrThrow('docker', ['volume', 'create', '--label', 'com.enclave.volume=true', v]);
    created.push(v);
    out(`created volume ${v}`);
  }
  return created;
}

/** Resolves flags against the existing .env, so a re-run without flags keeps the install as it is. */
export function resolveSettings(opts: InstallOptions): { env: EnvValues; extra: Record<string, string> } {
  const prev = readEnvFile(path.join(opts.dir, GENERATED.env));
  const hostname = (opts.hostname ?? prev.ENCLAVE_HOSTNAME ?? '').trim().toLowerCase();
  if (!hostname) throw new InstallerError('first install: pass --hostname <the DNS name users will open>', 2);
  if (!isIP(hostname) && !HOSTNAME_RE.test(hostname)) throw new InstallerError(`--hostname ${hostname} is not a valid DNS name or IP address`, 2);
  const httpPort = opts.httpPort ?? Number(prev.ENCLAVE_HTTP_PORT ?? 80);
  const httpsPort = opts.httpsPort ?? Number(prev.ENCLAVE_HTTPS_PORT ?? 443);
  for (const [flag, p] of [['--http-port', httpPort], ['--https-port', httpsPort]] as const) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InstallerError(`${flag} must be a port number`, 2);
  }
  const ollama = opts.ollama ?? (prev.COMPOSE_PROFILES ?? '').split(',').includes('ollama');
  const adminEmail = opts.adminEmail ?? prev.ENCLAVE_ADMIN_CONTACT ?? `admin@${isIP(hostname) ? 'enclave.local' : hostname}`;
  if (!EMAIL_RE.test(adminEmail)) throw new InstallerError(`--admin-email ${adminEmail} is not an email address`, 2);
  const env: EnvValues = {
    ENCLAVE_VERSION: opts.version ?? prev.ENCLAVE_VERSION ?? RELEASE_VERSION,
    ENCLAVE_IMAGE: opts.image ?? prev.ENCLAVE_IMAGE ?? DEFAULT_IMAGE,
    ENCLAVE_HOSTNAME: hostname,
    ENCLAVE_PUBLIC_URL: publicUrl(hostname, httpsPort),
    ENCLAVE_HTTP_PORT: String(httpPort),
    ENCLAVE_HTTPS_PORT: String(httpsPort),
    COMPOSE_PROFILES: ollama ? 'ollama' : '',
    ENCLAVE_LOG_LEVEL: opts.logLevel ?? prev.ENCLAVE_LOG_LEVEL ?? 'info',
    ENCLAVE_ADMIN_CONTACT: adminEmail,
  };
  const extra = Object.fromEntries(Object.entries(prev).filter(([k]) => !(k in env)));
  return { env, extra };
}

/**
 * Inside the stack the public hostname resolves to the proxy, so the proxy must also answer on
 * the public HTTPS port when it is not 443 (the server calls https://<host>:<port>/auth/...).
 */
export function proxyConfig(conf: string, httpsPort: number): string {
  if (httpsPort === 443) return conf;
  const marker = '    listen 443 ssl default_server;\n';
  if (!conf.includes(marker)) throw new InstallerError('proxy/nginx.conf lacks the "listen 443 ssl default_server;" line');
  return conf
    .replace(marker, `${marker}    listen ${httpsPort} ssl; # the public port, for calls from inside the stack\n`)
    .replace('return 308 https://$host$request_uri;', `return 308 https://$host:${httpsPort}$request_uri;`);
}

/** Writes every file of the install dir; idempotent (a second run reports every file "kept"). */
export function writeInstallFiles(opts: InstallOptions, env: EnvValues, extra: Record<string, string>) {
  const dir = opts.dir;
  const chown = opts.chown ?? process.getuid?.() === 0;
  const changes: FileChange[] = [];
  const proxyConf = path.join(dir, 'proxy', 'nginx.conf');
  const transform = (to: string, content: Buffer): Buffer => (to === proxyConf ? Buffer.from(proxyConfig(content.toString('utf8'), Number(env.ENCLAVE_HTTPS_PORT))) : content);
  for (const s of SHIPPED) changes.push(...syncTree(releasePath(s.from), path.join(dir, s.to), transform));
  const { secrets, changes: sc } = ensureSecrets(dir, chown);
  changes.push(...sc);
  const tls = ensureTls(dir, {
    hostname: env.ENCLAVE_HOSTNAME,
    extraSans: opts.sans,
    certFile: opts.tlsCert,
    keyFile: opts.tlsKey,
    caFile: opts.tlsCa,
    chown,
  });
  changes.push(...tls.changes);
  changes.push(
    ensureRealm(
      dir,
      {
        publicUrl: env.ENCLAVE_PUBLIC_URL,
        clientSecret: secrets.oidc_client_secret!,
        adminEmail: env.ENCLAVE_ADMIN_CONTACT,
        adminPassword: secrets.first_admin_password!,
      },
      chown,
    ),
  );
  changes.push(writeIfChanged(path.join(dir, GENERATED.env), renderEnv(env, extra), { mode: 0o644, chown: false }));
  ensureDir(path.join(dir, GENERATED.backupsDir), 0o700);
  return { changes, caFingerprint: tls.caFingerprint, tlsChecks: tls.checks };
}

export async function install(opts: InstallOptions): Promise<InstallResult> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const dir = path.resolve(opts.dir);
  ensureDir(dir, 0o755);
  const { env, extra } = resolveSettings({ ...opts, dir });
  const ollama = env.COMPOSE_PROFILES.split(',').includes('ollama');

  out(`Enclave ${env.ENCLAVE_VERSION} installer: ${dir}`);
  out('preflight:');
  const alreadyRunning = existsSync(path.join(dir, GENERATED.env)) && proxyRunning(dir);
  const preflight = await runPreflight({
    dir,
    ports: [Number(env.ENCLAVE_HTTP_PORT), Number(env.ENCLAVE_HTTPS_PORT)],
    ollama,
    skip: opts.skipChecks ?? [],
    portsOwnedByUs: alreadyRunning,
  });
  out(formatReport(preflight).trimEnd());
  if (preflight.status === 'fail') {
    const ids = preflight.checks.filter((c) => c.status === 'fail').map((c) => c.id);
    throw new InstallerError(`preflight failed (${ids.join(', ')}); fix the above, or skip a check with --skip-check <id>`, 2);
  }

  if (opts.offlineBundle) {
    const { verifyBundle, loadBundleImages } = await import('./bundle.js');
    const v = verifyBundle(opts.offlineBundle);
    out(`bundle ${v.manifest.version} verified (${v.manifest.files.length} files, signature ok)`);
    loadBundleImages(opts.offlineBundle, v.manifest, out);
  }

  const { changes, caFingerprint, tlsChecks } = writeInstallFiles({ ...opts, dir }, env, extra);
  for (const c of changes) if (c.action !== 'kept') out(`${c.action} ${path.relative(dir, c.path)}`);
  for (const c of tlsChecks) if (c.status !== 'ok') out(`  [WARN] tls         ${c.message}`);
  ensureVolumes(out);

  const compose = composeArgs(dir);
  if (!opts.offlineBundle && opts.pull !== false && opts.start !== false) {
    out('pulling images (docker compose pull)…');
    runOrThrow('docker', [...compose, 'pull', '--policy', 'missing'], { inherit: true, timeoutMs: 3_600_000 });
  }
  if (opts.start !== false) {
    out('starting (docker compose up -d --wait)…');
    runOrThrow('docker', [...compose, 'up', '-d', '--wait', '--wait-timeout', '900', '--remove-orphans'], { inherit: true, timeoutMs: 1_200_000 });
  }

  const adminUsername = env.ENCLAVE_ADMIN_CONTACT.split('@')[0]!.toLowerCase();
  out('');
  out(`Enclave is ${opts.start === false ? 'configured (not started: --no-start)' : 'running'} at ${env.ENCLAVE_PUBLIC_URL}`);
  out(`  TLS: appliance CA ${path.join(dir, GENERATED.caCert)} (SHA-256 ${caFingerprint}); install it in your browsers or use --tls-cert/--tls-key`);
  out(`  first admin: sign in as "${adminUsername}" (${env.ENCLAVE_ADMIN_CONTACT}) with the password in ${path.join(dir, 'secrets', 'first_admin_password')} (you must change it at first login)`);
  out(`  SSO issuer: ${issuerFor(env.ENCLAVE_PUBLIC_URL)} (Keycloak admin console ${env.ENCLAVE_PUBLIC_URL}/auth/admin, user "admin", password in secrets/keycloak_admin_password)`);
  out(`  Grafana: ${env.ENCLAVE_PUBLIC_URL}/grafana/ (user "admin", password in secrets/grafana_admin_password)`);
  out('next steps:');
  out('  1. back up secrets/ somewhere safe and separate from data backups (the master key decrypts stored provider keys)');
  out(`  2. install the licence:   docker compose --project-directory ${dir} exec server enclave license install <file>`);
  out('  3. add a model provider in the admin console (or: enclave providers add …)');
  out(`  4. check health any time: docker compose --project-directory ${dir} exec server enclave doctor`);
  return { dir, publicUrl: env.ENCLAVE_PUBLIC_URL, preflight, changes, caFingerprint, adminUsername };
}

/** True when this install's proxy container is running (so its ports are ours). */
export function proxyRunning(dir: string): boolean {
  const r = run('docker', [...composeArgs(dir), 'ps', '--status', 'running', '--services']);
  return r.code === 0 && r.stdout.split('\n').map((s) => s.trim()).includes('proxy');
}
