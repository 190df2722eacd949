import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { afterAll, describe, expect, it } from 'vitest';
import { DATA_DIR, generateManifests, SECRETS_DIR, type K8sObject } from '../../deploy/kubernetes/manifests.js';
import { examplePath, loadValues } from '../../deploy/kubernetes/render.js';
import { parseValues } from '../../deploy/kubernetes/values.js';
import { tempDir, testRedisUrl } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { nodeArgs } from '../helpers/compiled.js';
import { freshDatabase } from '../helpers/postgres.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The generated pods' containers run as Kubernetes would run them, here as processes: their
 * args (the image's `node dist/...` mapped to this run's compiled sources), their environment
 * (Secret files written to a temp dir standing in for /run/secrets/enclave, secretKeyRef URLs
 * pointing at the test Redis and PostgreSQL), their probes asked over HTTP or exec'd. No OIDC
 * (the example's IdP is not on this machine), no private CA.
 *
 * embedded: the init container migrates, the `--role all` container gets ready, answers its
 * probes, writes the heartbeat, and drains on SIGTERM well within its grace period.
 * postgres: the init container waits until the Job has migrated, then the api container is run
 * and what it does (ready, or the refusal of this version) must be what
 * docs/install-kubernetes.md says works today.
 */

const started: ServerProcess[] = [];
afterAll(async () => {
  for (const s of started) {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await s.exited();
  }
});

interface Pod {
  readonly objects: K8sObject[];
  readonly dataDir: string;
  readonly secretsDir: string;
}

function podFor(mode: 'embedded' | 'postgres'): Pod & { grace: (component: string) => number; container: (owner: string, name: string) => IContainer } {
  const raw = JSON.parse(JSON.stringify(loadValues(examplePath(mode)))) as Record<string, unknown>;
  delete raw.oidc;
  delete raw.trustedCaSecret;
  if (raw.database) delete (raw.database as Record<string, unknown>).caSecret;
  const objects = generateManifests(parseValues(raw));
  const dataDir = tempDir('k8s-pod-data-');
  const secretsDir = tempDir('k8s-pod-secrets-');
  // What kubelet projects from enclave-secrets.
  writeFileSync(path.join(secretsDir, 'master_key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o440 });
  writeFileSync(path.join(secretsDir, 'metrics_token'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o440 });
  const deployments = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'Job') as Extract<K8sObject, { kind: 'Deployment' | 'Job' }>[];
  const specOf = (owner: string) => deployments.find((d) => d.metadata!.name!.startsWith(owner))!.spec!.template.spec!;
  return {
    objects,
    dataDir,
    secretsDir,
    grace: (owner) => specOf(owner).terminationGracePeriodSeconds!,
    container: (owner, name) => [...(specOf(owner).initContainers ?? []), ...specOf(owner).containers].find((c) => c.name === name)!,
  };
}

/** The container's environment on this machine: paths moved, secretKeyRefs resolved, no PORT/HOST (spawnServer picks them). */
function envOf(c: IContainer, pod: Pod, urls: { database?: string } = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const e of c.env ?? []) {
    if (e.valueFrom?.secretKeyRef) env[e.name] = e.name === 'REDIS_URL' ? testRedisUrl() : urls.database;
    else env[e.name] = (e.value ?? '').replace(SECRETS_DIR, pod.secretsDir).replace(new RegExp(`^${DATA_DIR}(?=/|$)`), pod.dataDir);
  }
  expect(env.ENCLAVE_DATA_DIR).toBe(pod.dataDir);
  return env;
}

/** `node dist/cli/main.js` of the image → this run's compiled CLI, for the init container's shell script. */
const localCommandLine = (): string => [process.execPath, ...nodeArgs('cli/main.ts')].map((a) => `'${a}'`).join(' ');

async function startContainer(c: IContainer, env: Record<string, string | undefined>): Promise<ServerProcess> {
  const args = c.args!;
  expect(args.slice(0, 3)).toEqual(['node', 'dist/server/main.js', '--role']);
  const { PORT: _port, ENCLAVE_HOST: _host, ...rest } = env;
  // spawnServer runs server/main.ts with --role <role> on a free loopback port.
  const s = await spawnServer({ role: args[3]!, env: { ...rest, ENCLAVE_MASTER_KEY: undefined }, waitReady: false });
  started.push(s);
  return s;
}

async function probe(s: ServerProcess, c: IContainer, which: 'startupProbe' | 'livenessProbe' | 'readinessProbe'): Promise<number> {
  const res = await fetch(s.url + c[which]!.httpGet!.path).catch(() => undefined);
  return res?.status ?? 0;
}

describe('generated pods, run as processes', () => {
  it('embedded: init migrate, then --role all gets ready, answers its probes, beats, and drains within its grace period', async () => {
    const pod = podFor('embedded');
    const migrate = pod.container('enclave', 'migrate');
    expect(migrate.args!.slice(0, 2)).toEqual(['node', 'dist/cli/main.js']);
    const r = await runCli(migrate.args!.slice(2), envOf(migrate, pod));
    expect(r.code, r.stderr).toBe(0);

    const main = pod.container('enclave', 'enclave');
    const s = await startContainer(main, envOf(main, pod));
    // As kubelet: the startup probe until it answers, then readiness.
    await waitFor(() => probe(s, main, 'startupProbe'), { until: (st) => st === 200, timeout: 45_000, interval: 200, what: 'startup probe' });
    await waitFor(() => probe(s, main, 'readinessProbe'), { until: (st) => st === 200, timeout: 30_000, interval: 200, what: 'readiness probe' });
    expect(await probe(s, main, 'livenessProbe')).toBe(200);
    // The worker role runs in this process too: its heartbeat file is what a worker probe reads.
    await waitFor(() => readFileSync(path.join(pod.dataDir, 'worker.heartbeat'), 'utf8'), { until: (t) => Date.now() - Number(t) < 30_000, timeout: 20_000, interval: 200, what: 'heartbeat' });

    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const { code } = await s.exited();
    const drainMs = Date.now() - t0;
    expect(code).toBe(0);
    // Idle, the drain is quick; the grace period is sized for a full shutdown timeout.
    expect(drainMs).toBeLessThan(pod.grace('enclave') * 1000);
    console.log(`embedded pod: SIGTERM to exit ${drainMs} ms (grace period ${pod.grace('enclave')} s)`);
  });

  it('postgres: the pods wait for the migrations Job; then the api container runs on PostgreSQL, gets ready and drains', async () => {
    const pod = podFor('postgres');
    const database = await freshDatabase('k8s');
    mkdirSync(path.join(pod.dataDir, 'files'));

    // The api pod's init container, started before the Job: it keeps waiting while migrations are pending.
    const init = pod.container('enclave-api', 'wait-for-schema');
    expect(init.args!.slice(0, 2)).toEqual(['sh', '-c']);
    const script = init.args![2]!.replaceAll('node dist/cli/main.js', localCommandLine());
    const cliEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ENCLAVE_') && k !== 'REDIS_URL') cliEnv[k] = v;
    for (const [k, v] of Object.entries(envOf(init, pod, { database }))) if (v !== undefined) cliEnv[k] = v;
    const waiting = spawn('sh', ['-c', script], { env: cliEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let waitErr = '';
    waiting.stderr!.on('data', (d: Buffer) => (waitErr += d.toString()));
    const waited = new Promise<number | null>((resolve) => waiting.once('exit', (code) => resolve(code)));
    await waitFor(() => waitErr, { until: (e) => e.includes('pending migrations'), timeout: 30_000, interval: 100, what: 'init container sees pending migrations' });
    expect(waiting.exitCode).toBeNull();

    // The Job: enclave db migrate, with the Job's environment.
    const job = pod.container('enclave-migrate', 'migrate');
    expect(job.args).toEqual(['node', 'dist/cli/main.js', 'db', 'migrate']);
    const migrated = await runCli(['db', 'migrate'], envOf(job, pod, { database }));
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/^applied: /);
    // The init container lets the pod start once the schema is current (it retries every 3 s).
    expect(await waited).toBe(0);
    expect(spawnSync('sh', ['-c', script], { env: cliEnv }).status).toBe(0);

    const api = pod.container('enclave-api', 'api');
    const s = await startContainer(api, envOf(api, pod, { database }));
    await waitFor(() => probe(s, api, 'readinessProbe'), { until: (st) => st === 200, timeout: 45_000, interval: 200, what: 'api readiness on PostgreSQL' });
    expect(await probe(s, api, 'livenessProbe')).toBe(200);
    s.child.kill('SIGTERM');
    expect((await s.exited()).code).toBe(0);
  });
});
