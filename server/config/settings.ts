import { z } from 'zod';
import { parseNetworks } from '../providers/egress.js';

/**
 * The bootstrap settings: everything Enclave reads before it can open its database.
 * Each entry names its environment variable (the same key is used in the optional
 * JSON config file named by ENCLAVE_CONFIG), its schema, a one-line description
 * (README's configuration table is checked against this list) and whether it is
 * a secret (redacted in `enclave config show`, logs and support bundles).
 */
export interface SettingSpec<T extends z.ZodType = z.ZodType> {
  readonly env: string;
  readonly schema: T;
  readonly description: string;
  readonly secret?: boolean;
  /** Shown in the error line when the value is invalid. */
  readonly fix: string;
}

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const nonEmpty = z.string().trim().min(1);
/** ENCLAVE_TRUST_PROXY: a hop count; the old true/false still work (true = one proxy). */
const proxyHops = z
  .union([z.boolean(), z.number().int().min(0).max(16), z.string().trim().regex(/^(?:true|false|yes|no|1?\d)$/, 'must be true, false or a number of proxies from 0 to 16')])
  .transform((v): number => (v === true || v === 'true' || v === 'yes' ? 1 : v === false || v === 'false' || v === 'no' ? 0 : Number(v)))
  .pipe(z.number().int().min(0).max(16, 'at most 16 proxies'));

