import { spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCompose, type ComposeService } from '../../installer/compose-model.js';
import { readEnvFile } from '../../installer/env-file.js';
import { GID, RELEASE_ROOT, UID, VOLUMES } from '../../installer/layout.js';
import { OIDC_PATHS } from '../../installer/realm.js';
import { SECRET_SPECS } from '../../installer/secrets.js';
import { createCa, issueServerCert, splitPem } from '../../installer/tls.js';
import { upgrade } from '../../installer/upgrade.js';
import { SETTINGS } from '../../server/config/settings.js';
import { tempDir } from '../helpers/app.js';
import { fakeDocker, type FakeDocker } from '../helpers/fake-docker.js';

const IS_ROOT = process.getuid?.() === 0;
/** Not root: the installer cannot hand files to the containers' users, so they stay the caller's (checked either way). */
const ME = { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
// Disk usage depends on the CI machine; root is needed only to chown (checked when we are root).
const SKIP = ['--skip-check', 'disk', ...(IS_ROOT ? [] : ['--skip-check', 'root'])];

function script(name: string, args: string[], fd: FakeDocker, env: Record<string, string> = {}) {
  const r = spawnSync('bash', [path.join(RELEASE_ROOT, 'installer', name), ...args], {
    env: { ...fd.env, ENCLAVE_INSTALLER_FROM_SOURCE: '1', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Content hash, mode, owner and mtime of every file under dir. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = statSync(p);
      if (e.isDirectory()) {
        out[path.relative(dir, p) + '/'] = `${(st.mode & 0o7777).toString(8)} ${st.uid}`;
        walk(p);
      } else {
        out[path.relative(dir, p)] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`;
      }
    }
  };
  walk(dir);
  return out;
}

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

let fd: FakeDocker;
let dir: string;
let ports: string[];
let first: ReturnType<typeof script>;

beforeAll(async () => {
  fd = fakeDocker();
  dir = path.join(tempDir('enclave-install-'), 'enclave');
  ports = ['--http-port', String(await freePort()), '--https-port', String(await freePort())];
  first = script('install.sh', ['--dir', dir, '--hostname', 'enclave.test', '--san', '127.0.0.1', '--admin-email', 'ops@enclave.test', ...ports, ...SKIP, '--yes'], fd);
}, 60_000);

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('install.sh with a fake docker', { shuffle: false }, () => {
  it('succeeds and prints the URL, the first admin credentials location and next steps', () => {
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const httpsPort = ports[3]!;
    expect(first.stdout).toContain(`running at https://enclave.test:${httpsPort}`);
    expect(first.stdout).toContain(path.join(dir, 'secrets', 'first_admin_password'));
    expect(first.stdout).toContain('next steps:');
    expect(first.stdout).toMatch(/\[PASS\] docker +Docker Engine 28\.2\.2/);
  });

  it('generates secrets (0600, container owners when root), TLS, realm and .env', () => {
    for (const s of SECRET_SPECS) {
      const f = path.join(dir, 'secrets', s.name);
      expect(mode(f), s.name).toBe((s.mode ?? 0o600).toString(8));
      expect(readFileSync(f, 'utf8').trim().length, s.name).toBeGreaterThanOrEqual(16);
      expect(statSync(f).uid, s.name).toBe(IS_ROOT ? UID[s.owner] : ME.uid);
    }
    // The metrics token: Prometheus' user owns it, the enclave containers read it through their group.
    expect(mode(path.join(dir, 'secrets/metrics_token'))).toBe('640');
    expect(statSync(path.join(dir, 'secrets/metrics_token')).gid).toBe(IS_ROOT ? GID.enclave : ME.gid);
    expect(Buffer.from(readFileSync(path.join(dir, 'secrets/master_key'), 'utf8').trim(), 'base64')).toHaveLength(32);
    expect(mode(path.join(dir, 'secrets'))).toBe('700');
    expect(mode(path.join(dir, 'tls/ca.key'))).toBe('600');
    expect(mode(path.join(dir, 'tls/server.key'))).toBe('600');
    expect(mode(path.join(dir, 'tls/server.crt'))).toBe('644');
    expect(mode(path.join(dir, 'keycloak/import/enclave-realm.json'))).toBe('600');
    expect(statSync(path.join(dir, 'tls/server.key')).uid).toBe(IS_ROOT ? UID.nginx : ME.uid);
    const env = readEnvFile(path.join(dir, '.env'));
    expect(env).toMatchObject({ ENCLAVE_HOSTNAME: 'enclave.test', ENCLAVE_PUBLIC_URL: `https://enclave.test:${ports[3]}`, COMPOSE_PROFILES: '' });
    // No secret value leaks into .env.
    const envText = readFileSync(path.join(dir, '.env'), 'utf8');
    for (const s of SECRET_SPECS) expect(envText).not.toContain(readFileSync(path.join(dir, 'secrets', s.name), 'utf8').trim());
  });

  it('creates the external volumes and starts with --wait', () => {
    const calls = fd.calls();
    for (const v of VOLUMES) expect(calls).toContain(`volume create --label com.enclave.volume=true ${v}`);
    expect(calls.some((c) => c.includes(' pull --policy missing'))).toBe(true);
    expect(calls.some((c) => /compose .* up -d --wait/.test(c))).toBe(true);
  });

  it('the compose file renders with the generated .env and every bind-mount source exists', () => {
    const compose = loadCompose(readEnvFile(path.join(dir, '.env')), path.join(dir, 'docker-compose.yml'));
    for (const [name, s] of Object.entries(compose.services) as [string, ComposeService][]) {
      for (const v of s.volumes ?? []) {
        const src = typeof v === 'string' ? v.split(':')[0]! : v.source;
        if (src.startsWith('./')) expect(existsSync(path.join(dir, src)), `${name}: ${src}`).toBe(true);
      }
    }
    for (const sec of Object.values(compose.secrets ?? {})) expect(existsSync(path.join(dir, sec.file!))).toBe(true);
    // Non-443 public port: the proxy also listens on it for calls from inside the stack.
    expect(readFileSync(path.join(dir, 'proxy/nginx.conf'), 'utf8')).toContain(`listen ${ports[3]} ssl;`);
    expect(readFileSync(path.join(dir, 'proxy/nginx.conf'), 'utf8')).toContain(`return 308 https://$host:${ports[3]}$request_uri;`);
  });

  it('the certificate chain verifies with openssl and carries the SANs', () => {
    const openssl = '/usr/bin/openssl';
    if (!existsSync(openssl)) throw new Error('openssl is not installed: apt-get install -y openssl (listed in .ci/apt-packages.txt)');
    const chain = splitPem(readFileSync(path.join(dir, 'tls/server.crt'), 'utf8'));
    const leafFile = path.join(tempDir('enclave-leaf-'), 'leaf.pem');
    writeFileSync(leafFile, chain[0]!);
    const out = execFileSync(openssl, ['verify', '-purpose', 'sslserver', '-CAfile', path.join(dir, 'tls/ca.crt'), leafFile], { encoding: 'utf8' });
    expect(out.trim()).toBe(`${leafFile}: OK`);
    const text = execFileSync(openssl, ['x509', '-in', leafFile, '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toContain('DNS:enclave.test');
    expect(text).toContain('IP Address:127.0.0.1');
    expect(text).toMatch(/TLS Web Server Authentication/);
    const caText = execFileSync(openssl, ['x509', '-in', path.join(dir, 'tls/ca.crt'), '-noout', '-text'], { encoding: 'utf8' });
    expect(caText).toMatch(/CA:TRUE, pathlen:0/);
    // The key in tls/server.key belongs to the certificate.
    const mod = (args: string[]) => execFileSync(openssl, args, { encoding: 'utf8' }).trim();
    expect(mod(['rsa', '-in', path.join(dir, 'tls/server.key'), '-noout', '-modulus'])).toBe(mod(['x509', '-in', leafFile, '-noout', '-modulus']));
  });

  it('the rendered realm is valid JSON whose client id, redirect URI and PKCE match the server SSO settings', () => {
    const realm = JSON.parse(readFileSync(path.join(dir, 'keycloak/import/enclave-realm.json'), 'utf8')) as {
      realm: string;
      clients: { clientId: string; secret: string; redirectUris: string[]; attributes: Record<string, string> }[];
      users: { email: string }[];
    };
    const env = readEnvFile(path.join(dir, '.env'));
    const compose = loadCompose(env, path.join(dir, 'docker-compose.yml'));
    const serverEnv = compose.services.server!.environment as Record<string, string>;
    const client = realm.clients.find((c) => c.clientId === serverEnv.ENCLAVE_OIDC_CLIENT_ID)!;
    expect(client).toBeDefined();
    expect(client.clientId).toBe(SETTINGS.oidcClientId.schema.parse(undefined));
    expect(client.redirectUris).toEqual([serverEnv.ENCLAVE_PUBLIC_URL + OIDC_PATHS.callback]);
    expect(client.attributes['pkce.code.challenge.method']).toBe('S256');
    expect(serverEnv.ENCLAVE_OIDC_ISSUER).toBe(`${env.ENCLAVE_PUBLIC_URL}/auth/realms/${realm.realm}`);
    expect(client.secret).toBe(readFileSync(path.join(dir, 'secrets/oidc_client_secret'), 'utf8').trim());
    expect(realm.users[0]!.email).toBe('ops@enclave.test');
  });

  it('a second run (no flags but --dir) changes nothing', () => {
    const before = snapshot(dir);
    const callsBefore = fd.calls().length;
    const again = script('install.sh', ['--dir', dir, ...SKIP], fd);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/^(created|updated) /m);
    expect(snapshot(dir)).toEqual(before);
    const newCalls = fd.calls().slice(callsBefore);
    expect(newCalls.filter((c) => c.startsWith('volume create'))).toEqual([]);
    // The running proxy owns the published ports: not reported as a conflict.
    expect(again.stdout).toMatch(/\[PASS\] ports +ports .* are served by this Enclave's proxy/);
  });

  it('a supplied certificate with a mismatched key is refused and nothing is changed', () => {
    const ca = createCa('Customer CA');
    const a = issueServerCert(ca, ['enclave.test']);
    const b = issueServerCert(ca, ['enclave.test']);
    const t = tempDir('enclave-supplied-');
    writeFileSync(path.join(t, 'a.crt'), a.certPem + ca.certPem);
    writeFileSync(path.join(t, 'b.key'), b.keyPem);
    writeFileSync(path.join(t, 'a.key'), a.keyPem);
    writeFileSync(path.join(t, 'ca.crt'), ca.certPem);
    const before = snapshot(dir);
    const r = script('install.sh', ['--dir', dir, '--tls-cert', path.join(t, 'a.crt'), '--tls-key', path.join(t, 'b.key'), ...SKIP], fd);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/supplied TLS certificate refused: .*does not match/);
    const after = snapshot(dir);
    expect(after['tls/server.crt']).toBe(before['tls/server.crt']);
    expect(after['tls/server.key']).toBe(before['tls/server.key']);

    // A good one for another host name is refused too; a matching one is installed.
    const wrongName = script('install.sh', ['--dir', dir, '--hostname', 'other.test', '--tls-cert', path.join(t, 'a.crt'), '--tls-key', path.join(t, 'a.key'), '--no-start', ...SKIP], fd);
    expect(wrongName.stderr).toMatch(/does not cover other.test/);
    const fresh = path.join(tempDir('enclave-install2-'), 'enclave');
    const ok = script('install.sh', ['--dir', fresh, '--hostname', 'enclave.test', '--tls-cert', path.join(t, 'a.crt'), '--tls-key', path.join(t, 'a.key'), '--tls-ca', path.join(t, 'ca.crt'), '--no-start', ...ports, ...SKIP], fd);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(readFileSync(path.join(fresh, 'tls/server.key'), 'utf8')).toBe(a.keyPem);
    expect(readFileSync(path.join(fresh, 'tls/ca.crt'), 'utf8')).toBe(ca.certPem);
    expect(existsSync(path.join(fresh, 'tls/ca.key'))).toBe(false);
  });

  it('a failed preflight stops before anything is written', () => {
    const fresh = path.join(tempDir('enclave-install3-'), 'enclave');
    const r = script('install.sh', ['--dir', fresh, '--hostname', 'enclave.test', ...ports, ...SKIP], fd, { FAKE_DOCKER_DOWN: '1' });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/\[FAIL\] docker +the Docker daemon is not reachable/);
    expect(r.stderr).toMatch(/preflight failed \(docker, compose, cpu, memory\)/);
    expect(existsSync(path.join(fresh, 'secrets'))).toBe(false);
  });

  it('upgrade refuses to skip a required stop, then runs backup -> images -> stop -> migrate -> up -> verify', async () => {
    const lines: string[] = [];
    await expect(
      fd.withEnv(() => upgrade({ dir, to: '0.5.0', stops: ['0.3.0'], skipChecks: ['disk', 'root'], out: (l) => lines.push(l) })),
    ).rejects.toThrow(/skip required version stop\(s\) 0\.3\.0; upgrade in order: 0\.1\.0 -> 0\.3\.0 -> 0\.5\.0/);
    const start = fd.calls().length;
    const r = await fd.withEnv(() => upgrade({ dir, to: '0.2.0', stops: ['0.3.0'], skipChecks: ['disk', 'root'], out: (l) => lines.push(l) }));
    expect(r).toMatchObject({ from: '0.1.0', to: '0.2.0' });
    expect(readEnvFile(path.join(dir, '.env')).ENCLAVE_VERSION).toBe('0.2.0');
    const calls = fd.calls().slice(start);
    const idx = (re: RegExp): number => calls.findIndex((c) => re.test(c));
    const order = [/ run --rm --no-deps -T -v .* migrate .* backup create/, / pull --policy missing/, / stop --timeout \d+ worker/, / stop --timeout \d+ server/, / run --rm migrate$/, / up -d --wait/, / exec -T server .* doctor --json/, / exec -T server .*readyz/].map(idx);
    expect(order.every((i) => i >= 0), calls.join('\n')).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // The backup ran with the old image (before .env moved to the new version).
    const failing = await fd
      .withEnv(() => upgrade({ dir, to: '0.2.1', stops: [], skipChecks: ['disk', 'root'], out: () => {} }), { FAKE_DOCKER_FAIL: 'backup create' })
      .catch((e: Error) => e);
    expect(String(failing)).toMatch(/backup failed, nothing was changed/);
    expect(readEnvFile(path.join(dir, '.env')).ENCLAVE_VERSION).toBe('0.2.0');
  });

  it('uninstall keeps data unless told otherwise', () => {
    const start = fd.calls().length;
    const r = script('uninstall.sh', ['--dir', dir], fd);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/data kept in volumes/);
    let calls = fd.calls().slice(start);
    expect(calls.some((c) => / down --remove-orphans$/.test(c))).toBe(true);
    expect(calls.some((c) => / -v\b|volumes/.test(c) && c.includes('down'))).toBe(false);
    expect(calls.some((c) => c.startsWith('volume rm'))).toBe(false);
    expect(existsSync(path.join(dir, 'secrets/master_key'))).toBe(true);

    const noYes = script('uninstall.sh', ['--dir', dir, '--delete-data'], fd);
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toMatch(/add --yes/);
    expect(script('uninstall.sh', ['--dir', dir, '--purge', '--yes'], fd).stderr).toMatch(/needs --delete-data/);

    const del = script('uninstall.sh', ['--dir', dir, '--delete-data', '--yes'], fd);
    expect(del.code).toBe(0);
    calls = fd.calls().slice(start);
    for (const v of VOLUMES) expect(calls).toContain(`volume rm ${v}`);
    expect(existsSync(path.join(dir, 'secrets/master_key'))).toBe(true);
  });
});
