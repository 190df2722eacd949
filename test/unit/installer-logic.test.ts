import { createServer, type Server } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { renderRealm, OIDC_PATHS, issuerFor } from '../../installer/realm.js';
import { createCa, issueServerCert, validateCertificate, requiredSans } from '../../installer/tls.js';
import { compareVersions, runPreflight, clockCheck, type DockerFacts } from '../../installer/preflight.js';
import { upgradePath } from '../../installer/upgrade.js';
import { resolveSettings } from '../../installer/install.js';
import { parseEnv, publicUrl } from '../../installer/env-file.js';
import { SETTINGS } from '../../server/config/settings.js';
import { loadCompose } from '../../installer/compose-model.js';
import { tempDir } from '../helpers/app.js';
import { fakeDocker } from '../helpers/fake-docker.js';

const DAY = 86_400_000;
let ca: { keyPem: string; certPem: string };
let leaf: { keyPem: string; certPem: string };
let other: { keyPem: string; certPem: string };
beforeAll(() => {
  ca = createCa('Test CA');
  leaf = issueServerCert(ca, ['enclave.test', '10.1.2.3']);
  other = issueServerCert(ca, ['enclave.test']);
});

describe('upgrade path with required version stops', () => {
  const stops = ['0.2.0', '0.4.0'];
  it('allows an upgrade that crosses no stop', () => {
    expect(upgradePath('0.1.0', '0.2.0', stops)).toMatchObject({ ok: true, path: ['0.2.0'] });
    expect(upgradePath('0.2.0', '0.3.5', stops)).toMatchObject({ ok: true, path: ['0.3.5'] });
  });
  it('refuses to skip a stop and prints the path', () => {
    const p = upgradePath('0.1.0', '0.5.0', stops);
    expect(p.ok).toBe(false);
    expect(p.path).toEqual(['0.2.0', '0.4.0', '0.5.0']);
    expect(p.message).toContain('0.1.0 -> 0.2.0 -> 0.4.0 -> 0.5.0');
  });
  it('refuses a downgrade', () => {
    expect(upgradePath('0.3.0', '0.2.0', stops)).toMatchObject({ ok: false });
    expect(upgradePath('0.3.0', '0.2.0', stops).message).toMatch(/downgrade/);
  });
  it('compares versions numerically', () => {
    expect(compareVersions('2.10.0', '2.9.9')).toBe(1);
    expect(compareVersions('v25.0.0', '25.0')).toBe(0);
    expect(compareVersions('24.0.7-ce', '25.0.0')).toBe(-1);
  });
});

describe('Keycloak realm rendering', () => {
  const input = { publicUrl: 'https://enclave.test', clientSecret: 's3cr"et\\x', adminEmail: 'ops@enclave.test', adminPassword: 'pw' };
  const realm = JSON.parse(renderRealm(input)) as {
    realm: string;
    clients: { clientId: string; secret: string; redirectUris: string[]; publicClient: boolean; implicitFlowEnabled: boolean; directAccessGrantsEnabled: boolean; attributes: Record<string, string>; protocolMappers: { protocolMapper: string; config: Record<string, string> }[] }[];
    users: { email: string; credentials: { temporary: boolean }[] }[];
  };
  const client = realm.clients[0]!;
  it('client id, redirect URI, issuer and PKCE match the server SSO settings the compose file gives it', () => {
    const compose = loadCompose({ ENCLAVE_PUBLIC_URL: input.publicUrl, ENCLAVE_HOSTNAME: 'enclave.test' });
    const env = compose.services.server!.environment as Record<string, string>;
    expect(client.clientId).toBe(SETTINGS.oidcClientId.schema.parse(undefined));
    expect(client.clientId).toBe(env.ENCLAVE_OIDC_CLIENT_ID);
    expect(client.redirectUris).toEqual([`${env.ENCLAVE_PUBLIC_URL}${OIDC_PATHS.callback}`]);
    expect(env.ENCLAVE_OIDC_ISSUER).toBe(issuerFor(input.publicUrl));
    expect(env.ENCLAVE_OIDC_ISSUER).toBe(`${input.publicUrl}/auth/realms/${realm.realm}`);
    expect(client.attributes['pkce.code.challenge.method']).toBe('S256');
  });
  it('confidential code-flow client only, back-channel logout, full-path groups', () => {
    expect(client.publicClient).toBe(false);
    expect(client.implicitFlowEnabled).toBe(false);
    expect(client.directAccessGrantsEnabled).toBe(false);
    expect(client.redirectUris.some((u) => u.includes('*'))).toBe(false);
    expect(client.attributes['backchannel.logout.url']).toBe('http://server:8080/auth/oidc/backchannel-logout');
    expect(client.attributes['post.logout.redirect.uris']).toBe('https://enclave.test/');
    const groups = client.protocolMappers.find((m) => m.protocolMapper === 'oidc-group-membership-mapper')!;
    expect(groups.config['full.path']).toBe('true');
    expect(client.protocolMappers.some((m) => m.protocolMapper === 'oidc-usermodel-realm-role-mapper' && m.config['id.token.claim'] === 'true')).toBe(true);
  });
  it('escapes values into JSON and leaves no placeholder', () => {
    expect(client.secret).toBe(input.clientSecret);
    expect(JSON.stringify(realm)).not.toContain('${');
    expect(realm.users[0]!.credentials[0]!.temporary).toBe(true);
  });
  it('refuses values that Keycloak would substitute, and unknown placeholders', () => {
    expect(() => renderRealm({ ...input, adminPassword: '${env.HOME}' })).toThrow(/must not contain/);
    expect(() => renderRealm(input, '{"a":"${NOPE}"}')).toThrow(/unknown placeholder/);
    expect(() => renderRealm(input, '{"a":"${REALM}",}')).toThrow(/not valid JSON/);
  });
});

