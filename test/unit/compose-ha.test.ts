import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { interpolate, loadCompose, type ComposeFile, type ComposeService } from '../../installer/compose-model.js';
import { RELEASE_ROOT, SHIPPED } from '../../installer/layout.js';
import { loadConfig } from '../../server/config/load.js';
import { SETTINGS } from '../../server/config/settings.js';
import { promtoolCheckConfig } from '../helpers/promql.js';

/**
 * The compose `ha` override (compose/docker-compose.ha.yml): merged onto docker-compose.yml the
 * way `docker compose -f base -f ha` merges (no Docker engine here), the result has external
 * PostgreSQL from a secret, 2 api replicas behind the proxy, 2 workers, and no SQLite data dir
 * shared between replicas.
 */

const ENV = { ENCLAVE_PUBLIC_URL: 'https://enclave.test', ENCLAVE_HOSTNAME: 'enclave.test' };
const HA_FILE = path.join(RELEASE_ROOT, 'compose/docker-compose.ha.yml');
const SETTING_ENVS = new Set(Object.values(SETTINGS).map((s) => s.env));

type Json = unknown;
interface Volume {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
}

function volumeOf(v: string | Record<string, unknown>): Volume {
  if (typeof v !== 'string') return v as unknown as Volume;
  const parts = v.split(':');
  if (parts.length === 1) return { type: 'volume', target: parts[0]! };
  const source = parts[0]!;
  return { type: source.startsWith('.') || source.startsWith('/') ? 'bind' : 'volume', source, target: parts[1]!, ...(parts[2] === 'ro' ? { read_only: true } : {}) };
}
const secretOf = (s: string | { source: string; target?: string }): { source: string; target: string } =>
  typeof s === 'string' ? { source: s, target: s } : { source: s.source, target: s.target ?? s.source };

/** Compose's merge (compose-spec merge.md) for the keys these files use. */
function mergeValue(key: string, base: Json, over: Json): Json {
  // Shell commands and health-check tests are replaced, not appended.
  if (['command', 'entrypoint', 'test'].includes(key)) return over;
  if (Array.isArray(base) && Array.isArray(over)) {
    // Unique resources: merged by their key (volumes and secrets by target).
    if (key === 'volumes') {
      const byTarget = new Map<string, Volume>();
      for (const v of [...base, ...over]) byTarget.set(volumeOf(v as string).target, volumeOf(v as string));
      return [...byTarget.values()];
    }
    if (key === 'secrets') {
      const byTarget = new Map<string, { source: string; target: string }>();
      for (const s of [...base, ...over]) byTarget.set(secretOf(s as string).target, secretOf(s as string));
      return [...byTarget.values()];
    }
    return [...base, ...over];
  }
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Record<string, Json> = { ...(base as Record<string, Json>) };
    for (const [k, v] of Object.entries(over as Record<string, Json>)) out[k] = k in out ? mergeValue(k, out[k], v) : v;
    return out;
  }
  return over;
}

function mergedCompose(): ComposeFile {
  const base = loadCompose(ENV);
  const over = loadCompose(ENV, HA_FILE);
  const merged = mergeValue('', base, over) as ComposeFile;
  // Volume lists of services the override does not touch are normalised too.
  for (const s of Object.values(merged.services)) if (s.volumes) s.volumes = (s.volumes as (string | Volume)[]).map((v) => volumeOf(v as string)) as ComposeService['volumes'];
  return merged;
}

const compose = mergedCompose();
const svc = (name: string): ComposeService & { deploy?: { replicas?: number } } => compose.services[name]!;
const volumes = (name: string): Volume[] => (svc(name).volumes ?? []) as unknown as Volume[];
const commandOf = (name: string): string[] => svc(name).command as string[];