/** An OTLP/HTTP collector URL (http or https). */
const otlpUrl = z
  .string()
  .trim()
  .url()
  .regex(/^https?:\/\//i, 'must be an http:// or https:// URL');
/** OTEL_EXPORTER_OTLP_HEADERS: `key=value,key2=value2` (W3C baggage-like; values URL-encoded). */
const otlpHeaders = z
  .string()
  .trim()
  .regex(/^[^=,\s]+=[^,]*(?:,\s*[^=,\s]+=[^,]*)*$/, 'must be comma-separated key=value pairs');

function spec<T extends z.ZodType>(s: SettingSpec<T>): SettingSpec<T> {
  return s;
}

export const SETTINGS = {
  port: spec({
    env: 'PORT',
    schema: port.default(8080),
    description: 'HTTP port the server listens on (0 picks a free port).',
    fix: 'set it to a number between 0 and 65535',
  }),
  host: spec({
    env: 'ENCLAVE_HOST',
    schema: nonEmpty.default('0.0.0.0'),
    description: 'Address the HTTP server binds to.',
    fix: 'set it to an IP address such as 0.0.0.0 or 127.0.0.1',
  }),
  deployment: spec({
    env: 'ENCLAVE_DEPLOYMENT',
    schema: z.enum(['embedded', 'production']).default('embedded'),
    description:
      'embedded: single host, may generate a master key and start redis-server itself. production: requires ENCLAVE_MASTER_KEY and REDIS_URL.',
    fix: 'use "embedded" or "production"',
  }),
  dataDir: spec({
    env: 'ENCLAVE_DATA_DIR',
    schema: nonEmpty.default('./data'),
    description: 'Directory for the SQLite database, uploaded files, embedded Redis and generated keys.',
    fix: 'set it to a writable directory path',
  }),
  databaseUrl: spec({
    env: 'ENCLAVE_DATABASE_URL',
    schema: z
      .string()
      .trim()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .optional(),
    description:
      'PostgreSQL (postgres://user:pass@host:5432/db?sslmode=verify-full) instead of SQLite in the data dir: the server, the worker and the CLI all use it (replicas share it; docs/postgres.md). Unset: SQLite in the data dir.',
    secret: true,
    fix: 'use a URL like postgres://enclave@db.example.com:5432/enclave?sslmode=verify-full, or unset it to use SQLite',
  }),
  databasePoolMax: spec({
    env: 'ENCLAVE_DATABASE_POOL_MAX',
    schema: positiveInt.default(10),
    description: 'PostgreSQL connections each Enclave process opens at most (sizing per replica: docs/postgres.md).',
    fix: 'set it to a positive whole number, e.g. 10',
  }),
  databaseCaFile: spec({
    env: 'ENCLAVE_DATABASE_CA_FILE',
    schema: nonEmpty.optional(),
    description: 'PEM file of the CA that signed the PostgreSQL server certificate (sslmode=verify-ca or verify-full); unset: the system CAs.',
    fix: 'point it to a readable PEM file',
  }),
  databaseStatementTimeoutMs: spec({
    env: 'ENCLAVE_DATABASE_STATEMENT_TIMEOUT_MS',
    schema: z.coerce.number().int().min(0).default(30_000),
    description: 'PostgreSQL statement_timeout of every Enclave connection in ms (0 = none); migrations run without it.',
    fix: 'set it to a whole number of milliseconds, e.g. 30000',
  }),
  configFile: spec({
    env: 'ENCLAVE_CONFIG',
    schema: nonEmpty.optional(),
    description: 'Optional JSON file with any of these settings (environment variables win).',
    fix: 'point it to a readable JSON file',
  }),
  redisUrl: spec({
    env: 'REDIS_URL',
    schema: z
      .string()
      .trim()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .optional(),
    description:
      'Redis for rate limits and jobs. Unset in embedded mode: a redis-server on PATH is started with its files in the data dir.',
    secret: true,
    fix: 'use a URL like redis://127.0.0.1:6379/0',
  }),
  redisServerBin: spec({
    env: 'ENCLAVE_REDIS_SERVER_BIN',
    schema: nonEmpty.default('redis-server'),
    description: 'redis-server executable used in embedded mode when REDIS_URL is unset.',
    fix: 'set it to the path of redis-server',
  }),
  masterKey: spec({
    env: 'ENCLAVE_MASTER_KEY',
    schema: z
      .string()
      .trim()
      .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
      .optional(),
    description:
      'AES-256-GCM key for secrets at rest (base64, 32 bytes). Embedded mode generates one into the data dir when unset.',
    secret: true,
    fix: 'generate one with: openssl rand -base64 32',
  }),
  masterKeyFile: spec({
    env: 'ENCLAVE_MASTER_KEY_FILE',
    schema: nonEmpty.optional(),
    description: 'File holding the master key (docker secrets); used when ENCLAVE_MASTER_KEY is unset.',
    fix: 'point it to a file containing a base64 32-byte key',
  }),
  previousMasterKeys: spec({
    env: 'ENCLAVE_PREVIOUS_MASTER_KEYS',
    schema: z
      .string()
      .trim()
      .refine(
        (v) => v.split(',').every((k) => Buffer.from(k.trim(), 'base64').length === 32),
        'every key must be 32 bytes, base64-encoded',
      )
      .optional(),
    description: 'Comma-separated older master keys, still accepted for decryption during a key rotation.',
    secret: true,
    fix: 'list base64 32-byte keys separated by commas',
  }),
  logLevel: spec({
    env: 'ENCLAVE_LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    description: 'pino log level.',
    fix: 'use one of fatal, error, warn, info, debug, trace, silent',
  }),
  maxBodyBytes: spec({
    env: 'ENCLAVE_MAX_BODY_BYTES',
    schema: positiveInt.default(10 * 1024 * 1024),
    description: 'Largest accepted JSON request body in bytes (413 body_too_large above it).',
    fix: 'set it to a positive number of bytes',
  }),
  apiWorkers: spec({
    env: 'ENCLAVE_API_WORKERS',
    schema: z.coerce.number().int().min(1).max(64).default(1),
    description: 'API processes serving PORT (node cluster; `--role api` and `all`). Raise it to use more cores for AI traffic: each process adds about 100 MB RSS.',
    fix: 'set it to a whole number from 1 to 64 (e.g. the number of cores)',
  }),
  shutdownTimeoutMs: spec({
    env: 'ENCLAVE_SHUTDOWN_TIMEOUT_MS',
    schema: positiveInt.default(15000),
    description: 'How long a graceful shutdown waits for in-flight requests before closing them.',
    fix: 'set it to a positive number of milliseconds',
  }),
  trustProxy: spec({
    env: 'ENCLAVE_TRUST_PROXY',
    schema: proxyHops.default(0),
    description:
      'Reverse proxies in front of Enclave whose X-Forwarded-* headers are trusted: a number of hops (the client address is taken that many entries from the right of X-Forwarded-For, so entries a client sends itself are ignored); true = 1 hop, false = 0 (use the socket address).',
    fix: 'use false, true (one proxy) or the number of proxies (0-16)',
  }),
  metricsToken: spec({
    env: 'ENCLAVE_METRICS_TOKEN',
    schema: nonEmpty.optional(),
    description: 'When set, GET /metrics requires "Authorization: Bearer <token>" (from any address). Unset: /metrics answers only loopback clients unless ENCLAVE_METRICS_PUBLIC=true.',
    secret: true,
    fix: 'set it to a non-empty token',
  }),
  metricsTokenFile: spec({
    env: 'ENCLAVE_METRICS_TOKEN_FILE',
    schema: nonEmpty.optional(),
    description:
      'File holding the /metrics bearer token (docker secret written by the installer; Prometheus reads the same file as credentials_file); used when ENCLAVE_METRICS_TOKEN is unset.',
    fix: 'point it to a readable file containing the token (one line, at least 16 characters)',
  }),
  metricsPublic: spec({
    env: 'ENCLAVE_METRICS_PUBLIC',
    schema: bool.default(false),
    description:
      'Without a metrics token, GET /metrics (api and worker) answers only clients on this host (loopback). true opens it to every client that can reach the port; prefer ENCLAVE_METRICS_TOKEN.',
    fix: 'use true or false',
  }),
  workerMetricsPort: spec({
    env: 'ENCLAVE_WORKER_METRICS_PORT',
    schema: port.optional(),
    description:
      'Port on which the worker role serves its own GET /metrics (on ENCLAVE_HOST, the same token or loopback rule as the API); unset: the worker serves no metrics.',
    fix: 'set it to a number between 0 and 65535 (compose uses 9464)',
  }),
  // Consumed by the SSO issue; set by the installer's compose bundle (installer/, compose/).
  publicUrl: spec({
    env: 'ENCLAVE_PUBLIC_URL',
    schema: z.string().trim().url().optional(),
    description:
      'Canonical public URL of the appliance (e.g. https://enclave.example.com); OIDC redirect and logout URLs are built from it.',
    fix: 'set it to an absolute URL such as https://enclave.example.com',
  }),
  oidcIssuer: spec({
    env: 'ENCLAVE_OIDC_ISSUER',
    schema: z.string().trim().url().optional(),
    description:
      'OIDC issuer pinned for SSO (bundled Keycloak: <ENCLAVE_PUBLIC_URL>/auth/realms/enclave); must equal the issuer the IdP advertises.',
    fix: 'set it to the exact issuer URL, e.g. https://enclave.example.com/auth/realms/enclave',
  }),
  oidcClientId: spec({
    env: 'ENCLAVE_OIDC_CLIENT_ID',
    schema: nonEmpty.default('enclave'),
    description: 'OIDC client id Enclave uses at the IdP (the bundled Keycloak realm registers "enclave").',
    fix: 'set it to the client id registered at the IdP',
  }),
  oidcClientSecretFile: spec({
    env: 'ENCLAVE_OIDC_CLIENT_SECRET_FILE',
    schema: nonEmpty.optional(),
    description: 'File holding the OIDC client secret (docker secret written by the installer).',
    fix: 'point it to a readable file containing the client secret',
  }),
  oidcInternalUrl: spec({
    env: 'ENCLAVE_OIDC_INTERNAL_URL',
    schema: z.string().trim().url().optional(),
    description:
      'Origin the server uses to reach the platform IdP when the public issuer is not reachable from inside the stack (compose: http://keycloak:8080); requests to the issuer origin are rewritten to it, the pinned issuer and signature checks stay.',
    fix: 'set it to an origin such as http://keycloak:8080, or leave it unset to call the issuer URL directly',
  }),
  oidcRolesClaim: spec({
    env: 'ENCLAVE_OIDC_ROLES_CLAIM',
    schema: nonEmpty.default('roles'),
    description:
      'Dotted path of the roles claim in the platform IdP\'s ID token (bundled realm: "roles"; Keycloak default access-token shape: realm_access.roles).',
    fix: 'set it to a dotted claim path such as roles or realm_access.roles',
  }),
  oidcGroupsClaim: spec({
    env: 'ENCLAVE_OIDC_GROUPS_CLAIM',
    schema: nonEmpty.default('groups'),
    description: 'Dotted path of the groups claim in the platform IdP\'s ID token (bundled realm: full-path "groups").',
    fix: 'set it to a dotted claim path such as groups',
  }),
  oidcAdminRole: spec({
    env: 'ENCLAVE_OIDC_ADMIN_ROLE',
    schema: nonEmpty.default('enclave-admin'),
    description:
      'Value of the platform IdP\'s roles claim that makes a user a platform administrator (only the platform IdP can grant it).',
    fix: 'set it to the IdP role name, e.g. enclave-admin',
  }),
  oidcAllowLoopbackHttp: spec({
    env: 'ENCLAVE_OIDC_ALLOW_LOOPBACK_HTTP',
    schema: bool.default(false),
    description: 'Tests and local development only: allow http:// IdP issuers on 127.0.0.1/localhost (otherwise every IdP must use https).',
    fix: 'use true or false',
  }),
  adminEmail: spec({
    env: 'ENCLAVE_ADMIN_EMAIL',
    schema: z.string().trim().toLowerCase().pipe(z.email()).optional(),
    description: 'E-mail of the first platform administrator, created at start when no platform administrator exists yet.',
    fix: 'set it to an e-mail address, together with ENCLAVE_ADMIN_PASSWORD',
  }),
  adminPassword: spec({
    env: 'ENCLAVE_ADMIN_PASSWORD',
    schema: z.string().min(12).max(256).optional(),
    description: 'Password of the first platform administrator (used once, with ENCLAVE_ADMIN_EMAIL; change it after the first login).',
    secret: true,
    fix: 'use at least 12 characters (or create the admin with: enclave admin create --email E --password-stdin)',
  }),
  adminPasswordFile: spec({
    env: 'ENCLAVE_ADMIN_PASSWORD_FILE',
    schema: nonEmpty.optional(),
    description: 'File holding the first administrator\'s password (docker secrets); used when ENCLAVE_ADMIN_PASSWORD is unset.',
    fix: 'point it to a readable file holding a password of at least 12 characters',
  }),
  sessionIdleMinutes: spec({
    env: 'ENCLAVE_SESSION_IDLE_MINUTES',
    schema: positiveInt.default(60),
    description: 'A web session ends after this many minutes without a request.',
    fix: 'set it to a positive number of minutes',
  }),
  sessionMaxHours: spec({
    env: 'ENCLAVE_SESSION_MAX_HOURS',
    schema: positiveInt.default(12),
    description: 'A web session ends this many hours after login, however active it is.',
    fix: 'set it to a positive number of hours',
  }),
  cookieSecure: spec({
    env: 'ENCLAVE_COOKIE_SECURE',
    schema: z.enum(['auto', 'true', 'false']).default('auto'),
    description: 'Secure flag of the session cookie: auto sets it when the request came over TLS (honours ENCLAVE_TRUST_PROXY).',
    fix: 'use auto, true or false',
  }),
  licenseMode: spec({
    env: 'ENCLAVE_LICENSE_MODE',
    schema: z.enum(['production', 'test']).default('production'),
    description:
      'production trusts only the licence roots shipped in license/keys/. test also trusts the committed TEST root (anyone can mint licences for it): tests and demos only, logged loudly.',
    fix: 'use "production" or "test"',
  }),
  licenseFile: spec({
    env: 'ENCLAVE_LICENSE_FILE',
    schema: nonEmpty.optional(),
    description: 'Licence file installed at start-up when it is newer than the installed one (a bad file is logged, never fatal).',
    fix: 'point it to a readable licence file (-----BEGIN ENCLAVE LICENSE-----)',
  }),
  licenseEnvironment: spec({
    env: 'ENCLAVE_LICENSE_ENVIRONMENT',
    schema: z.enum(['production', 'non_production']).default('production'),
    description: 'This installation\'s environment: a production installation refuses licences issued for non_production.',
    fix: 'use "production" or "non_production"',
  }),
  jobLockMs: spec({
    env: 'ENCLAVE_JOB_LOCK_MS',
    schema: z.coerce.number().int().min(1000).default(30000),
    description:
      'Worker job lock: a job whose worker died (crash, SIGKILL) is taken over by another worker after about this long (also the stalled-check interval).',
    fix: 'set it to a number of milliseconds of at least 1000',
  }),
  aiLaneConcurrency: spec({
    env: 'ENCLAVE_AI_LANE_CONCURRENCY',
    schema: positiveInt.default(4),
    description: 'Jobs (batches) one worker runs at the same time on the ai lane.',
    fix: 'set it to a positive number',
  }),
  tenantActiveJobs: spec({
    env: 'ENCLAVE_TENANT_ACTIVE_JOBS',
    schema: positiveInt.default(1),
    description: 'Fairness: default cap on one tenant\'s active jobs per lane (a plan\'s max_active_jobs wins); the rest waits so other tenants run.',
    fix: 'set it to a positive number',
  }),
  batchMaxFileBytes: spec({
    env: 'ENCLAVE_BATCH_MAX_FILE_BYTES',
    schema: positiveInt.default(100 * 1024 * 1024),
    description: 'Largest batch input file accepted by POST /v1/files, in bytes.',
    fix: 'set it to a positive number of bytes',
  }),
  backupCron: spec({
    env: 'ENCLAVE_BACKUP_CRON',
    schema: nonEmpty.optional(),
    description: 'Scheduled backups by the worker (cron pattern, e.g. "0 3 * * *"; keeps the newest 14 in <dataDir>/backups). Unset: no scheduled backups.',
    fix: 'set it to a cron pattern such as "0 3 * * *", or leave it unset',
  }),
  backupRecipient: spec({
    env: 'ENCLAVE_BACKUP_RECIPIENT',
    schema: z
      .string()
      .trim()
      .regex(/^enclave-x25519:[A-Za-z0-9_-]{43}$/, 'must be an enclave-x25519: public key')
      .optional(),
    description:
      'X25519 public key (from enclave backup keygen) that scheduled backups are encrypted to; the appliance never holds the private half. Unset: scheduled backups are not encrypted.',
    fix: 'paste the public key printed by: enclave backup keygen --out operator.key',
  }),
  auditArchiveDays: spec({
    env: 'ENCLAVE_AUDIT_ARCHIVE_DAYS',
    schema: positiveInt.optional(),
    description:
      'Audit entries older than this many days are exported daily by the worker to <dataDir>/audit-archive/ as JSON lines with their hashes (the chain continues across files). Export only: entries stay in the database, because deleting them would break enclave audit verify. Unset: no audit archive.',
    fix: 'set it to a positive number of days (e.g. 365), or leave it unset',
  }),
  batchMaxLines: spec({
    env: 'ENCLAVE_BATCH_MAX_LINES',
    schema: positiveInt.default(50000),
    description: 'Most requests (lines) in one batch input file.',
    fix: 'set it to a positive number',
  }),
  contentScanSliceChars: spec({
    env: 'ENCLAVE_CONTENT_SCAN_SLICE_CHARS',
    schema: z.coerce.number().int().min(1024).default(65536),
    description:
      'Content rules scan request text in slices of at most this many characters; every slice is scanned (nothing is skipped), a built-in detector finishes a token that crosses a slice boundary, and a tenant pattern sees its slice plus 1,024 characters. See docs/security.md, "Content rules and outbound requests".',
    fix: 'set it to a whole number of characters, at least 1024 (default 65536)',
  }),
  tenantProviderNetworks: spec({
    env: 'ENCLAVE_TENANT_PROVIDER_NETWORKS',
    schema: z
      .string()
      .trim()
      .default('')
      .superRefine((v, ctx) => {
        try {
          parseNetworks(v);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
        }
      }),
    description:
      "Networks (comma-separated CIDRs or addresses) tenant-private provider deployments and tenants' soft-limit webhooks may connect to. Empty: any address except loopback, link-local (cloud metadata), unspecified and multicast. Platform deployments are not restricted.",
    fix: 'use comma-separated networks such as "10.20.0.0/16, 192.168.5.10", or leave it empty',
  }),
  rateLimitFailureMode: spec({
    env: 'ENCLAVE_RATE_LIMIT_FAILURE_MODE',
    schema: z.enum(['fail-open', 'fail-closed']).default('fail-open'),
    description:
      'When Redis is unavailable: fail-open keeps serving with per-process rate limits and budgets from the SQLite ledger (a metric and a log line say so); fail-closed answers 503 rate_limiter_unavailable.',
    fix: 'use "fail-open" or "fail-closed"',
  }),
  // OpenTelemetry traces (issue 25, server/telemetry, docs/observability.md): the standard OTEL_* variables.
  otelEndpoint: spec({
    env: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    schema: otlpUrl.optional(),
    description:
      "OpenTelemetry: the collector's OTLP/HTTP base URL (traces go to <url>/v1/traces), e.g. http://otel-collector:4318. Unset, and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT unset: no tracing at all (the SDK is not even loaded). docs/observability.md.",
    fix: 'set it to an http(s) URL such as http://otel-collector:4318, or leave it unset',
  }),
  otelTracesEndpoint: spec({
    env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
    schema: otlpUrl.optional(),
    description: 'OpenTelemetry: the full URL traces are posted to (used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT).',
    fix: 'set it to an http(s) URL such as http://otel-collector:4318/v1/traces, or leave it unset',
  }),
  otelProtocol: spec({
    env: 'OTEL_EXPORTER_OTLP_PROTOCOL',
    schema: z.enum(['http/protobuf', 'http/json']).default('http/protobuf'),
    description: 'OpenTelemetry: OTLP/HTTP encoding of exported spans (protobuf, the OTLP default, or JSON). gRPC is not offered.',
    fix: 'use "http/protobuf" or "http/json" (Enclave exports over OTLP/HTTP)',
  }),
  otelTimeout: spec({
    env: 'OTEL_EXPORTER_OTLP_TIMEOUT',
    schema: positiveInt.default(10000),
    description: 'OpenTelemetry: milliseconds one export may take, retries of an unreachable collector included; then its spans are dropped and counted.',
    fix: 'set it to a positive number of milliseconds, e.g. 10000',
  }),
  otelHeaders: spec({
    env: 'OTEL_EXPORTER_OTLP_HEADERS',
    schema: otlpHeaders.optional(),
    description: 'OpenTelemetry: headers sent with every export, as key=value pairs separated by commas (values URL-encoded), e.g. authorization=Bearer%20abc.',
    secret: true,
    fix: 'use comma-separated key=value pairs such as "authorization=Bearer%20abc,x-scope=team1"',
  }),
  otelServiceName: spec({
    env: 'OTEL_SERVICE_NAME',
    schema: nonEmpty.default('enclave'),
    description: "OpenTelemetry: the resource's service.name on every span.",
    fix: 'set it to a non-empty name such as enclave',
  }),
  otelSampler: spec({
    env: 'OTEL_TRACES_SAMPLER',
    schema: z.enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']).default('parentbased_always_on'),
    description: "OpenTelemetry: which calls are traced. parentbased_* follow the client's traceparent sampled flag when it sent one; traceidratio keeps the fraction OTEL_TRACES_SAMPLER_ARG of traces.",
    fix: 'use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio',
  }),
  otelSamplerArg: spec({
    env: 'OTEL_TRACES_SAMPLER_ARG',
    schema: z.coerce.number().min(0).max(1).optional(),
    description: 'OpenTelemetry: the ratio (0 to 1) of the traceidratio samplers. Unset: 1.',
    fix: 'set it to a number from 0 to 1, e.g. 0.1',
  }),
  otelBspScheduleDelay: spec({
    env: 'OTEL_BSP_SCHEDULE_DELAY',
    schema: z.coerce.number().int().min(1).default(5000),
    description: 'OpenTelemetry: milliseconds between two exports of finished spans (a full batch of 512 leaves at once).',
    fix: 'set it to a positive number of milliseconds, e.g. 5000',
  }),
  otelBspMaxQueueSize: spec({
    env: 'OTEL_BSP_MAX_QUEUE_SIZE',
    schema: positiveInt.default(2048),
    description:
      'OpenTelemetry: finished spans held for export at most; past it (a slow or unreachable collector) new spans are dropped and counted in enclave_otel_spans_dropped_total, never waited for.',
    fix: 'set it to a positive number, e.g. 2048',
  }),
  otelSdkDisabled: spec({
    env: 'OTEL_SDK_DISABLED',
    schema: bool.default(false),
    description: 'OpenTelemetry: true turns tracing off even when an endpoint is set.',
    fix: 'use true or false',
  }),
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type Config = { [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };
