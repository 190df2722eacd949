import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_DIR, generateManifests, HTTP_PORT, requiredSecrets, type K8sObject } from '../../deploy/kubernetes/manifests.js';
import { EXAMPLES, examplePath, generatedPath, loadValues, renderYaml } from '../../deploy/kubernetes/render.js';
import { validateObjects } from '../../deploy/kubernetes/validate.js';
import { parseValues, ValuesError, type Values } from '../../deploy/kubernetes/values.js';
import { loadConfig } from '../../server/config/load.js';
import { SETTINGS } from '../../server/config/settings.js';
import { Readiness } from '../../server/health/readiness.js';
import { healthRouter } from '../../server/health/routes.js';
import { CLOSE_GRACE_MS, HEARTBEAT_FILE } from '../../server/jobs/worker.js';
import { RELEASE_ROOT } from '../../installer/layout.js';

/**
 * The Kubernetes manifests (deploy/kubernetes, docs/install-kubernetes.md): both modes pass
 * the Kubernetes object schemas offline (kubernetes-models), the committed YAML is exactly the
 * generator's output, and the invariants a reviewer would otherwise check by eye.
 */

const SETTING_BY_ENV = new Map(Object.values(SETTINGS).map((s) => [s.env, s]));
const rel = (mode: string): string => path.relative(RELEASE_ROOT, examplePath(mode));

interface Pod {
  readonly owner: string;
  readonly spec: IPodSpec;
  readonly labels: Record<string, string>;
}

function pods(objects: K8sObject[]): Pod[] {
  const out: Pod[] = [];
  for (const o of objects) {
    if (o.kind === 'Deployment' || o.kind === 'Job') {
      const t = o.spec!.template;
      out.push({ owner: `${o.kind}/${o.metadata!.name}`, spec: t.spec!, labels: (t.metadata?.labels ?? {}) as Record<string, string> });
    }
  }
  return out;
}
const allContainers = (p: Pod): IContainer[] => [...(p.spec.initContainers ?? []), ...p.spec.containers];
const byKind = <K extends K8sObject['kind']>(objects: K8sObject[], kind: K): Extract<K8sObject, { kind: K }>[] =>
  objects.filter((o): o is Extract<K8sObject, { kind: K }> => o.kind === kind);
const envMap = (c: IContainer): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    // secretKeyRef values: a placeholder of the shape the setting expects.
    if (e.valueFrom?.secretKeyRef) out[e.name] = e.name === 'ENCLAVE_DATABASE_URL' ? 'postgres://enclave@db.test:5432/enclave?sslmode=verify-full' : 'redis://redis.test:6379/0';
    else out[e.name] = e.value ?? '';
  }
  return out;
};

const modes = EXAMPLES.map((mode) => {
  const values = loadValues(examplePath(mode));
  return { mode, values, objects: generateManifests(values) };
});