describe('supplied certificate validation', () => {
  const names = requiredSans('enclave.test', ['10.1.2.3']);
  it('accepts a matching, covering, valid chain', () => {
    expect(validateCertificate(leaf.certPem + ca.certPem, leaf.keyPem, names, { caPem: ca.certPem })).toEqual([]);
  });
  it('refuses a key that does not match the certificate', () => {
    const p = validateCertificate(leaf.certPem, other.keyPem, names);
    expect(p.map((x) => x.message).join()).toMatch(/does not match/);
  });
  it('refuses a certificate that does not cover the hostname or IP', () => {
    expect(validateCertificate(leaf.certPem, leaf.keyPem, ['other.test'])[0]!.message).toMatch(/does not cover other.test/);
    expect(validateCertificate(other.certPem, other.keyPem, ['10.1.2.3'])[0]!.message).toMatch(/does not cover 10.1.2.3/);
  });
  it('refuses expired and flags soon-expiring certificates', () => {
    expect(validateCertificate(leaf.certPem, leaf.keyPem, names, { now: new Date(Date.now() + 400 * DAY) })[0]).toMatchObject({ status: 'fail' });
    expect(validateCertificate(leaf.certPem, leaf.keyPem, names, { now: new Date(Date.now() + 380 * DAY) })[0]).toMatchObject({ status: 'warn' });
  });
  it('refuses an encrypted key, garbage, and a chain from another CA', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const enc = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
    expect(validateCertificate(leaf.certPem, enc, names).map((x) => x.message).join()).toMatch(/encrypted/);
    expect(validateCertificate('not a cert', leaf.keyPem, names)[0]!.message).toMatch(/no PEM/);
    const ca2 = createCa('Other CA');
    expect(validateCertificate(leaf.certPem, leaf.keyPem, names, { caPem: ca2.certPem }).map((x) => x.message).join()).toMatch(/did not issue/);
  });
});

