import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { INetworkPolicyIngressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyIngressRule';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { Peer, Resources, Values } from './values.js';

/**
 * Kubernetes manifests for Enclave from typed values (docs/install-kubernetes.md).
 *
 * Two modes. `embedded`: SQLite on a ReadWriteOnce volume, so exactly one pod that runs the
 * api and worker roles in one process (`--role all`), strategy Recreate (the old pod has let
 * go of the volume and the database before the new one starts), migrations in an init
 * container of that pod. `postgres`: api replicas (HPA, PDB) and worker replicas on
 * ENCLAVE_DATABASE_URL, a migrations Job (`enclave db migrate`, advisory-locked) that the
 * pods wait for in an init container (`enclave db status` exits 0 once the schema is current),
 * uploaded/batch files on a shared ReadWriteMany volume.
 *
 * Every pod: non-root (10001, the image's user), read-only root filesystem with emptyDirs for
 * /tmp and the data dir, all capabilities dropped, seccomp RuntimeDefault, no service-account
 * token, no service links (a Service named "enclave" would inject ENCLAVE_SERVICE_HOST and
 * friends, and the server refuses unknown ENCLAVE_* variables), secrets only from Kubernetes
 * Secrets (files under /run/secrets/enclave, or secretKeyRef for the URLs that have no *_FILE
 * setting), and a NetworkPolicy that lets in only the ingress controller and lets out only
 * DNS, Redis, PostgreSQL, the IdP and the configured provider networks.
 */

export type K8sObject = IServiceAccount | IPersistentVolumeClaim | IService | IDeployment | IJob | IIngress | INetworkPolicy | IHorizontalPodAutoscaler | IPodDisruptionBudget;

export const HTTP_PORT = 8080;
export const WORKER_METRICS_PORT = 9464;
/** Served by server/health/routes.ts; the test asks the real router. */
export const PROBE_PATHS = { liveness: '/healthz', readiness: '/readyz' } as const;
/** The image's user and group (compose/Dockerfile `USER 10001:10001`). */
export const RUN_AS = 10001;
export const DATA_DIR = '/data';
export const SECRETS_DIR = '/run/secrets/enclave';
/** server/jobs/worker.ts writes it every 5 s (HEARTBEAT_FILE); stale after 30 s like compose's check. */
export const HEARTBEAT_PATH = `${DATA_DIR}/worker.heartbeat`;
/** server/jobs/worker.ts CLOSE_GRACE_MS: how long the worker lets running jobs save progress on SIGTERM. */
export const WORKER_CLOSE_GRACE_SECONDS = 10;
/** server/cluster.ts kills api processes that have not drained by shutdown timeout + 5 s. */
const SUPERVISOR_MARGIN_SECONDS = 5;
/** Closing Redis, the database and the rest after the drain. */
const CLOSE_MARGIN_SECONDS = 10;

const CLI = ['node', 'dist/cli/main.js'];
const SERVER = ['node', 'dist/server/main.js'];

type Component = 'all' | 'api' | 'worker' | 'migrate';

/** What a Kubernetes Secret the manifests read must hold (the customer creates it). */
export interface RequiredSecret {
  readonly name: string;
  readonly type: 'Opaque' | 'kubernetes.io/tls' | 'kubernetes.io/dockerconfigjson';
  readonly keys: { readonly key: string; readonly what: string }[];
}

/** Every Secret the manifests refer to, with its keys: printed by render.ts and listed in the docs. */
export function requiredSecrets(v: Values): RequiredSecret[] {
  const out = new Map<string, { type: RequiredSecret['type']; keys: Map<string, string> }>();
  const add = (name: string, type: RequiredSecret['type'], key: string, what: string): void => {
    const s = out.get(name) ?? { type, keys: new Map<string, string>() };
    s.keys.set(key, what);
    out.set(name, s);
  };
  add(v.secretName, 'Opaque', 'master-key', 'AES-256-GCM master key for secrets at rest (openssl rand -base64 32)');
  add(v.secretName, 'Opaque', 'metrics-token', 'bearer token of GET /metrics (openssl rand -hex 32)');
  if (v.oidc) add(v.secretName, 'Opaque', 'oidc-client-secret', 'client secret of Enclave at the platform IdP');
  add(v.redis.urlSecret.name, 'Opaque', v.redis.urlSecret.key, 'REDIS_URL, e.g. rediss://:password@redis.example.com:6380/0');
  if (v.database) {
    add(v.database.urlSecret.name, 'Opaque', v.database.urlSecret.key, 'ENCLAVE_DATABASE_URL, postgres://enclave:password@db.example.com:5432/enclave?sslmode=verify-full');
    if (v.database.caSecret) add(v.database.caSecret.name, 'Opaque', v.database.caSecret.key, 'PEM of the CA that signed the PostgreSQL server certificate');
  }
  if (v.trustedCaSecret) add(v.trustedCaSecret.name, 'Opaque', v.trustedCaSecret.key, 'PEM bundle of your private CA (NODE_EXTRA_CA_CERTS)');
  add(v.ingress.tlsSecret, 'kubernetes.io/tls', 'tls.crt', `certificate of ${new URL(v.publicUrl).hostname} (with tls.key)`);
  add(v.ingress.tlsSecret, 'kubernetes.io/tls', 'tls.key', 'its private key');
  for (const p of v.image.pullSecrets) add(p, 'kubernetes.io/dockerconfigjson', '.dockerconfigjson', 'credentials of the image registry');
  return [...out].map(([name, s]) => ({ name, type: s.type, keys: [...s.keys].map(([key, what]) => ({ key, what })) }));
}

/**
 * All objects, in apply order (policies last). No Namespace object: `kubectl delete -f` of the
 * file would then delete the namespace with the customer's Secrets in it; the docs create it
 * with the restricted Pod Security Standard label.
 */
export function generateManifests(v: Values): K8sObject[] {
  const g = new Generator(v);
  return g.objects();
}

class Generator {
  constructor(private readonly v: Values) {}

  private labels(component?: Component): Record<string, string> {
    return {
      'app.kubernetes.io/name': 'enclave',
      'app.kubernetes.io/instance': this.v.name,
      ...(component ? { 'app.kubernetes.io/component': component } : {}),
    };
  }

  private meta(name: string, component?: Component): { name: string; namespace: string; labels: Record<string, string> } {
    return {
      name,
      namespace: this.v.namespace,
      labels: { ...this.labels(component), 'app.kubernetes.io/version': this.v.image.tag, 'app.kubernetes.io/managed-by': 'enclave-k8s-generator' },
    };
  }

  private get image(): string {
    const { repository, tag, digest } = this.v.image;
    return `${repository}:${tag}${digest ? `@${digest}` : ''}`;
  }

  objects(): K8sObject[] {
    const v = this.v;
    const out: K8sObject[] = [this.serviceAccount()];
    if (v.mode === 'embedded') {
      out.push(this.pvc(`${v.name}-data`, 'ReadWriteOnce', v.embedded!.storage, 'all'));
      out.push(this.embeddedDeployment());
    } else {
      out.push(this.pvc(`${v.name}-files`, 'ReadWriteMany', v.files!.storage)); // shared by api and worker pods
      out.push(this.migrateJob(), this.apiDeployment(), this.workerDeployment());
    }
    out.push(this.service(), this.ingress());
    if (v.mode === 'postgres') {
      out.push(this.hpa());
      out.push(this.pdb('api', 1));
      if (v.worker!.replicas >= 2) out.push(this.pdb('worker', v.worker!.replicas - 1));
    }
    out.push(...this.networkPolicies());
    return out;
  }

  private serviceAccount(): IServiceAccount {
    // Enclave never talks to the Kubernetes API: no token mounted anywhere.
    return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: this.meta(this.v.name), automountServiceAccountToken: false };
  }

  private pvc(name: string, mode: 'ReadWriteOnce' | 'ReadWriteMany', storage: { size: string; storageClassName?: string | undefined }, component?: Component): IPersistentVolumeClaim {
    return {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: this.meta(name, component),
      spec: {
        accessModes: [mode],
        resources: { requests: { storage: storage.size } },
        ...(storage.storageClassName ? { storageClassName: storage.storageClassName } : {}),
      },
    };
  }

  // --- environment, volumes, security -----------------------------------------------------

  private env(component: Component): IEnvVar[] {
    const v = this.v;
    const env: IEnvVar[] = [
      { name: 'ENCLAVE_DEPLOYMENT', value: 'production' },
      { name: 'ENCLAVE_DATA_DIR', value: DATA_DIR },
      { name: 'ENCLAVE_HOST', value: '0.0.0.0' },
      { name: 'PORT', value: String(HTTP_PORT) },
      { name: 'ENCLAVE_PUBLIC_URL', value: v.publicUrl },
      { name: 'ENCLAVE_TRUST_PROXY', value: String(v.trustProxyHops) },
      { name: 'ENCLAVE_SHUTDOWN_TIMEOUT_MS', value: String(v.drain.shutdownTimeoutSeconds * 1000) },
      { name: 'ENCLAVE_MASTER_KEY_FILE', value: `${SECRETS_DIR}/master_key` },
      { name: 'ENCLAVE_METRICS_TOKEN_FILE', value: `${SECRETS_DIR}/metrics_token` },
      { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: v.redis.urlSecret.name, key: v.redis.urlSecret.key } } },
    ];
    if (v.database) {
      env.push({ name: 'ENCLAVE_DATABASE_URL', valueFrom: { secretKeyRef: { name: v.database.urlSecret.name, key: v.database.urlSecret.key } } });
      env.push({ name: 'ENCLAVE_DATABASE_POOL_MAX', value: String(v.database.poolMax) });
      if (v.database.caSecret) env.push({ name: 'ENCLAVE_DATABASE_CA_FILE', value: `${SECRETS_DIR}/database_ca.crt` });
    }
    if (v.oidc) {
      env.push({ name: 'ENCLAVE_OIDC_ISSUER', value: v.oidc.issuer });
      env.push({ name: 'ENCLAVE_OIDC_CLIENT_ID', value: v.oidc.clientId });
      env.push({ name: 'ENCLAVE_OIDC_CLIENT_SECRET_FILE', value: `${SECRETS_DIR}/oidc_client_secret` });
    }
    if (v.trustedCaSecret) env.push({ name: 'NODE_EXTRA_CA_CERTS', value: `${SECRETS_DIR}/extra_ca.crt` });
    if (component === 'api' && v.api) env.push({ name: 'ENCLAVE_API_WORKERS', value: String(v.api.processes) });
    if (component === 'worker') env.push({ name: 'ENCLAVE_WORKER_METRICS_PORT', value: String(WORKER_METRICS_PORT) });
    for (const [name, value] of Object.entries(v.extraEnv).sort(([a], [b]) => a.localeCompare(b))) env.push({ name, value });
    return env;
  }

  private volumes(component: Component): IVolume[] {
    const v = this.v;
    const sources = [
      {
        secret: {
          name: v.secretName,
          items: [
            { key: 'master-key', path: 'master_key' },
            { key: 'metrics-token', path: 'metrics_token' },
            ...(v.oidc ? [{ key: 'oidc-client-secret', path: 'oidc_client_secret' }] : []),
          ],
        },
      },
      ...(v.database?.caSecret ? [{ secret: { name: v.database.caSecret.name, items: [{ key: v.database.caSecret.key, path: 'database_ca.crt' }] } }] : []),
      ...(v.trustedCaSecret ? [{ secret: { name: v.trustedCaSecret.name, items: [{ key: v.trustedCaSecret.key, path: 'extra_ca.crt' }] } }] : []),
    ];
    const vols: IVolume[] = [
      { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
      // Owner and group read only (fsGroup 10001); the server reads them once at start.
      { name: 'secrets', projected: { defaultMode: 0o440, sources } },
    ];
    if (component === 'all') vols.push({ name: 'data', persistentVolumeClaim: { claimName: `${v.name}-data` } });
    // postgres mode: the data dir holds only this pod's process record and heartbeat.
    else vols.push({ name: 'data', emptyDir: { sizeLimit: '1Gi' } });
    if (component === 'api' || component === 'worker') vols.push({ name: 'files', persistentVolumeClaim: { claimName: `${v.name}-files` } });
    return vols;
  }

  private mounts(component: Component): IVolumeMount[] {
    const m: IVolumeMount[] = [
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'data', mountPath: DATA_DIR },
      { name: 'secrets', mountPath: SECRETS_DIR, readOnly: true },
    ];
    // Uploaded and batch files live under <data dir>/files (server/batch): shared by every replica.
    if (component === 'api' || component === 'worker') m.push({ name: 'files', mountPath: `${DATA_DIR}/files` });
    return m;
  }

  private container(name: string, args: string[], component: Component, resources: Resources): IContainer {
    return {
      name,
      image: this.image,
      imagePullPolicy: this.v.image.pullPolicy,
      // args, not command: the image's ENTRYPOINT (tini) stays PID 1, forwards SIGTERM and reaps
      // the children of the api supervisor (ENCLAVE_API_WORKERS) — as compose's `command` does.
      args,
      env: this.env(component),
      volumeMounts: this.mounts(component),
      resources: { requests: { ...resources.requests }, limits: { ...resources.limits } },
      securityContext: {
        runAsNonRoot: true,
        runAsUser: RUN_AS,
        runAsGroup: RUN_AS,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
    };
  }

  private podSpec(component: Component, containers: IContainer[], initContainers: IContainer[], graceSeconds: number): IPodSpec {
    return {
      serviceAccountName: this.v.name,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: graceSeconds,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: RUN_AS,
        runAsGroup: RUN_AS,
        fsGroup: RUN_AS,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      ...(this.v.image.pullSecrets.length ? { imagePullSecrets: this.v.image.pullSecrets.map((name) => ({ name })) } : {}),
      ...(initContainers.length ? { initContainers } : {}),
      containers,
      volumes: this.volumes(component),
    };
  }

  // --- probes and drain ------------------------------------------------------------------

  private httpProbes(): Pick<IContainer, 'startupProbe' | 'livenessProbe' | 'readinessProbe' | 'ports' | 'lifecycle'> {
    const get = (path: string): IProbe['httpGet'] => ({ path, port: 'http' });
    return {
      ports: [{ name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' }],
      // Start-up (listen, caches) may take a while on a busy node; liveness waits for it.
      startupProbe: { httpGet: get(PROBE_PATHS.liveness), periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 90 },
      livenessProbe: { httpGet: get(PROBE_PATHS.liveness), periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
      // /readyz: database, Redis, migrations, licence; 503 while draining after SIGTERM.
      readinessProbe: { httpGet: get(PROBE_PATHS.readiness), periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
      // Endpoints and the ingress controller learn of a terminating pod asynchronously; keep
      // serving for preStopSeconds before SIGTERM starts the drain (the server stops accepting then).
      ...(this.v.drain.preStopSeconds > 0 ? { lifecycle: { preStop: { sleep: { seconds: this.v.drain.preStopSeconds } } } } : {}),
    };
  }

  private heartbeatProbes(): Pick<IContainer, 'startupProbe' | 'livenessProbe' | 'ports'> {
    const check = { exec: { command: ['node', '-e', `const t=Number(require('fs').readFileSync('${HEARTBEAT_PATH}','utf8'));process.exit(Date.now()-t<30000?0:1)`] } };
    return {
      ports: [{ name: 'metrics', containerPort: WORKER_METRICS_PORT, protocol: 'TCP' }],
      startupProbe: { ...check, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 36 },
      livenessProbe: { ...check, periodSeconds: 30, timeoutSeconds: 5, failureThreshold: 3 },
    };
  }

  /** SIGTERM drain budget of each process kind (server/main.ts shutdown), plus the preStop pause. */
  graceSeconds(component: Component): number {
    const d = this.v.drain;
    if (component === 'worker') return WORKER_CLOSE_GRACE_SECONDS + 1 + CLOSE_MARGIN_SECONDS;
    const http = d.preStopSeconds + d.shutdownTimeoutSeconds;
    if (component === 'api') return http + SUPERVISOR_MARGIN_SECONDS + CLOSE_MARGIN_SECONDS;
    return http + SUPERVISOR_MARGIN_SECONDS + WORKER_CLOSE_GRACE_SECONDS + 1 + CLOSE_MARGIN_SECONDS;
  }

  private waitForSchema(): IContainer {
    // `enclave db status`: 0 current, 1 pending, 2 unreachable/newer. Retried for about five
    // minutes, then the init container fails and Kubernetes retries it with back-off.
    const script = 'n=0; until node dist/cli/main.js db status; do n=$((n+1)); if [ "$n" -ge 100 ]; then exit 1; fi; sleep 3; done';
    return this.container('wait-for-schema', ['sh', '-c', script], 'migrate', SMALL);
  }

  // --- workloads -------------------------------------------------------------------------

  private deployment(component: 'all' | 'api' | 'worker', spec: { replicas?: number; strategy: NonNullable<IDeployment['spec']>['strategy']; pod: IPodSpec }): IDeployment {
    const name = component === 'all' ? this.v.name : `${this.v.name}-${component}`;
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: this.meta(name, component),
      spec: {
        ...(spec.replicas !== undefined ? { replicas: spec.replicas } : {}),
        revisionHistoryLimit: 5,
        selector: { matchLabels: this.labels(component) },
        strategy: spec.strategy,
        template: { metadata: { labels: this.labels(component) }, spec: spec.pod },
      },
    };
  }

  private embeddedDeployment(): IDeployment {
    const e = this.v.embedded!;
    const main = { ...this.container('enclave', [...SERVER, '--role', 'all'], 'all', e.resources), ...this.httpProbes() };
    // SQLite migrations before the server, on the same volume, while no server holds it.
    const migrate = this.container('migrate', [...CLI, 'migrate'], 'all', this.v.migrateResources ?? SMALL_MIGRATE);
    // One pod: the ReadWriteOnce volume and SQLite's single writer allow nothing else, and
    // Recreate stops the old pod before the new one mounts the volume.
    return this.deployment('all', { replicas: 1, strategy: { type: 'Recreate' }, pod: this.podSpec('all', [main], [migrate], this.graceSeconds('all')) });
  }

  private apiDeployment(): IDeployment {
    const a = this.v.api!;
    const main = { ...this.container('api', [...SERVER, '--role', 'api'], 'api', a.resources), ...this.httpProbes() };
    const pod = this.podSpec('api', [main], [this.waitForSchema()], this.graceSeconds('api'));
    pod.topologySpreadConstraints = [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: this.labels('api') } }];
    // No replicas field: the HPA owns the count (a re-apply must not reset it).
    return this.deployment('api', { strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }, pod });
  }

  private workerDeployment(): IDeployment {
    const w = this.v.worker!;
    const main = { ...this.container('worker', [...SERVER, '--role', 'worker'], 'worker', w.resources), ...this.heartbeatProbes() };
    const pod = this.podSpec('worker', [main], [this.waitForSchema()], this.graceSeconds('worker'));
    pod.topologySpreadConstraints = [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: this.labels('worker') } }];
    return this.deployment('worker', { replicas: w.replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } }, pod });
  }

  /** The Job's name carries the version: Jobs are immutable, and an upgrade must run a new one. */
  migrateJobName(): string {
    return `${this.v.name}-migrate-${this.v.image.tag.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`.slice(0, 63).replace(/-+$/, '');
  }

  private migrateJob(): IJob {
    const c = this.container('migrate', [...CLI, 'db', 'migrate'], 'migrate', this.v.migrateResources ?? SMALL_MIGRATE);
    return {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: this.meta(this.migrateJobName(), 'migrate'),
      spec: {
        backoffLimit: 3,
        activeDeadlineSeconds: 900,
        ttlSecondsAfterFinished: 86400,
        template: { metadata: { labels: this.labels('migrate') }, spec: { ...this.podSpec('migrate', [c], [], 30), restartPolicy: 'Never' } },
      },
    };
  }

  // --- traffic -----------------------------------------------------------------------------

  private get servedComponent(): 'all' | 'api' {
    return this.v.mode === 'embedded' ? 'all' : 'api';
  }

  private service(): IService {
    return {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: this.meta(this.v.name, this.servedComponent),
      spec: { type: 'ClusterIP', selector: this.labels(this.servedComponent), ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
    };
  }

  private ingress(): IIngress {
    const v = this.v;
    const host = new URL(v.publicUrl).hostname;
    // ingress-nginx: stream answers as they come (SSE) and let long generations finish.
    const nginx: Record<string, string> =
      v.ingress.className === 'nginx'
        ? {
            'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
            'nginx.ingress.kubernetes.io/proxy-read-timeout': '600',
            'nginx.ingress.kubernetes.io/proxy-send-timeout': '600',
            'nginx.ingress.kubernetes.io/proxy-body-size': '20m',
          }
        : {};
    return {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { ...this.meta(v.name, this.servedComponent), annotations: { ...nginx, ...v.ingress.annotations } },
      spec: {
        ingressClassName: v.ingress.className,
        tls: [{ hosts: [host], secretName: v.ingress.tlsSecret }],
        rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: v.name, port: { name: 'http' } } } }] } }],
      },
    };
  }

  private hpa(): IHorizontalPodAutoscaler {
    const a = this.v.api!.autoscaling;
    return {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: this.meta(`${this.v.name}-api`, 'api'),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `${this.v.name}-api` },
        minReplicas: a.minReplicas,
        maxReplicas: a.maxReplicas,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.targetCPUUtilizationPercentage } } }],
        // Scale down slowly: a pod going away drains its streams first.
        behavior: { scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] } },
      },
    };
  }

  private pdb(component: 'api' | 'worker', minAvailable: number): IPodDisruptionBudget {
    return {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: this.meta(`${this.v.name}-${component}`, component),
      spec: { minAvailable, selector: { matchLabels: this.labels(component) } },
    };
  }

  // --- network policies ----------------------------------------------------------------------

  private peers(p: Peer): INetworkPolicyPeer[] {
    if ('cidrs' in p) return p.cidrs.map((cidr) => ({ ipBlock: { cidr } }));
    return [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.namespace } },
        ...(p.podLabels && Object.keys(p.podLabels).length ? { podSelector: { matchLabels: p.podLabels } } : {}),
      },
    ];
  }

  private egress(component: Component): INetworkPolicyEgressRule[] {
    const v = this.v;
    const tcp = (port: number): INetworkPolicyPort => ({ protocol: 'TCP', port });
    const rules: INetworkPolicyEgressRule[] = [
      { to: this.peers({ namespace: v.dns.namespace, podLabels: v.dns.podLabels }), ports: [{ protocol: 'UDP', port: 53 }, tcp(53)] },
    ];
    if (v.database && component !== 'all') rules.push({ to: this.peers(v.database.egress), ports: [tcp(v.database.port)] });
    if (component === 'migrate') return rules;
    rules.push({ to: this.peers(v.redis.egress), ports: [tcp(v.redis.port)] });
    if (v.oidc && component !== 'worker') rules.push({ to: this.peers(v.oidc.egress), ports: [tcp(v.oidc.port)] });
    for (const p of v.providerEgress) rules.push({ to: p.cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: p.ports.map(tcp) });
    return rules;
  }

  private ingressRules(component: Component): INetworkPolicyIngressRule[] {
    const v = this.v;
    const rules: INetworkPolicyIngressRule[] = [];
    if (component === 'all' || component === 'api') {
      rules.push({ from: this.peers({ namespace: v.ingress.controllerNamespace }), ports: [{ protocol: 'TCP', port: HTTP_PORT }] });
      if (v.metricsScrapeFrom) rules.push({ from: this.peers(v.metricsScrapeFrom), ports: [{ protocol: 'TCP', port: HTTP_PORT }] });
    }
    if (component === 'worker' && v.metricsScrapeFrom) rules.push({ from: this.peers(v.metricsScrapeFrom), ports: [{ protocol: 'TCP', port: WORKER_METRICS_PORT }] });
    return rules;
  }

  private networkPolicies(): INetworkPolicy[] {
    const components: Component[] = this.v.mode === 'embedded' ? ['all'] : ['api', 'worker', 'migrate'];
    return components.map((c) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: this.meta(`${this.v.name}-${c}`, c),
      spec: {
        podSelector: { matchLabels: this.labels(c) },
        // Both directions listed: whatever no rule allows is denied for these pods.
        policyTypes: ['Ingress', 'Egress'],
        ingress: this.ingressRules(c),
        egress: this.egress(c),
      },
    }));
  }
}

const SMALL: Resources = { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
const SMALL_MIGRATE: Resources = { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };
