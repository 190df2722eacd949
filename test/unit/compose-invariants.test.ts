import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadCompose, interpolate, composeImages, type ComposeService } from '../../installer/compose-model.js';
import { GENERATED, RELEASE_ROOT, SHIPPED, VOLUMES } from '../../installer/layout.js';
import { SECRET_SPECS } from '../../installer/secrets.js';
import { loadConfig } from '../../server/config/load.js';
import { SETTINGS } from '../../server/config/settings.js';
import { APP_VERSION } from '../../server/paths.js';
import { promtoolCheckConfig } from '../helpers/promql.js';

const ENV = { ENCLAVE_PUBLIC_URL: 'https://enclave.test', ENCLAVE_HOSTNAME: 'enclave.test' };
const compose = loadCompose(ENV);
const services = Object.entries(compose.services);
const ONE_SHOT = ['migrate'];
const ENCLAVE_SERVICES = ['migrate', 'server', 'worker'];
const SETTING_ENVS = new Set(Object.values(SETTINGS).map((s) => s.env));

function envOf(s: ComposeService): Record<string, string> {
  if (Array.isArray(s.environment)) return Object.fromEntries(s.environment.map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]));
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}
const volumeSpecs = (s: ComposeService): { source: string; target: string }[] =>
  (s.volumes ?? []).map((v) => (typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : v));
const secretNames = (s: ComposeService): string[] => (s.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source));