describe('compose ha override (docker-compose.yml + docker-compose.ha.yml)', () => {
  it('is shipped by the installer next to docker-compose.yml', () => {
    expect(SHIPPED).toContainEqual({ from: 'compose/docker-compose.ha.yml', to: 'docker-compose.ha.yml' });
    expect(existsSync(HA_FILE)).toBe(true);
  });

  it('2 api replicas and 2 workers, with their limits, health checks and start order kept', () => {
    for (const name of ['server', 'worker']) {
      expect(svc(name).deploy?.replicas, name).toBeGreaterThanOrEqual(2);
      expect(svc(name).deploy?.resources?.limits?.memory, name).toBeDefined();
      expect(svc(name).healthcheck?.test, name).toBeDefined();
      expect(svc(name).depends_on?.migrate?.condition, name).toBe('service_completed_successfully');
      // Scaled services cannot have a fixed name or publish a host port.
      expect(svc(name).container_name, name).toBeUndefined();
      expect(svc(name).ports, name).toBeUndefined();
    }
    expect(svc('proxy').depends_on?.server?.condition).toBe('service_healthy');
  });

  it('no SQLite data dir is shared: each replica has its own /data; only /data/files is shared', () => {
    for (const name of ['migrate', 'server', 'worker']) {
      const v = volumes(name);
      expect(v.some((x) => x.source === 'enclave_data'), `${name} mounts enclave_data`).toBe(false);
      const data = v.find((x) => x.target === '/data')!;
      expect(data, name).toBeDefined();
      expect(data.type, name).toBe('volume');
      expect(data.source, `${name}: /data is anonymous (one per container)`).toBeUndefined();
      // The base file's other mounts are kept.
      expect(v.some((x) => x.target === '/etc/enclave/tls/ca.crt'), name).toBe(true);
    }
    for (const name of ['server', 'worker']) expect(volumes(name)).toContainEqual({ type: 'volume', source: 'enclave_files', target: '/data/files' });
    expect(volumes('migrate').some((x) => x.target === '/data/files')).toBe(false);
    expect(compose.volumes?.enclave_files?.external).toBe(true);
  });

  it('external PostgreSQL: the URL comes from the database_url secret file, never the environment', () => {
    expect(compose.secrets?.database_url?.file).toBe('./secrets/database_url');
    const roles: Record<string, string> = { migrate: 'exec node dist/cli/main.js db migrate', server: 'exec node dist/server/main.js --role api', worker: 'exec node dist/server/main.js --role worker' };
    for (const [name, tail] of Object.entries(roles)) {
      const s = svc(name);
      expect((s.secrets as { source: string }[]).map((x) => x.source), name).toContain('database_url');
      const cmd = commandOf(name);
      expect(cmd.slice(0, 2), name).toEqual(['sh', '-c']);
      expect(cmd[2]!.endsWith(tail), name).toBe(true);
      const env = s.environment as Record<string, string>;
      expect(env, name).not.toHaveProperty('ENCLAVE_DATABASE_URL');
      for (const k of Object.keys(env)) if (!k.startsWith('NODE_')) expect(SETTING_ENVS.has(k), `${name}: ${k}`).toBe(true);
      // With the URL the command exports, the server's settings load (production, PostgreSQL).
      const config = loadConfig({ ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])), ENCLAVE_DATABASE_URL: 'postgres://enclave@db.test:5432/enclave?sslmode=verify-full' }, '/');
      expect(config.deployment).toBe('production');
      expect(config.databaseUrl).toMatch(/^postgres:/);
    }
  });

  it('the start command exports the secret and execs the process; an empty or missing secret stops it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-ha-'));
    try {
      const secret = path.join(dir, 'database_url');
      // The real command, with the secret path moved and the process replaced by printenv.
      const script = commandOf('server')[2]!.replace('/run/secrets/database_url', secret).replace('exec node dist/server/main.js --role api', 'exec printenv ENCLAVE_DATABASE_URL');
      writeFileSync(secret, 'postgres://enclave:pw@db.test:5432/enclave?sslmode=verify-full\n');
      expect(execFileSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH } })).toBe('postgres://enclave:pw@db.test:5432/enclave?sslmode=verify-full\n');
      writeFileSync(secret, '');
      const empty = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      expect(empty.status).not.toBe(0);
      expect(empty.stdout).toBe('');
      rmSync(secret);
      const missing = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      expect(missing.status).not.toBe(0);
      expect(missing.stdout).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the proxy spreads requests over the api replicas (variable proxy_pass re-resolved through Docker DNS)', () => {
    const conf = readFileSync(path.join(RELEASE_ROOT, 'compose/proxy/nginx.conf'), 'utf8');
    // A variable upstream is resolved per request through `resolver` (every address of the
    // scaled service; nginx starts at a random one), not once at start-up.
    expect(conf).toMatch(/^\s*resolver 127\.0\.0\.11 valid=\d+s/m);
    // The TLS server's `location /` (the port-80 one only redirects).
    const root = [...conf.matchAll(/location \/ \{([^}]*)\}/g)].map((m) => m[1]!).find((b) => b.includes('proxy_pass'))!;
    expect(root).toMatch(/set \$server http:\/\/server:8080;/);
    expect(root).toMatch(/proxy_pass \$server;/);
    expect(conf).not.toMatch(/^\s*upstream\s/m);
  });

  it('Prometheus scrapes every replica (DNS discovery) with the same flags otherwise; the config passes promtool', () => {
    const baseCmd = loadCompose(ENV).services.prometheus!.command as string[];
    const cmd = commandOf('prometheus');
    expect(cmd).toContain('--config.file=/etc/prometheus/prometheus-ha.yml');
    expect(cmd.filter((f) => !f.startsWith('--config.file='))).toEqual(baseCmd.filter((f) => !f.startsWith('--config.file=')));
    expect(volumes('prometheus')).toContainEqual(expect.objectContaining({ source: './prometheus', target: '/etc/prometheus' }));
    const file = path.join(RELEASE_ROOT, 'compose/prometheus/prometheus-ha.yml');
    const prom = parse(interpolate(readFileSync(file, 'utf8'), ENV)) as { scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[] }[] };
    const base = parse(readFileSync(path.join(RELEASE_ROOT, 'compose/prometheus/prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string }[] };
    expect(prom.scrape_configs.map((j) => j.job_name)).toEqual(base.scrape_configs.map((j) => j.job_name));
    for (const [job, service] of [['enclave-api', 'server'], ['enclave-worker', 'worker']] as const) {
      const sd = prom.scrape_configs.find((j) => j.job_name === job)!.dns_sd_configs![0]!;
      expect(sd.names).toEqual([service]);
      expect(svc(service).expose).toContain(String(sd.port));
    }
    promtoolCheckConfig(file, whichOrThrow('promtool'));
  });
});

function whichOrThrow(tool: string): string {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(path.join(d, tool))) return path.join(d, tool);
  throw new Error(`${tool} is not installed: apt-get install -y prometheus (listed in .ci/apt-packages.txt)`);
}
