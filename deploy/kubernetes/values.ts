import { isIP } from 'node:net';
import { z } from 'zod';
import { SETTINGS } from '../../server/config/settings.js';

/**
 * The typed values the Kubernetes manifests are generated from (docs/install-kubernetes.md).
 * Parsed with zod so a wrong values file gets one line per problem naming the field, and
 * nothing is written. Secrets are never values here: only the names of Kubernetes Secrets
 * (and keys in them) that the customer creates.
 */

const dns1123 = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, -)')
  .max(63);
const secretKey = z.string().regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret key (letters, digits, -, _, .)');
/** CPU ("500m", "2") or memory ("512Mi", "2Gi") quantity. */
const quantity = z.string().regex(/^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?$/, 'must be a Kubernetes quantity such as 500m, 2, 512Mi or 2Gi');
const cidr = z.string().refine((v) => {
  const [addr, bits, ...rest] = v.split('/');
  const family = isIP(addr ?? '');
  if (!family || rest.length || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}, 'must be a CIDR such as 10.20.0.0/16 (an address with /32 for one host)');
const port = z.number().int().min(1).max(65535);
const labels = z.record(z.string(), z.string());

export const secretRefSchema = z.object({ name: dns1123, key: secretKey }).strict();
export type SecretRef = z.infer<typeof secretRefSchema>;

/**
 * Where a NetworkPolicy lets traffic go: address ranges (a managed service outside the
 * cluster), or pods of a namespace (a service inside it; ipBlock does not reliably match pod
 * addresses, so in-cluster peers are selected by namespace and labels).
 */
const peerSchema = z.union([
  z.object({ cidrs: z.array(cidr).min(1) }).strict(),
  z.object({ namespace: dns1123, podLabels: labels.optional() }).strict(),
]);
export type Peer = z.infer<typeof peerSchema>;

const resourcesSchema = z
  .object({
    requests: z.object({ cpu: quantity, memory: quantity }).strict(),
    limits: z.object({ cpu: quantity, memory: quantity }).strict(),
  })
  .strict();
export type Resources = z.infer<typeof resourcesSchema>;

const storageSchema = z.object({ size: quantity, storageClassName: z.string().min(1).optional() }).strict();

/** Settings the generator sets itself (or that carry secrets); extraEnv may not set them. */
const GENERATOR_OWNED = new Set([
  'PORT',
  'ENCLAVE_HOST',
  'ENCLAVE_DEPLOYMENT',
  'ENCLAVE_DATA_DIR',
  'ENCLAVE_DATABASE_URL',
  'ENCLAVE_DATABASE_POOL_MAX',
  'ENCLAVE_DATABASE_CA_FILE',
  'REDIS_URL',
  'ENCLAVE_MASTER_KEY_FILE',
  'ENCLAVE_METRICS_TOKEN_FILE',
  'ENCLAVE_OIDC_CLIENT_SECRET_FILE',
  'ENCLAVE_PUBLIC_URL',
  'ENCLAVE_TRUST_PROXY',
  'ENCLAVE_SHUTDOWN_TIMEOUT_MS',
  'ENCLAVE_API_WORKERS',
  'ENCLAVE_WORKER_METRICS_PORT',
  'ENCLAVE_OIDC_ISSUER',
  'ENCLAVE_OIDC_CLIENT_ID',
  'ENCLAVE_CONFIG',
]);
const SETTING_BY_ENV = new Map(Object.values(SETTINGS).map((s) => [s.env, s]));

const extraEnvSchema = z.record(z.string(), z.string()).superRefine((env, ctx) => {
  for (const k of Object.keys(env)) {
    const s = SETTING_BY_ENV.get(k);
    if (!s) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is not an Enclave setting (server/config/settings.ts)` });
    else if (s.secret) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is a secret: never inline it; the generator reads secrets from Kubernetes Secrets only` });
    else if (GENERATOR_OWNED.has(k)) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is set by the generator from the values; set the matching value instead` });
  }
});

const workloadSchema = z.object({ replicas: z.number().int().min(1).max(100), resources: resourcesSchema }).strict();

export const valuesSchema = z
  .object({
    /** embedded: SQLite on a volume, one pod (works today). postgres: N api + M workers on ENCLAVE_DATABASE_URL. */
    mode: z.enum(['embedded', 'postgres']),
    name: dns1123.max(40).default('enclave'),
    namespace: dns1123.default('enclave'),
    image: z
      .object({
        repository: z.string().regex(/^[a-z0-9][a-z0-9._\-/:]*$/, 'must be an image repository such as registry.example.com/enclave/enclave'),
        tag: z.string().regex(/^\d+\.\d+\.\d+[-\w.]*$/, 'must be a release version such as 0.1.0 (never latest)'),
        /** Pins the exact image (sha256:…): what was reviewed is what runs, whatever the tag later names. */
        digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256: followed by 64 hex digits').optional(),
        pullPolicy: z.enum(['IfNotPresent', 'Always', 'Never']).default('IfNotPresent'),
        pullSecrets: z.array(dns1123).default([]),
      })
      .strict(),
    /** The one public URL (the Ingress host); OIDC redirects are built from it. */
    publicUrl: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }),
    ingress: z
      .object({
        className: z.string().min(1).default('nginx'),
        /** Secret of type kubernetes.io/tls with the certificate of the public host. */
        tlsSecret: dns1123,
        /** Only pods of this namespace (the ingress controller) may reach the api pods. */
        controllerNamespace: dns1123.default('ingress-nginx'),
        annotations: labels.default({}),
      })
      .strict(),
    /** Proxies in front of Enclave whose X-Forwarded-For is trusted (ingress controller = 1). */
    trustProxyHops: z.number().int().min(0).max(16).default(1),
    /** Enclave's own Secret: keys master-key, metrics-token (and oidc-client-secret with oidc). */
    secretName: dns1123.default('enclave-secrets'),
    redis: z.object({ urlSecret: secretRefSchema, egress: peerSchema, port: port.default(6379) }).strict(),
    database: z
      .object({
        urlSecret: secretRefSchema,
        /** PEM of the CA of the PostgreSQL server certificate (ENCLAVE_DATABASE_CA_FILE). */
        caSecret: secretRefSchema.optional(),
        egress: peerSchema,
        port: port.default(5432),
        poolMax: z.number().int().min(1).max(100).default(10),
      })
      .strict()
      .optional(),
    oidc: z
      .object({
        issuer: z.url({ protocol: /^https$/, error: 'must be the https:// issuer URL of the IdP' }),
        clientId: z.string().min(1).default('enclave'),
        egress: peerSchema,
        port: port.default(443),
      })
      .strict()
      .optional(),
    /**
     * PEM bundle of a private CA (IdP, providers or SIEM sinks with certificates of your own
     * CA) added to Node's trusted roots through NODE_EXTRA_CA_CERTS.
     */
    trustedCaSecret: secretRefSchema.optional(),
    /** Model providers (and SIEM sinks, webhooks) Enclave may connect to; nothing else leaves the pods. */
    providerEgress: z.array(z.object({ description: z.string().min(1), cidrs: z.array(cidr).min(1), ports: z.array(port).min(1) }).strict()).default([]),
    dns: z
      .object({ namespace: dns1123.default('kube-system'), podLabels: labels.default({ 'k8s-app': 'kube-dns' }) })
      .strict()
      .default({ namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } }),
    /** Prometheus (if any) scraping /metrics with the metrics token. Unset: no scrape allowed in. */
    metricsScrapeFrom: z.object({ namespace: dns1123, podLabels: labels.optional() }).strict().optional(),
    drain: z
      .object({
        /** preStop pause so endpoints and the ingress controller stop routing before the server drains. */
        preStopSeconds: z.number().int().min(0).max(60).default(5),
        /** ENCLAVE_SHUTDOWN_TIMEOUT_MS in seconds: how long in-flight requests may finish. */
        shutdownTimeoutSeconds: z.number().int().min(1).max(600).default(15),
      })
      .strict()
      .default({ preStopSeconds: 5, shutdownTimeoutSeconds: 15 }),
    /** embedded mode: the single pod (api + worker roles in one process) and its data volume. */
    embedded: z.object({ resources: resourcesSchema, storage: storageSchema }).strict().optional(),
    /** postgres mode: api replicas (an HPA scales between min and max) and worker replicas. */
    api: z
      .object({
        resources: resourcesSchema,
        /** ENCLAVE_API_WORKERS: node processes per pod; scale with pods first. */
        processes: z.number().int().min(1).max(16).default(1),
        autoscaling: z
          .object({ minReplicas: z.number().int().min(2), maxReplicas: z.number().int().min(2).max(100), targetCPUUtilizationPercentage: z.number().int().min(10).max(95).default(70) })
          .strict(),
      })
      .strict()
      .optional(),
    worker: workloadSchema.optional(),
    /** postgres mode: uploaded and batch files (<data dir>/files) on a ReadWriteMany volume all pods share. */
    files: z.object({ storage: storageSchema }).strict().optional(),
    migrateResources: resourcesSchema.optional(),
    extraEnv: extraEnvSchema.default({}),
  })
  .strict()
  .superRefine((v, ctx) => {
    const need = (key: 'embedded' | 'api' | 'worker' | 'files' | 'database', mode: string) => {
      if (!v[key]) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is required in mode ${mode}` });
    };
    const forbid = (key: 'embedded' | 'api' | 'worker' | 'files' | 'database', mode: string) => {
      if (v[key]) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is not used in mode ${mode}: remove it` });
    };
    if (v.mode === 'embedded') {
      need('embedded', 'embedded');
      for (const k of ['api', 'worker', 'files', 'database'] as const) forbid(k, 'embedded');
    } else {
      for (const k of ['api', 'worker', 'files', 'database'] as const) need(k, 'postgres');
      forbid('embedded', 'postgres');
      if (v.api && v.api.autoscaling.maxReplicas < v.api.autoscaling.minReplicas) {
        ctx.addIssue({ code: 'custom', path: ['api', 'autoscaling', 'maxReplicas'], message: 'maxReplicas must be at least minReplicas' });
      }
    }
    // Both write into the data dir, which is each pod's own emptyDir in postgres mode: the
    // archive or backup would vanish with the pod.
    if (v.mode === 'postgres') {
      for (const k of ['ENCLAVE_BACKUP_CRON', 'ENCLAVE_AUDIT_ARCHIVE_DAYS']) {
        if (k in v.extraEnv) ctx.addIssue({ code: 'custom', path: ['extraEnv', k], message: `${k} writes into the pod's own data dir (an emptyDir in mode postgres) and would be lost: use your PostgreSQL backups` });
      }
    }
    if (new URL(v.publicUrl).pathname !== '/') ctx.addIssue({ code: 'custom', path: ['publicUrl'], message: 'must be an origin without a path (https://enclave.example.com)' });
  });

export type ValuesInput = z.input<typeof valuesSchema>;
export type Values = z.output<typeof valuesSchema>;

export class ValuesError extends Error {
  override readonly name = 'ValuesError';
}

/** Parses values; a bad file throws one ValuesError listing every problem by its path. */
export function parseValues(input: unknown): Values {
  const r = valuesSchema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(values)'}: ${i.message}`);
  throw new ValuesError(`invalid Kubernetes values:\n${lines.join('\n')}`);
}