describe('preflight', () => {
  const good: DockerFacts = { serverVersion: '28.2.2', composeVersion: '2.36.2', ncpu: 8, memTotal: 16 * 1024 ** 3, runtimes: ['runc'] };
  const dir = tempDir('enclave-preflight-');
  const base = { dir, ports: [] as number[], ollama: false, skip: ['root', 'disk', 'clock'] };
  const byId = (r: { checks: { id: string; status: string; message: string }[] }, id: string) => r.checks.find((c) => c.id === id)!;
  let busy: Server;
  let busyPort = 0;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    busyPort = (busy.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => busy.close(() => r())));

  it('passes on a good host', async () => {
    const r = await runPreflight(base, good);
    expect(r.status).toBe('warn'); // the skipped checks are warnings
    expect(r.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(byId(r, 'disk').message).toMatch(/skipped \(--skip-check disk\)/);
  });
  it('fails when the daemon is down, Docker or Compose are too old', async () => {
    expect(byId(await runPreflight(base, { runtimes: [], error: 'the Docker daemon is not reachable' }), 'docker').status).toBe('fail');
    expect(byId(await runPreflight(base, { ...good, serverVersion: '24.0.7' }), 'docker').status).toBe('fail');
    const r = await runPreflight(base, { ...good, composeVersion: '2.20.0' });
    expect(byId(r, 'compose')).toMatchObject({ status: 'fail' });
    expect(byId(await runPreflight(base, { ...good, composeVersion: undefined }), 'compose').message).toMatch(/plugin is missing/);
  });
  it('CPU and memory as Docker sees them, stricter with the ollama profile', async () => {
    expect(byId(await runPreflight(base, { ...good, ncpu: 1 }), 'cpu').status).toBe('fail');
    expect(byId(await runPreflight(base, { ...good, ncpu: 2 }), 'cpu').status).toBe('warn');
    expect(byId(await runPreflight(base, { ...good, memTotal: 2 * 1024 ** 3 }), 'memory').status).toBe('fail');
    expect(byId(await runPreflight({ ...base, ollama: true }, { ...good, memTotal: 6 * 1024 ** 3, runtimes: ['runc', 'nvidia'] }), 'memory').status).toBe('fail');
  });
  it('the ollama profile needs the nvidia runtime', async () => {
    expect(byId(await runPreflight({ ...base, ollama: true }, good), 'gpu').message).toMatch(/NVIDIA Container Toolkit/);
    expect(byId(await runPreflight({ ...base, ollama: true }, { ...good, runtimes: ['nvidia'] }), 'gpu').status).toBe('ok');
    expect((await runPreflight(base, good)).checks.some((c) => c.id === 'gpu')).toBe(false);
  });
  it('a port in use fails, unless it is our own running proxy', async () => {
    const r = await runPreflight({ ...base, ports: [busyPort] }, good);
    expect(byId(r, 'ports')).toMatchObject({ status: 'fail' });
    expect(byId(r, 'ports').message).toContain(String(busyPort));
    expect(byId(await runPreflight({ ...base, ports: [busyPort], portsOwnedByUs: true }, good), 'ports').status).toBe('ok');
  });
  it('clock: synchronized, NTP starting, NTP off', async () => {
    const fd = fakeDocker();
    expect((await fd.withEnv(async () => clockCheck())).status).toBe('ok');
    expect((await fd.withEnv(async () => clockCheck(), { FAKE_NTP_SYNC: 'no' })).status).toBe('warn');
    expect((await fd.withEnv(async () => clockCheck(), { FAKE_NTP_SYNC: 'no', FAKE_NTP: 'no' })).status).toBe('fail');
  });
  it('reads Docker facts through the docker CLI on PATH', async () => {
    const fd = fakeDocker();
    const r = await fd.withEnv(() => runPreflight(base), { FAKE_DOCKER_NCPU: '3', FAKE_COMPOSE_VERSION: '2.30.0' });
    expect(byId(r, 'cpu')).toMatchObject({ status: 'warn', message: expect.stringContaining('3 CPUs') });
    expect(byId(r, 'compose').message).toContain('2.30.0');
    const down = await fd.withEnv(() => runPreflight(base), { FAKE_DOCKER_DOWN: '1' });
    expect(byId(down, 'docker').message).toMatch(/Cannot connect to the Docker daemon/);
  });
});

describe('install settings', () => {
  it('needs a hostname on the first run and validates flags', () => {
    const dir = tempDir('enclave-settings-');
    expect(() => resolveSettings({ dir })).toThrow(/--hostname/);
    expect(() => resolveSettings({ dir, hostname: 'bad host' })).toThrow(/not a valid DNS name/);
    expect(() => resolveSettings({ dir, hostname: 'e.test', adminEmail: 'nope' })).toThrow(/not an email/);
    expect(resolveSettings({ dir, hostname: 'E.Test', httpsPort: 8443 }).env.ENCLAVE_PUBLIC_URL).toBe('https://e.test:8443');
  });
  it('public URL and .env parsing', () => {
    expect(publicUrl('10.0.0.1', 443)).toBe('https://10.0.0.1');
    expect(publicUrl('::1', 8443)).toBe('https://[::1]:8443');
    expect(parseEnv('# c\nA=1\nB="x y"\n\nC=')).toEqual({ A: '1', B: 'x y', C: '' });
  });
});