describe('docker-compose.yml invariants', () => {
  it('has a top-level name and the expected services', () => {
    expect(compose.name).toBe('enclave');
    expect(Object.keys(compose.services).sort()).toEqual(
      ['grafana', 'keycloak', 'keycloak-db', 'migrate', 'ollama', 'prometheus', 'proxy', 'redis', 'server', 'worker'].sort(),
    );
  });

  it('refuses to render without the installer-written .env', () => {
    expect(() => loadCompose({})).toThrow(/ENCLAVE_PUBLIC_URL/);
  });

  it('every long-running service has a health check; the one-shot migrate has none and never restarts', () => {
    for (const [name, s] of services) {
      if (ONE_SHOT.includes(name)) {
        expect(s.restart, name).toBe('no');
        expect(s.healthcheck?.disable, name).toBe(true);
        continue;
      }
      expect(s.healthcheck?.test, `${name} healthcheck`).toBeDefined();
      expect(s.healthcheck?.disable, name).toBeFalsy();
      expect(s.restart, name).toBe('unless-stopped');
    }
  });

  it('every image has a pinned tag (no latest, no untagged), and the Enclave image is this release', () => {
    for (const [name, s] of services) {
      expect(s.image, name).toBeDefined();
      const m = /^(?<repo>[^@]+?)(?::(?<tag>[^:/@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(s.image!);
      expect(m?.groups?.tag, `${name}: ${s.image}`).toBeDefined();
      expect(m!.groups!.tag, name).not.toBe('latest');
      expect(m!.groups!.tag, `${name}: tag has a version number`).toMatch(/\d+\.\d+/);
    }
    for (const n of ENCLAVE_SERVICES) expect(compose.services[n]!.image).toBe(`enclave/enclave:${APP_VERSION}`);
    expect(composeImages(compose)).toHaveLength(services.length - ENCLAVE_SERVICES.length + 1);
  });

  it('hardening: no-new-privileges, resource limits; read-only root where possible', () => {
    for (const [name, s] of services) {
      expect(s.security_opt, name).toContain('no-new-privileges:true');
      expect(s.deploy?.resources?.limits?.memory, `${name} memory limit`).toBeDefined();
      if (name !== 'keycloak') expect(s.read_only, `${name} read_only`).toBe(true);
    }
    for (const n of ENCLAVE_SERVICES) expect(compose.services[n]!.user).toBe('10001:10001');
  });

  it('no secret in environment: secret-looking variables are *_FILE paths under /run/secrets of a mounted secret', () => {
    const secretish = /(PASSWORD|SECRET|TOKEN|MASTER_KEY|PRIVATE|CREDENTIAL)/;
    for (const [name, s] of services) {
      const env = envOf(s);
      for (const [k, v] of Object.entries(env)) {
        if (secretish.test(k)) {
          expect(k, `${name}: ${k} must be a *_FILE variable`).toMatch(/_FILE$/);
          const m = /^\/run\/secrets\/([a-z_]+)$/.exec(v);
          expect(m, `${name}: ${k}=${v}`).not.toBeNull();
          expect(secretNames(s), `${name} mounts ${m![1]}`).toContain(m![1]);
        }
        expect(v, `${name}: ${k} carries no credentials in a URL`).not.toMatch(/:\/\/[^/\s]*:[^/\s]*@/);
      }
    }
    // Secrets come from installer-generated files, one per SECRET_SPECS entry that a container reads.
    const mounted = SECRET_SPECS.filter((s) => s.owner !== 'root').map((s) => s.name).sort();
    expect(Object.keys(compose.secrets ?? {}).sort()).toEqual(mounted);
    for (const [k, v] of Object.entries(compose.secrets ?? {})) expect(v.file).toBe(`./${GENERATED.secretsDir}/${k}`);
    for (const [name, s] of services) for (const sec of secretNames(s)) expect(compose.secrets, name).toHaveProperty(sec);
  });

  it('Keycloak reads its passwords from secret files, not from the environment', () => {
    const kc = compose.services.keycloak!;
    const cmd = ([] as string[]).concat(kc.command ?? []).join(' ');
    expect(cmd).toContain('$(cat /run/secrets/postgres_password)');
    expect(cmd).toContain('$(cat /run/secrets/keycloak_admin_password)');
    expect(cmd).toContain('--import-realm');
    expect(envOf(kc)).not.toHaveProperty('KC_DB_PASSWORD');
    expect(envOf(kc)).not.toHaveProperty('KC_BOOTSTRAP_ADMIN_PASSWORD');
  });

  it('dependency conditions: migrate completed, Redis and Keycloak healthy, Postgres before Keycloak', () => {
    const dep = (s: string) => compose.services[s]!.depends_on ?? {};
    expect(dep('server').migrate?.condition).toBe('service_completed_successfully');
    expect(dep('server').redis?.condition).toBe('service_healthy');
    expect(dep('server').keycloak?.condition).toBe('service_healthy');
    expect(dep('worker').migrate?.condition).toBe('service_completed_successfully');
    expect(dep('worker').redis?.condition).toBe('service_healthy');
    expect(dep('keycloak')['keycloak-db']?.condition).toBe('service_healthy');
    expect(dep('proxy').server?.condition).toBe('service_healthy');
    expect(dep('proxy').keycloak?.condition).toBe('service_healthy');
    expect(dep('grafana').prometheus?.condition).toBe('service_healthy');
    for (const [name, s] of services) for (const d of Object.keys(s.depends_on ?? {})) expect(compose.services, `${name} -> ${d}`).toHaveProperty(d);
  });

  it('server and worker roles, worker heartbeat health check', () => {
    expect(compose.services.server!.command).toEqual(['node', 'dist/server/main.js', '--role', 'api']);
    expect(compose.services.worker!.command).toEqual(['node', 'dist/server/main.js', '--role', 'worker']);
    expect(JSON.stringify(compose.services.worker!.healthcheck!.test)).toContain('/data/worker.heartbeat');
    expect(compose.services.migrate!.command).toEqual(['node', 'dist/cli/main.js', 'migrate']);
  });

  it('Redis runs AOF and noeviction', () => {
    const cmd = ([] as string[]).concat(compose.services.redis!.command ?? []);
    expect(cmd.join(' ')).toMatch(/--appendonly yes/);
    expect(cmd.join(' ')).toMatch(/--maxmemory-policy noeviction/);
  });

  it('Keycloak: pinned, hostname fixed to the public URL under /auth, health on the management port', () => {
    const env = envOf(compose.services.keycloak!);
    expect(env.KC_HOSTNAME).toBe('https://enclave.test/auth');
    expect(env.KC_HTTP_RELATIVE_PATH).toBe('/auth');
    expect(env.KC_PROXY_HEADERS).toBe('xforwarded');
    expect(env.KC_HEALTH_ENABLED).toBe('true');
    expect(env).not.toHaveProperty('KC_HOSTNAME_STRICT');
    expect(JSON.stringify(compose.services.keycloak!.healthcheck!.test)).toContain('/dev/tcp/127.0.0.1/9000');
    expect(volumeSpecs(compose.services.keycloak!).some((v) => v.target === '/opt/keycloak/data/import')).toBe(true);
    // The server pins the issuer on the same public URL, and resolves that name to the proxy.
    expect(envOf(compose.services.server!).ENCLAVE_OIDC_ISSUER).toBe('https://enclave.test/auth/realms/enclave');
    const nets = compose.services.proxy!.networks as Record<string, { aliases?: string[] }>;
    expect(nets.frontend!.aliases).toContain('enclave.test');
  });

  it('only the proxy publishes ports', () => {
    for (const [name, s] of services) if (name !== 'proxy') expect(s.ports, name).toBeUndefined();
    expect(compose.services.proxy!.ports).toHaveLength(2);
  });

  it('data volumes are external (down -v cannot delete them) and match the installer list', () => {
    expect(Object.keys(compose.volumes ?? {}).sort()).toEqual([...VOLUMES].sort());
    for (const [k, v] of Object.entries(compose.volumes ?? {})) expect(v?.external, k).toBe(true);
    for (const [name, s] of services) {
      for (const v of volumeSpecs(s)) {
        if (!v.source.startsWith('.') && !v.source.startsWith('/')) expect(compose.volumes, `${name}: ${v.source}`).toHaveProperty(v.source);
      }
    }
  });

  it('ollama: only under its profile, GPU reservation syntax, models volume', () => {
    const o = compose.services.ollama!;
    expect(o.profiles).toEqual(['ollama']);
    for (const [name, s] of services) if (name !== 'ollama') expect(s.profiles, name).toBeUndefined();
    const devices = o.deploy?.resources?.reservations?.devices ?? [];
    expect(devices).toHaveLength(1);
    expect(devices[0]!.driver).toBe('nvidia');
    expect(devices[0]!.capabilities).toContain('gpu');
    expect((devices[0]!.count !== undefined) !== (devices[0]!.device_ids !== undefined)).toBe(true);
    expect(volumeSpecs(o)).toContainEqual({ source: 'enclave_ollama', target: '/root/.ollama' });
  });

  it('every bind mount comes from a shipped repo path or an installer-generated file', () => {
    const generated = [GENERATED.secretsDir, GENERATED.tlsDir, GENERATED.realmDir];
    for (const [name, s] of services) {
      for (const v of volumeSpecs(s)) {
        if (!v.source.startsWith('./')) continue;
        const rel = v.source.slice(2);
        if (generated.some((g) => rel === g || rel.startsWith(g + '/'))) continue;
        const shipped = SHIPPED.find((x) => rel === x.to || rel.startsWith(x.to + '/'));
        expect(shipped, `${name}: ${v.source} is neither shipped nor generated`).toBeDefined();
        const repoPath = path.join(RELEASE_ROOT, shipped!.from, rel.slice(shipped!.to.length));
        expect(existsSync(repoPath), `${name}: ${repoPath}`).toBe(true);
      }
    }
  });

  it('Prometheus scrape targets are compose services on ports they expose; config and rules pass promtool', () => {
    const prom = parse(readFileSync(path.join(RELEASE_ROOT, 'compose/prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets).toContain('server:8080');
    for (const t of targets) {
      const [host, port] = t.split(':');
      expect(compose.services, t).toHaveProperty(host!);
      expect(compose.services[host!]!.expose, t).toContain(port);
    }
    const promtool = whichOrHint('promtool', 'prometheus');
    promtoolCheckConfig(path.join(RELEASE_ROOT, 'compose/prometheus/prometheus.yml'), promtool); // /run/secrets paths → placeholders
    const rulesDir = path.join(RELEASE_ROOT, 'compose/prometheus/rules');
    for (const f of readdirSync(rulesDir)) execFileSync(promtool, ['check', 'rules', path.join(rulesDir, f)], { stdio: 'pipe' });
  });

  it('Grafana provisioning paths exist in the repo and point where the compose file mounts them', () => {
    const g = compose.services.grafana!;
    const mounts = volumeSpecs(g);
    expect(mounts).toContainEqual({ source: './grafana/provisioning', target: '/etc/grafana/provisioning' });
    const dashMount = mounts.find((m) => m.source === './grafana/dashboards')!;
    expect(dashMount).toBeDefined();
    const ds = parse(readFileSync(path.join(RELEASE_ROOT, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as {
      datasources: { uid: string; url: string }[];
    };
    expect(ds.datasources[0]!.uid).toBe('prometheus');
    const dsUrl = new URL(ds.datasources[0]!.url);
    expect(compose.services[dsUrl.hostname]!.expose).toContain(dsUrl.port);
    const prov = parse(readFileSync(path.join(RELEASE_ROOT, 'grafana/provisioning/dashboards/enclave.yaml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    for (const p of prov.providers) expect(p.options.path).toBe(dashMount.target);
    expect(statSync(path.join(RELEASE_ROOT, 'grafana/dashboards')).isDirectory()).toBe(true);
    const env = envOf(g);
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(env.GF_SECURITY_ADMIN_PASSWORD__FILE).toBe('/run/secrets/grafana_admin_password');
  });

  it('the Enclave containers get only settings the server knows, and the server accepts them', () => {
    for (const n of ENCLAVE_SERVICES) {
      const env = envOf(compose.services[n]!);
      for (const k of Object.keys(env)) {
        if (k.startsWith('NODE_')) continue;
        expect(SETTING_ENVS.has(k), `${n}: ${k} is not in server/config/settings.ts`).toBe(true);
      }
      expect(() => loadConfig(env, '/')).not.toThrow();
      const c = loadConfig(env, '/');
      expect(c.deployment).toBe('production');
      expect(c.masterKeyFile).toBe('/run/secrets/master_key');
      expect(c.oidcClientSecretFile).toBe('/run/secrets/oidc_client_secret');
    }
  });

  it('every env var the server reads is a documented setting', () => {
    const allowed = new Set(['PATH', 'NODE_ENV', 'HOME', 'TZ']);
    const read = new Map<string, string>();
    for (const dir of ['server', 'cli', 'license']) {
      for (const file of walk(path.join(RELEASE_ROOT, dir))) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\])/g)) read.set(m[1] ?? m[2]!, file);
        for (const m of text.matchAll(/\benv\.(ENCLAVE_[A-Z0-9_]+|REDIS_URL|PORT)\b/g)) read.set(m[1]!, file);
      }
    }
    for (const [name, file] of read) {
      if (allowed.has(name)) continue;
      expect(SETTING_ENVS.has(name), `${path.relative(RELEASE_ROOT, file)} reads ${name}, which is not in SETTINGS`).toBe(true);
    }
    for (const s of Object.values(SETTINGS)) {
      expect(s.description.length, s.env).toBeGreaterThan(10);
      expect(s.fix.length, s.env).toBeGreaterThan(3);
    }
    // docs/install.md explains every variable the compose file sets for the Enclave containers.
    const doc = readFileSync(path.join(RELEASE_ROOT, 'docs/install.md'), 'utf8');
    for (const k of Object.keys(envOf(compose.services.server!))) expect(doc, `docs/install.md mentions ${k}`).toContain(k);
  });

  it('Dockerfile: pinned multi-stage build, non-root, init, healthcheck, OCI labels, web build optional', () => {
    const df = readFileSync(path.join(RELEASE_ROOT, 'compose/Dockerfile'), 'utf8');
    expect(df).toMatch(/^ARG NODE_IMAGE=node:\d+\.\d+\.\d+-[a-z]+-slim$/m);
    expect(df.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(3);
    expect(df).toMatch(/npm rebuild better-sqlite3/);
    expect(df).toMatch(/npm run build:web --if-present/);
    expect(df).toMatch(/^USER 10001:10001$/m);
    expect(df).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(df).toMatch(/^HEALTHCHECK [^]*?CMD [^]*?\/healthz/m);
    expect(df).toMatch(/org\.opencontainers\.image\.version/);
    expect(df).toMatch(/^CMD \["node", "dist\/server\/main.js", "--role", "all"\]$/m);
    expect(existsSync(path.join(RELEASE_ROOT, 'compose/Dockerfile.dockerignore'))).toBe(true);
  });

  it('interpolation follows compose rules', () => {
    expect(interpolate('${A:-x} ${B-y} $${C} ${D}', { A: '', B: '' })).toBe('x  ${C} ');
    expect(() => interpolate('${A:?need A}', {})).toThrow(/need A/);
  });
});

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** The path of a tool the test needs; a missing tool fails with the install hint. */
function whichOrHint(tool: string, pkg: string): string {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = path.join(d, tool);
    if (d && existsSync(p)) return p;
  }
  throw new Error(`${tool} is not installed: apt-get install -y ${pkg} (listed in .ci/apt-packages.txt)`);
}