describe('Kubernetes manifests', () => {
  it('both modes pass the Kubernetes object schemas (kubernetes-models, offline)', () => {
    for (const { mode, objects } of modes) {
      expect(objects.length, mode).toBeGreaterThan(5);
      expect(validateObjects(objects), mode).toEqual([]);
    }
    // The validator does catch a wrong object (so the check above means something).
    const broken = structuredClone(modes[0]!.objects);
    const dep = byKind(broken, 'Deployment')[0]!;
    (dep.spec!.template.spec!.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = 'eighty';
    expect(validateObjects(broken).join('\n')).toMatch(/containerPort must be integer/);
  });

  it('the committed YAML is the generator output (regenerate with npm run k8s:generate; never hand-edit)', () => {
    for (const { mode, values } of modes) {
      const committed = readFileSync(generatedPath(mode), 'utf8');
      expect(committed, `deploy/kubernetes/generated/${mode}.yaml differs from the generator: run npm run k8s:generate`).toBe(renderYaml(values, rel(mode)));
      // And it parses back to the same objects.
      const docs = parseAllDocuments(committed).map((d) => d.toJS() as unknown);
      expect(docs).toEqual(JSON.parse(JSON.stringify(generateManifests(values))));
    }
  });

  it('every container: non-root, read-only root filesystem, no privilege escalation, ALL capabilities dropped, seccomp, limits, this image', () => {
    for (const { mode, values, objects } of modes) {
      const image = `${values.image.repository}:${values.image.tag}${values.image.digest ? `@${values.image.digest}` : ''}`;
      for (const p of pods(objects)) {
        const where = `${mode} ${p.owner}`;
        expect(p.spec.securityContext?.runAsNonRoot, where).toBe(true);
        expect(p.spec.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
        expect(p.spec.automountServiceAccountToken, where).toBe(false);
        // A Service named "enclave" would inject ENCLAVE_SERVICE_HOST & co. into every pod.
        expect(p.spec.enableServiceLinks, where).toBe(false);
        const volumes = new Map((p.spec.volumes ?? []).map((v) => [v.name, v]));
        for (const c of allContainers(p)) {
          const at = `${where} ${c.name}`;
          expect(c.image, at).toBe(image);
          expect(c.command, `${at}: args keep tini as PID 1`).toBeUndefined();
          const sc = c.securityContext!;
          expect(sc.runAsNonRoot, at).toBe(true);
          expect(sc.runAsUser, at).not.toBe(0);
          expect(sc.readOnlyRootFilesystem, at).toBe(true);
          expect(sc.allowPrivilegeEscalation, at).toBe(false);
          expect(sc.capabilities?.drop, at).toEqual(['ALL']);
          expect(sc.capabilities?.add, at).toBeUndefined();
          expect(sc.privileged, at).toBeUndefined();
          for (const k of ['cpu', 'memory'] as const) {
            expect(c.resources?.limits?.[k], `${at} limit ${k}`).toBeDefined();
            expect(c.resources?.requests?.[k], `${at} request ${k}`).toBeDefined();
          }
          // What the app writes is a volume: /tmp and the data dir (compose: tmpfs /tmp + /data).
          const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.mountPath, m]));
          expect(volumes.get(mounts.get('/tmp')!.name)?.emptyDir, `${at} /tmp`).toBeDefined();
          expect(mounts.get(DATA_DIR)?.readOnly, `${at} /data writable`).toBeFalsy();
          for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${at} mount ${m.name}`).toBe(true);
        }
      }
    }
  });

  it('cross-object references resolve (what the schema check cannot see)', () => {
    for (const { mode, values, objects } of modes) {
      const podList = pods(objects);
      const matches = (sel: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
        !!sel && Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels[k] === v);
      for (const d of byKind(objects, 'Deployment')) {
        expect(matches(d.spec!.selector.matchLabels, (d.spec!.template.metadata?.labels ?? {}) as Record<string, string>), `${mode} ${d.metadata!.name} selector`).toBe(true);
      }
      const names = (kind: K8sObject['kind']): string[] => objects.filter((o) => o.kind === kind).map((o) => o.metadata!.name!);
      for (const o of objects) expect(o.metadata!.namespace, `${mode} ${o.kind}`).toBe(values.namespace);
      for (const svc of byKind(objects, 'Service')) {
        const backs = podList.filter((p) => matches(svc.spec!.selector, p.labels));
        expect(backs.length, `${mode} Service ${svc.metadata!.name} selects pods`).toBeGreaterThan(0);
        for (const port of svc.spec!.ports!) for (const p of backs) expect(p.spec.containers.some((c) => c.ports?.some((cp) => cp.name === port.targetPort))).toBe(true);
      }
      for (const ing of byKind(objects, 'Ingress')) {
        for (const rule of ing.spec!.rules!) {
          for (const path of rule.http!.paths) {
            const svc = byKind(objects, 'Service').find((x) => x.metadata!.name === path.backend.service!.name)!;
            expect(svc, `${mode} Ingress backend`).toBeDefined();
            expect(svc.spec!.ports!.map((x) => x.name)).toContain(path.backend.service!.port!.name);
          }
        }
      }
      for (const hpa of byKind(objects, 'HorizontalPodAutoscaler')) expect(names('Deployment')).toContain(hpa.spec!.scaleTargetRef.name);
      for (const pdb of byKind(objects, 'PodDisruptionBudget')) expect(podList.some((p) => matches(pdb.spec!.selector!.matchLabels, p.labels)), `${mode} PDB ${pdb.metadata!.name}`).toBe(true);
      for (const p of podList) {
        expect(names('ServiceAccount')).toContain(p.spec.serviceAccountName);
        for (const v of p.spec.volumes ?? []) {
          // The restricted Pod Security Standard's volume types (the namespace enforces it).
          expect(Object.keys(v).filter((k) => k !== 'name'), `${mode} ${p.owner} volume ${v.name}`).toEqual([expect.stringMatching(/^(emptyDir|projected|persistentVolumeClaim|secret|configMap)$/)]);
          if (v.persistentVolumeClaim) expect(names('PersistentVolumeClaim')).toContain(v.persistentVolumeClaim.claimName);
        }
        expect(p.spec.hostNetwork ?? p.spec.hostPID ?? p.spec.hostIPC, p.owner).toBeUndefined();
        for (const c of allContainers(p)) {
          for (const port of c.ports ?? []) expect(port.hostPort, `${p.owner} ${c.name}`).toBeUndefined();
          // Kubernetes expands $(NAME) in args from the container's environment: no accidental reference.
          const envNames = new Set((c.env ?? []).map((e) => e.name));
          for (const a of c.args ?? []) for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) expect(envNames.has(m[1]!), `${p.owner} ${c.name}: $(${m[1]}) would be expanded`).toBe(false);
        }
      }
      // No Namespace object (kubectl delete -f would take the Secrets with it); the docs create
      // it under the restricted Pod Security Standard.
      expect(objects.some((o) => (o.kind as string) === 'Namespace')).toBe(false);
      expect(readFileSync(path.join(RELEASE_ROOT, 'docs/install-kubernetes.md'), 'utf8')).toContain(`kubectl label namespace ${values.namespace} pod-security.kubernetes.io/enforce=restricted`);
    }
  });

  it('environment: only settings the server knows, secrets never inline, and the server accepts it', () => {
    for (const { mode, objects } of modes) {
      for (const p of pods(objects)) {
        for (const c of allContainers(p)) {
          const at = `${mode} ${p.owner} ${c.name}`;
          for (const e of c.env ?? []) {
            // Node's own: the private CA bundle, a file from a Secret.
            if (e.name === 'NODE_EXTRA_CA_CERTS') {
              expect(e.value, at).toMatch(/^\/run\/secrets\/enclave\//);
              continue;
            }
            expect(SETTING_BY_ENV.has(e.name), `${at}: ${e.name} is not in server/config/settings.ts`).toBe(true);
            if (SETTING_BY_ENV.get(e.name)?.secret) expect(e.valueFrom?.secretKeyRef, `${at}: ${e.name} is a secret and must come from a Secret`).toBeDefined();
            if (/(PASSWORD|SECRET|TOKEN|MASTER_KEY)/.test(e.name)) expect(e.name, at).toMatch(/_FILE$/);
            expect(e.value ?? '', `${at}: ${e.name} carries no credentials in a URL`).not.toMatch(/:\/\/[^/\s]*:[^/\s]*@/);
          }
          const env = envMap(c);
          const config = loadConfig(env, '/');
          expect(config.deployment, at).toBe('production');
          expect(config.port, at).toBe(HTTP_PORT);
          expect(config.dataDir, at).toBe(DATA_DIR);
          if (mode === 'postgres') expect(config.databaseUrl, at).toMatch(/^postgres:/);
          else expect(config.databaseUrl, at).toBeUndefined();
        }
      }
    }
    // Why enableServiceLinks is off: the variables a Service "enclave" injects are refused.
    expect(() => loadConfig({ ENCLAVE_SERVICE_HOST: '10.0.0.1', ENCLAVE_MASTER_KEY_FILE: '/x', REDIS_URL: 'redis://r:6379' }, '/')).toThrow(/unknown setting ENCLAVE_SERVICE_HOST/);
  });

  it('every Secret the manifests read is one requiredSecrets() names and docs/install-kubernetes.md lists', () => {
    const doc = readFileSync(path.join(RELEASE_ROOT, 'docs/install-kubernetes.md'), 'utf8');
    for (const { mode, values, objects } of modes) {
      const required = new Map(requiredSecrets(values).map((s) => [s.name, new Set(s.keys.map((k) => k.key))]));
      const refs: [string, string | undefined][] = [];
      for (const p of pods(objects)) {
        for (const ps of p.spec.imagePullSecrets ?? []) refs.push([ps.name!, '.dockerconfigjson']);
        for (const v of p.spec.volumes ?? []) {
          if (v.secret) for (const i of v.secret.items ?? [{ key: undefined }]) refs.push([v.secret.secretName!, i.key]);
          for (const s of v.projected?.sources ?? []) if (s.secret) for (const i of s.secret.items ?? []) refs.push([s.secret.name!, i.key]);
        }
        for (const c of allContainers(p)) {
          for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) refs.push([e.valueFrom.secretKeyRef.name!, e.valueFrom.secretKeyRef.key]);
          expect(c.envFrom, 'no bulk envFrom').toBeUndefined();
        }
      }
      for (const ing of byKind(objects, 'Ingress')) for (const t of ing.spec!.tls ?? []) refs.push([t.secretName!, 'tls.crt']);
      expect(refs.length).toBeGreaterThan(5);
      for (const [name, key] of refs) {
        expect(required.get(name), `${mode}: Secret ${name} is not in requiredSecrets()`).toBeDefined();
        if (key) expect(required.get(name)!.has(key), `${mode}: ${name}/${key}`).toBe(true);
      }
      for (const [name, keys] of required) {
        expect(doc, `docs/install-kubernetes.md names the Secret ${name}`).toContain(name);
        for (const k of keys) expect(doc, `docs/install-kubernetes.md names key ${k} of ${name}`).toContain(k);
      }
      // The generator never creates Secret objects: their values are the customer's.
      expect(objects.some((o) => (o.kind as string) === 'Secret')).toBe(false);
    }
  });

  describe('probes point at what the server serves', () => {
    let base = '';
    let close: () => void = () => {};
    beforeAll(async () => {
      const app = express();
      app.use(healthRouter(new Readiness()));
      const server = app.listen(0, '127.0.0.1');
      await new Promise<void>((r) => server.once('listening', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = () => server.close();
    });
    afterAll(() => close());

    it('HTTP probes: paths the real health router answers 200, on the port the server listens on', async () => {
      for (const { mode, objects } of modes) {
        for (const p of pods(objects)) {
          for (const c of p.spec.containers) {
            const probes = [c.startupProbe, c.livenessProbe, c.readinessProbe].filter((x) => x?.httpGet);
            if (!probes.length) continue;
            expect(c.livenessProbe?.httpGet?.path, `${mode} ${c.name}`).toBe('/healthz');
            expect(c.readinessProbe?.httpGet?.path, `${mode} ${c.name}`).toBe('/readyz');
            const port = c.ports!.find((x) => x.name === 'http')!;
            expect(port.containerPort).toBe(Number(envMap(c).PORT));
            for (const probe of probes) {
              expect(probe!.httpGet!.port).toBe('http');
              const res = await fetch(base + probe!.httpGet!.path);
              expect(res.status, `${mode} ${c.name} ${probe!.httpGet!.path}`).toBe(200);
            }
          }
        }
      }
    });

    it('the worker probe reads the heartbeat file the worker writes', () => {
      const workers = modes.flatMap(({ objects }) => pods(objects)).flatMap((p) => p.spec.containers.filter((c) => c.args?.includes('worker')));
      expect(workers).toHaveLength(1);
      const cmd = workers[0]!.livenessProbe!.exec!.command!.join(' ');
      expect(cmd).toContain(path.posix.join(DATA_DIR, HEARTBEAT_FILE));
    });
  });

  it('graceful drain: grace period covers preStop + the server shutdown timeout (+ the worker close grace)', () => {
    for (const { mode, values, objects } of modes) {
      for (const d of byKind(objects, 'Deployment')) {
        const spec = d.spec!.template.spec!;
        const c = spec.containers[0]!;
        const role = c.args![c.args!.indexOf('--role') + 1];
        const shutdownS = Number(envMap(c).ENCLAVE_SHUTDOWN_TIMEOUT_MS) / 1000;
        expect(shutdownS).toBe(values.drain.shutdownTimeoutSeconds);
        const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
        let need = 0;
        if (role === 'api' || role === 'all') {
          expect(preStop, `${mode} ${role}: preStop lets endpoints update`).toBe(values.drain.preStopSeconds);
          need += preStop + shutdownS;
        }
        if (role === 'worker' || role === 'all') need += CLOSE_GRACE_MS / 1000;
        expect(spec.terminationGracePeriodSeconds!, `${mode} ${role}`).toBeGreaterThan(need);
      }
    }
  });

  it('NetworkPolicy: every pod is covered; in only from the ingress controller (and the metrics scraper); out only to DNS, Redis, PostgreSQL, the IdP and provider networks', () => {
    for (const { mode, values, objects } of modes) {
      const policies = byKind(objects, 'NetworkPolicy');
      const allowedCidrs = new Set<string>([
        ...('cidrs' in values.redis.egress ? values.redis.egress.cidrs : []),
        ...(values.database && 'cidrs' in values.database.egress ? values.database.egress.cidrs : []),
        ...(values.oidc && 'cidrs' in values.oidc.egress ? values.oidc.egress.cidrs : []),
        ...values.providerEgress.flatMap((p) => p.cidrs),
      ]);
      const allowedNamespaces = new Set([values.ingress.controllerNamespace, values.dns.namespace, ...(values.metricsScrapeFrom ? [values.metricsScrapeFrom.namespace] : [])]);
      for (const p of pods(objects)) {
        const np = policies.filter((n) => Object.entries(n.spec!.podSelector.matchLabels ?? {}).every(([k, v]) => p.labels[k] === v));
        expect(np, `${mode} ${p.owner}`).toHaveLength(1);
        expect(np[0]!.spec!.policyTypes).toEqual(['Ingress', 'Egress']);
      }
      for (const n of policies) {
        for (const rule of n.spec!.ingress ?? []) {
          expect(rule.from?.length, `${n.metadata!.name}: an ingress rule without from allows everyone`).toBeGreaterThan(0);
          for (const peer of rule.from!) {
            expect(peer.ipBlock, n.metadata!.name).toBeUndefined();
            expect(allowedNamespaces.has(peer.namespaceSelector!.matchLabels!['kubernetes.io/metadata.name']!)).toBe(true);
          }
        }
        for (const rule of n.spec!.egress ?? []) {
          expect(rule.to?.length, `${n.metadata!.name}: an egress rule without to allows everything`).toBeGreaterThan(0);
          expect(rule.ports?.length, `${n.metadata!.name}: egress names its ports`).toBeGreaterThan(0);
          for (const peer of rule.to!) {
            if (peer.ipBlock) expect(allowedCidrs.has(peer.ipBlock.cidr), `${mode} ${n.metadata!.name} -> ${peer.ipBlock.cidr}`).toBe(true);
            else expect(allowedNamespaces.has(peer.namespaceSelector!.matchLabels!['kubernetes.io/metadata.name']!)).toBe(true);
          }
        }
      }
      // The served pods accept the ingress controller on the HTTP port.
      const served = policies.find((n) => ['api', 'all'].includes(n.spec!.podSelector.matchLabels!['app.kubernetes.io/component']!))!;
      expect(served.spec!.ingress![0]).toEqual({
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': values.ingress.controllerNamespace } } }],
        ports: [{ protocol: 'TCP', port: HTTP_PORT }],
      });
      // The migrations Job talks to DNS and the database only.
      const migrate = policies.find((n) => n.spec!.podSelector.matchLabels!['app.kubernetes.io/component'] === 'migrate');
      if (migrate) expect(migrate.spec!.egress!.map((r) => r.ports![0]!.port)).toEqual([53, values.database!.port]);
    }
  });

  it('embedded: one pod running api + worker (--role all), Recreate, SQLite on a ReadWriteOnce volume, migrations first in the pod, no HPA/PDB', () => {
    const { objects } = modes.find((m) => m.mode === 'embedded')!;
    const deps = byKind(objects, 'Deployment');
    expect(deps).toHaveLength(1);
    const d = deps[0]!;
    expect(d.spec!.replicas).toBe(1);
    expect(d.spec!.strategy!.type).toBe('Recreate');
    const spec = d.spec!.template.spec!;
    expect(spec.containers[0]!.args).toEqual(['node', 'dist/server/main.js', '--role', 'all']);
    expect(spec.initContainers!.map((c) => c.args)).toEqual([['node', 'dist/cli/main.js', 'migrate']]);
    const claim = spec.volumes!.find((v) => v.name === 'data')!.persistentVolumeClaim!.claimName;
    const pvc = byKind(objects, 'PersistentVolumeClaim').find((p) => p.metadata!.name === claim)!;
    expect(pvc.spec!.accessModes).toEqual(['ReadWriteOnce']);
    expect(byKind(objects, 'HorizontalPodAutoscaler')).toHaveLength(0);
    expect(byKind(objects, 'PodDisruptionBudget')).toHaveLength(0);
    expect(byKind(objects, 'Job')).toHaveLength(0);
  });

  it('postgres: api (HPA, PDB below its minimum) + workers, a migrations Job with the same image that the pods wait for, shared files volume, no data dir shared', () => {
    const { values, objects } = modes.find((m) => m.mode === 'postgres')!;
    const deps = byKind(objects, 'Deployment');
    const api = deps.find((d) => d.metadata!.name === 'enclave-api')!;
    const worker = deps.find((d) => d.metadata!.name === 'enclave-worker')!;
    expect(api.spec!.template.spec!.containers[0]!.args).toEqual(['node', 'dist/server/main.js', '--role', 'api']);
    expect(worker.spec!.template.spec!.containers[0]!.args).toEqual(['node', 'dist/server/main.js', '--role', 'worker']);
    expect(api.spec!.strategy!.rollingUpdate!.maxUnavailable).toBe(0);
    const hpas = byKind(objects, 'HorizontalPodAutoscaler');
    expect(hpas).toHaveLength(1);
    expect(hpas[0]!.spec!.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'enclave-api' });
    expect(api.spec!.replicas, 'the HPA owns the api replica count').toBeUndefined();
    const replicasOf = (component: string): number =>
      component === 'api' ? hpas[0]!.spec!.minReplicas! : deps.find((d) => d.metadata!.labels!['app.kubernetes.io/component'] === component)!.spec!.replicas!;
    const pdbs = byKind(objects, 'PodDisruptionBudget');
    expect(pdbs.map((p) => p.metadata!.name).sort()).toEqual(['enclave-api', 'enclave-worker']);
    for (const pdb of pdbs) {
      const component = pdb.spec!.selector!.matchLabels!['app.kubernetes.io/component']!;
      expect(pdb.spec!.minAvailable as number, pdb.metadata!.name).toBeLessThan(replicasOf(component));
    }
    const jobs = byKind(objects, 'Job');
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!.spec!.template.spec!;
    expect(job.containers[0]!.args).toEqual(['node', 'dist/cli/main.js', 'db', 'migrate']);
    expect(job.containers[0]!.image).toBe(api.spec!.template.spec!.containers[0]!.image);
    expect(job.restartPolicy).toBe('Never');
    expect(jobs[0]!.metadata!.name).toContain(values.image.tag.replace(/\./g, '-'));
    for (const d of [api, worker]) {
      const spec = d.spec!.template.spec!;
      expect(spec.initContainers!.map((c) => c.args!.join(' '))).toEqual([expect.stringContaining('node dist/cli/main.js db status')]);
      // /data is the pod's own; only <data dir>/files is shared (ReadWriteMany).
      expect(spec.volumes!.find((v) => v.name === 'data')!.emptyDir).toBeDefined();
      const files = spec.volumes!.find((v) => v.name === 'files')!.persistentVolumeClaim!.claimName;
      expect(byKind(objects, 'PersistentVolumeClaim').find((p) => p.metadata!.name === files)!.spec!.accessModes).toEqual(['ReadWriteMany']);
      expect(spec.containers[0]!.volumeMounts!.find((m) => m.name === 'files')!.mountPath).toBe(`${DATA_DIR}/files`);
    }
  });

  it('bad values: one clear line per problem, and render writes nothing', () => {
    const base = structuredClone(loadValuesRaw('embedded'));
    const bad = (patch: (v: Record<string, unknown>) => void): string => {
      const v = structuredClone(base);
      patch(v);
      try {
        parseValues(v);
      } catch (e) {
        expect(e).toBeInstanceOf(ValuesError);
        return (e as Error).message;
      }
      throw new Error('accepted bad values');
    };
    expect(bad((v) => (v.api = modes[1]!.values.api))).toMatch(/api: api is not used in mode embedded/);
    expect(bad((v) => (v.extraEnv = { ENCLAVE_MASTER_KEY: 'abc' }))).toMatch(/extraEnv\.ENCLAVE_MASTER_KEY: .*secret: never inline it/);
    expect(bad((v) => (v.extraEnv = { ENCLAVE_TYPO: '1' }))).toMatch(/not an Enclave setting/);
    expect(bad((v) => ((v.image as Record<string, unknown>).tag = 'latest'))).toMatch(/image\.tag: must be a release version/);
    expect(bad((v) => ((v.redis as { egress: unknown }).egress = { cidrs: ['10.0.0.0/33'] }))).toMatch(/redis\.egress/);
    expect(bad((v) => (v.publicUrl = 'http://enclave.example.com'))).toMatch(/publicUrl: must be an https:\/\/ URL/);
    expect(bad((v) => (v.mode = 'postgres'))).toMatch(/database: database is required in mode postgres/);
    expect(bad((v) => ((v.image as Record<string, unknown>).digest = 'sha256:abc'))).toMatch(/image\.digest: must be sha256:/);
    // A valid digest pins every container's image.
    const pinned = structuredClone(base);
    (pinned.image as Record<string, unknown>).digest = `sha256:${'ab'.repeat(32)}`;
    const images = pods(generateManifests(parseValues(pinned))).flatMap((p) => allContainers(p).map((c) => c.image));
    expect(new Set(images)).toEqual(new Set([`registry.example.com/enclave/enclave:0.1.0@sha256:${'ab'.repeat(32)}`]));
    const pg = structuredClone(loadValuesRaw('postgres'));
    pg.extraEnv = { ENCLAVE_BACKUP_CRON: '0 3 * * *' };
    expect(() => parseValues(pg)).toThrow(/extraEnv\.ENCLAVE_BACKUP_CRON: .*emptyDir in mode postgres/);
    // The CLI: exit 2, the problem on stderr, no output file.
    const dir = mkdtempSync(path.join(tmpdir(), 'k8s-values-'));
    try {
      const file = path.join(dir, 'values.yaml');
      writeFileSync(file, readFileSync(examplePath('embedded'), 'utf8').replace('tag: 0.1.0', 'tag: latest'));
      const out = path.join(dir, 'out.yaml');
      let stderr = '';
      let status = 0;
      try {
        execFileSync(process.execPath, ['--import', 'tsx', path.join(RELEASE_ROOT, 'deploy/kubernetes/render.ts'), '--values', file, '--out', out], { stdio: 'pipe' });
      } catch (e) {
        const err = e as { status: number; stderr: Buffer };
        status = err.status;
        stderr = err.stderr.toString();
      }
      expect(status).toBe(2);
      expect(stderr).toMatch(/image\.tag: must be a release version/);
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function loadValuesRaw(mode: string): Record<string, unknown> {
  // The example as written (before defaults), to patch one field at a time.
  const values: Values = loadValues(examplePath(mode));
  return JSON.parse(JSON.stringify(values)) as Record<string, unknown>;
}
