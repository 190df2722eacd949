import { boolean, index, integer, pgTable, primaryKey, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { counter, epochMs, floatVector, jsonExact, jsonText } from './columns.js';

/**
 * The PostgreSQL schema (issue 22): the same tables, column names, keys, indexes and foreign
 * keys as the SQLite schema (server/db/schema.ts), with native types — timestamptz for times,
 * jsonb/json for JSON, boolean, bigint for counters — but the same TypeScript row types (see
 * ./columns.ts), so code written against one reads the other's rows alike.
 *
 * Two schemas kept equal by a test (test/unit/schema-parity.test.ts compares every table,
 * column, nullability, default, key, index and foreign key, and the column kinds) rather than
 * one generated from the other: drizzle's two dialect builders are different classes with
 * different column types, a generator would have to be a code generator (a build step every
 * engineer must remember) and would hide the per-column type choices (json vs jsonb, bigint
 * vs integer) that this file states. A table added to one schema only fails the parity test.
 *
 * Not here, as in SQLite: schema_migrations (the migrator's bookkeeping), the usage rollup
 * trigger and the chat search index, which are SQL of their own in migrations-pg/.
 * Tenant-owned tables: see TENANT_OWNED below and the same rules as the SQLite schema.
 */

/** Runtime settings (admin-editable, audited). Secret values are SecretBox ciphertexts. */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  secret: boolean('secret').notNull().default(false),
  updatedAt: epochMs('updated_at').notNull(),
});

export const tenants = pgTable('tenants', {
  id: text('id').primaryKey(),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  status: text('status', { enum: ['active', 'suspended'] }).notNull().default('active'),
  /** Plan reference (plans are defined by metering); null = the default plan. */
  plan: text('plan'),
  defaultClassification: text('default_classification', { enum: ['public', 'internal', 'confidential', 'restricted'] })
    .notNull()
    .default('internal'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

/** Tenant settings (tenant-admin-editable within the plan). Values are JSON text. */
export const tenantSettings = pgTable(
  'tenant_settings',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    value: jsonText('value').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] })],
);


// ---------------------------------------------------------------------------
// Identity and access (issue 3): users, memberships, sessions, API keys, login
// throttling, the audit chain and the identity revision counter.
// ---------------------------------------------------------------------------

/** A person. Not tenant-owned: one user may belong to several tenants (memberships). */
export const users = pgTable('users', {
  id: text('id').primaryKey(),
  /** Lower-cased. */
  email: text('email').notNull().unique(),
  name: text('name').notNull(),
  /** `scrypt$…` (see server/identity/passwords.ts); null for SSO-only users. */
  passwordHash: text('password_hash'),
  /** Platform administrator: a flag of its own, never derived from a tenant role. */
  platformAdmin: boolean('platform_admin').notNull().default(false),
  status: text('status', { enum: ['active', 'deactivated'] }).notNull().default('active'),
  passwordChangedAt: epochMs('password_changed_at'),
  /** The tenant the user last worked in (login lands there; never a tenant picked by sort order). */
  lastTenantId: text('last_tenant_id'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

/** A user's role in one tenant. */
export const memberships = pgTable(
  'memberships',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['owner', 'admin', 'member', 'viewer'] }).notNull(),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.userId] }), index('memberships_user_idx').on(t.userId)],
);

/** Server-side sessions. Only the SHA-256 of the session token is stored. */
export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    tokenHash: text('token_hash').notNull().unique(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** The tenant the session acts in; switching it is an explicit request. */
    activeTenantId: text('active_tenant_id').references(() => tenants.id, { onDelete: 'set null' }),
    createdAt: epochMs('created_at').notNull(),
    lastSeenAt: epochMs('last_seen_at').notNull(),
    /** Absolute timeout. */
    expiresAt: epochMs('expires_at').notNull(),
    ip: text('ip'),
    userAgent: text('user_agent'),
    revokedAt: epochMs('revoked_at'),
    revokedReason: text('revoked_reason'),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

/** API keys: only the SHA-256 of the secret is stored; `prefix` is the short visible part. */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    ownerUserId: text('owner_user_id').references(() => users.id, { onDelete: 'set null' }),
    name: text('name').notNull(),
    prefix: text('prefix').notNull().unique(),
    keyHash: text('key_hash').notNull(),
    /** JSON array of scopes. */
    scopes: jsonText('scopes').notNull(),
    /** JSON array of model names; empty = every model the tenant may use. */
    allowedModels: jsonText('allowed_models').notNull().default('[]'),
    maxClassification: text('max_classification', { enum: ['public', 'internal', 'confidential', 'restricted'] }),
    expiresAt: epochMs('expires_at'),
    lastUsedAt: epochMs('last_used_at'),
    lastUsedIp: text('last_used_ip'),
    createdAt: epochMs('created_at').notNull(),
    /** Actor that created it: `user:<id>` or `system:<name>`. */
    createdBy: text('created_by').notNull(),
    revokedAt: epochMs('revoked_at'),
    revokedBy: text('revoked_by'),
    rotatedFromId: text('rotated_from_id'),
    /** The team the key belongs to (issue 24): its calls count against the team. */
    teamId: text('team_id').references(() => teams.id, { onDelete: 'set null' }),
  },
  (t) => [index('api_keys_tenant_idx').on(t.tenantId)],
);

/** Failed-login counters per account (`acct:<email>`) and per client address (`ip:<addr>`). */
export const loginThrottle = pgTable('login_throttle', {
  key: text('key').primaryKey(),
  failures: integer('failures').notNull(),
  windowStart: epochMs('window_start').notNull(),
  lockedUntil: epochMs('locked_until'),
  /** How many times the lock engaged in a row (the lock grows with it). */
  locks: integer('locks').notNull().default(0),
});

/**
 * The append-only audit log, hash-chained: `hash = sha256(prev_hash + canonical(entry))`.
 * `tenant_ref` is the tenant the entry belongs to, or null for platform-wide entries
 * (so the table is not tenant-owned and is not named tenant_id; tenant admins read it
 * through server/audit, which filters by their tenant).
 */
export const auditLog = pgTable(
  'audit_log',
  {
    seq: counter('seq').primaryKey(),
    id: text('id').notNull().unique(),
    at: epochMs('at').notNull(),
    tenantRef: text('tenant_ref'),
    actorType: text('actor_type', { enum: ['user', 'api_key', 'system', 'anonymous'] }).notNull(),
    actorId: text('actor_id'),
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    outcome: text('outcome', { enum: ['allowed', 'denied'] }).notNull(),
    reason: text('reason'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    requestId: text('request_id'),
    /** JSON object; never a secret. */
    details: jsonExact('details').notNull().default('{}'),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [index('audit_log_tenant_idx').on(t.tenantRef, t.seq)],
);

/** The newest audit entry, so deleting entries at the end of the chain is detected too. */
export const auditHead = pgTable('audit_head', {
  id: integer('id').primaryKey(),
  seq: counter('seq').notNull(),
  hash: text('hash').notNull(),
});

/**
 * Change counters polled by every process (e.g. `identity`: bumped on any change that
 * affects authentication: key revocation, user deactivation, role change, suspension),
 * so caches notice changes made by other processes such as the CLI.
 */
export const revisions = pgTable('revisions', {
  name: text('name').primaryKey(),
  value: integer('value').notNull(),
});

// ---------------------------------------------------------------------------
// AI gateway (issue 5): provider deployments, model aliases, per-call usage records.
// ---------------------------------------------------------------------------

/**
 * A provider deployment: one upstream endpoint (Ollama or OpenAI-compatible) with its data
 * boundary. `tenant_ref` null = platform deployment (every tenant, policy permitting);
 * otherwise tenant-private. `api_key` is a SecretBox ciphertext (never returned).
 */
export const providerDeployments = pgTable('provider_deployments', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  /** server/providers/kinds.ts PROVIDER_KIND_NAMES (kept literal here: drizzle-kit loads this file alone). */
  kind: text('kind', { enum: ['ollama', 'openai', 'anthropic', 'azure-openai', 'bedrock', 'vertex', 'gemini'] }).notNull(),
  baseUrl: text('base_url').notNull(),
  apiKey: text('api_key'),
  /** JSON object: the kind's non-secret settings (server/providers/kinds.ts). */
  settings: jsonText('settings').notNull().default('{}'),
  /** SecretBox ciphertext of a JSON object: the kind's secret fields (never returned). */
  credentials: text('credentials'),
  boundary: text('boundary', { enum: ['local', 'private', 'public'] }).notNull(),
  region: text('region'),
  approved: boolean('approved').notNull().default(true),
  enabled: boolean('enabled').notNull().default(true),
  /** JSON array of {name, upstream?, type: 'chat'|'embedding'}. */
  models: jsonText('models').notNull().default('[]'),
  priority: integer('priority').notNull().default(100),
  weight: integer('weight').notNull().default(1),
  maxConcurrency: integer('max_concurrency').notNull().default(64),
  /** JSON object: connectMs, firstTokenMs, idleMs, totalMs, queueMs, maxRetries. */
  options: jsonText('options').notNull().default('{}'),
  tenantRef: text('tenant_ref'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

/** A model alias: the name a client sends → deployments (and upstream models) by priority/weight. */
export const modelAliases = pgTable('model_aliases', {
  name: text('name').primaryKey(),
  /** JSON array of {deployment, model, priority, weight}. */
  targets: jsonText('targets').notNull(),
  tenantRef: text('tenant_ref'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

/** One record per AI call (also errors, disconnects, mid-stream failures). Never content. */
export const usageRecords = pgTable(
  'usage_records',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    requestId: text('request_id').notNull(),
    userId: text('user_id'),
    keyId: text('key_id'),
    workflow: text('workflow'),
    endpoint: text('endpoint').notNull(),
    /** The face the call came through: chat (OpenAI /v1), responses, messages, ollama, batch. */
    api: text('api').notNull().default('chat'),
    alias: text('alias'),
    deploymentId: text('deployment_id'),
    provider: text('provider'),
    model: text('model'),
    boundary: text('boundary'),
    classification: text('classification'),
    /** JSON object: rule type → hit count; the decision (allow/redact/route_local/block). Never matched text. */
    policy: jsonText('policy').notNull().default('{}'),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    tokensEstimated: boolean('tokens_estimated').notNull().default(false),
    costMicros: counter('cost_micros').notNull().default(0),
    /** The price version (prices.version) the cost was computed with; null = no price known. */
    priceVersion: integer('price_version'),
    latencyMs: integer('latency_ms').notNull(),
    ttftMs: integer('ttft_ms'),
    stream: boolean('stream').notNull().default(false),
    attempts: integer('attempts').notNull().default(0),
    status: text('status').notNull(),
    httpStatus: integer('http_status').notNull(),
    errorCode: text('error_code'),
    createdAt: epochMs('created_at').notNull(),
    /** Response cache (server/gateway/cache): hit, miss or bypass; null = the tenant's cache was off. */
    cache: text('cache'),
    /** On a cache hit: the cost of the call whose answer was served (what the hit saved). */
    savedCostMicros: counter('saved_cost_micros').notNull().default(0),
    /** The team the call counted against (issue 24; server/teams); null = none. */
    teamId: text('team_id'),
  },
  (t) => [index('usage_records_tenant_idx').on(t.tenantId, t.createdAt), index('usage_records_request_idx').on(t.requestId)],
);

// ---------------------------------------------------------------------------
// SSO / OpenID Connect (issue 4): per-tenant IdPs, external identities, SSO sessions.
// ---------------------------------------------------------------------------

/**
 * A tenant's own OpenID Connect IdP. `client_secret` is a SecretBox ciphertext (AAD
 * `sso_idps.client_secret:<id>`), never returned. JSON columns: mapping
 * [{claim:'roles'|'groups', value, role}], allowed_domains [domain], last_claims (values of
 * the mapped claims only, never tokens). The platform IdP (bundled Keycloak) is not here:
 * it comes from bootstrap settings.
 */
export const ssoIdps = pgTable(
  'sso_idps',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    issuer: text('issuer').notNull(),
    clientId: text('client_id').notNull(),
    clientSecret: text('client_secret').notNull(),
    scopes: text('scopes').notNull().default('openid email profile'),
    claimSource: text('claim_source', { enum: ['id_token', 'access_token', 'userinfo'] }).notNull().default('id_token'),
    rolesPath: text('roles_path'),
    groupsPath: text('groups_path'),
    mapping: jsonText('mapping').notNull().default('[]'),
    defaultRole: text('default_role', { enum: ['owner', 'admin', 'member', 'viewer'] }),
    allowedDomains: jsonText('allowed_domains').notNull().default('[]'),
    jit: boolean('jit').notNull().default(false),
    enforceSso: boolean('enforce_sso').notNull().default(false),
    enabled: boolean('enabled').notNull().default(true),
    /** `oidc` (issuer/client_id/client_secret) or `saml` (issuer = the IdP entity id; server/sso/saml). */
    protocol: text('protocol', { enum: ['oidc', 'saml'] }).notNull().default('oidc'),
    /** SAML settings (JSON: sso_url, certificates, attribute names, allow_idp_initiated); null for OIDC. */
    saml: jsonText('saml'),
    lastClaims: jsonText('last_claims'),
    lastClaimsAt: epochMs('last_claims_at'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('sso_idps_tenant_idx').on(t.tenantId), index('sso_idps_issuer_idx').on(t.issuer)],
);

/** An external identity: (issuer, subject) → user. Never looked up by e-mail. */
export const ssoIdentities = pgTable(
  'sso_identities',
  {
    id: text('id').primaryKey(),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** `platform` or the sso_idps id it was first seen through. */
    idpRef: text('idp_ref').notNull(),
    /** Whether the platform IdP's mapping granted platform admin (so a later login may take it back). */
    platformAdminManaged: boolean('platform_admin_managed').notNull().default(false),
    /**
     * Why this IdP may assert this account (server/sso/authority.ts): `provisioned` (the IdP
     * created it), `linked_by_user` (the account holder linked it while signed in),
     * `linked_by_email` (verified domain of the IdP's tenant), `legacy` (made before the
     * identity-authority rules; re-checked at every login).
     */
    origin: text('origin', { enum: ['provisioned', 'linked_by_user', 'linked_by_email', 'legacy'] }).notNull().default('legacy'),
    createdAt: epochMs('created_at').notNull(),
    lastLoginAt: epochMs('last_login_at').notNull(),
  },
  (t) => [uniqueIndex('sso_identities_iss_sub_idx').on(t.issuer, t.subject), index('sso_identities_user_idx').on(t.userId)],
);

/** The IdP side of an Enclave session made by SSO: for back-channel and RP-initiated logout. */
export const ssoSessions = pgTable(
  'sso_sessions',
  {
    sessionId: text('session_id')
      .primaryKey()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    idpRef: text('idp_ref').notNull(),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    sid: text('sid'),
    /** SecretBox ciphertext of the ID token (AAD `sso_sessions.id_token:<session_id>`), for id_token_hint. */
    idToken: text('id_token'),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [index('sso_sessions_sid_idx').on(t.issuer, t.sid), index('sso_sessions_sub_idx').on(t.issuer, t.subject)],
);

// ---------------------------------------------------------------------------
// Chat (issue 12): server-stored conversations of the web UI, per user and tenant.
// Message content is customer data: stored for the user's history, never logged.
// ---------------------------------------------------------------------------

export const conversations = pgTable(
  'conversations',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    model: text('model'),
    classification: text('classification'),
    /** The assistant (preset) the conversation was started with; its instructions are the first (system) message. */
    assistantId: text('assistant_id'),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    costMicros: counter('cost_micros').notNull().default(0),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('conversations_user_idx').on(t.tenantId, t.userId, t.updatedAt)],
);

export const chatMessages = pgTable(
  'chat_messages',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    conversationId: text('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['system', 'user', 'assistant'] }).notNull(),
    content: text('content').notNull(),
    model: text('model'),
    /** complete | stopped | error */
    status: text('status').notNull().default('complete'),
    errorCode: text('error_code'),
    /**
     * The message this one follows (null: the first of the conversation). A conversation is a
     * tree: an edited user turn and a regenerated answer are siblings under the same parent
     * (branches / versions the UI pages through); the history sent is the path to the parent.
     */
    parentId: text('parent_id'),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    costMicros: counter('cost_micros').notNull().default(0),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [index('chat_messages_conversation_idx').on(t.tenantId, t.conversationId, t.createdAt)],
);

/**
 * Files attached to chat messages (issue 20): images for vision models, uploaded before the
 * turn is sent (message_id null until then) and stored with the turn, base64 in `data`
 * (dialect-neutral text). The conversation owns them: deleting it deletes them.
 */
export const chatAttachments = pgTable(
  'chat_attachments',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    conversationId: text('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    /** The user message it was sent with; null while only uploaded. */
    messageId: text('message_id'),
    userId: text('user_id').notNull(),
    mime: text('mime').notNull(),
    name: text('name'),
    bytes: counter('bytes').notNull(),
    /** Base64 of the file. */
    data: text('data').notNull(),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [index('chat_attachments_conversation_idx').on(t.tenantId, t.conversationId)],
);

/**
 * Assistants (presets) of the chat (issue 21): instructions (the system prompt), a model and
 * a classification to preselect, starter prompts. `ownerUserId` null = shared in the tenant
 * (tenant admins manage them); otherwise private to that user. The model and classification
 * are only preselected: the gateway still decides every call.
 */
export const assistants = pgTable(
  'assistants',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    ownerUserId: text('owner_user_id').references(() => users.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    instructions: text('instructions').notNull(),
    model: text('model'),
    classification: text('classification'),
    /** JSON array of strings. */
    starters: jsonText('starters').notNull().default('[]'),
    createdBy: text('created_by').notNull(),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('assistants_tenant_idx').on(t.tenantId, t.ownerUserId)],
);

/** 👍/👎 with an optional comment on an assistant message: one per user per message, changeable. */
export const messageFeedback = pgTable(
  'message_feedback',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    messageId: text('message_id')
      .notNull()
      .references(() => chatMessages.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** The answering model (copied from the message, so the per-model view needs no join). */
    model: text('model').notNull(),
    rating: text('rating', { enum: ['up', 'down'] }).notNull(),
    comment: text('comment'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [uniqueIndex('message_feedback_once').on(t.tenantId, t.messageId, t.userId), index('message_feedback_model_idx').on(t.tenantId, t.model, t.updatedAt)],
);

/** The tenant's approved prompt library (issue 21): a prompt is its versions; the newest is current. */
export const prompts = pgTable(
  'prompts',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The newest version's number (1-based). */
    version: integer('version').notNull(),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('prompts_tenant_idx').on(t.tenantId, t.updatedAt)],
);

/** Every version of a library prompt, with who wrote it and when (never changed once written). */
export const promptVersions = pgTable(
  'prompt_versions',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    promptId: text('prompt_id')
      .notNull()
      .references(() => prompts.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    title: text('title').notNull(),
    body: text('body').notNull(),
    /** The actor who wrote this version (a user id or `system:<name>`). */
    authorId: text('author_id').notNull(),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [uniqueIndex('prompt_versions_once').on(t.tenantId, t.promptId, t.version)],
);

// ---------------------------------------------------------------------------
// Background execution (issue 8): uploaded files, OpenAI-compatible batches and their
// per-line progress (exactly-once bookkeeping across worker crashes).
// ---------------------------------------------------------------------------

/**
 * An uploaded (purpose `batch`) or generated (`batch_output`) file. The bytes live under
 * `<dataDir>/files/<tenant_id>/<id>.jsonl`; `path` is relative to the data dir.
 */
export const files = pgTable(
  'files',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    purpose: text('purpose', { enum: ['batch', 'batch_output', 'assistants', 'user_data'] }).notNull(),
    filename: text('filename').notNull(),
    bytes: counter('bytes').notNull(),
    lineCount: integer('line_count').notNull().default(0),
    path: text('path').notNull(),
    keyId: text('key_id'),
    createdAt: epochMs('created_at').notNull(),
    expiresAt: epochMs('expires_at'),
  },
  (t) => [index('files_tenant_idx').on(t.tenantId, t.createdAt)],
);

/** A batch: the OpenAI Batch object's state. Lines and prompts stay in the input file. */
export const batches = pgTable(
  'batches',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The API key that created it: lines run as this key (re-checked per line). */
    keyId: text('key_id').notNull(),
    keyPrefix: text('key_prefix').notNull(),
    userId: text('user_id'),
    endpoint: text('endpoint').notNull(),
    inputFileId: text('input_file_id').notNull(),
    completionWindow: text('completion_window').notNull(),
    /** validating | in_progress | finalizing | completed | failed | expired | cancelling | cancelled */
    status: text('status').notNull(),
    outputFileId: text('output_file_id'),
    errorFileId: text('error_file_id'),
    /** JSON array of {code, message, line?} (batch-level errors), or null. */
    errors: jsonText('errors'),
    total: integer('total').notNull().default(0),
    completed: integer('completed').notNull().default(0),
    failed: integer('failed').notNull().default(0),
    metadata: jsonText('metadata'),
    classification: text('classification'),
    createdAt: epochMs('created_at').notNull(),
    inProgressAt: epochMs('in_progress_at'),
    expiresAt: epochMs('expires_at').notNull(),
    finalizingAt: epochMs('finalizing_at'),
    completedAt: epochMs('completed_at'),
    failedAt: epochMs('failed_at'),
    expiredAt: epochMs('expired_at'),
    cancellingAt: epochMs('cancelling_at'),
    cancelledAt: epochMs('cancelled_at'),
    /** Times the job was (re-)enqueued by the reconciler. */
    enqueues: integer('enqueues').notNull().default(0),
  },
  (t) => [index('batches_tenant_idx').on(t.tenantId, t.createdAt), index('batches_status_idx').on(t.status)],
);

/**
 * One row per batch line once it has started: `running` is written before the upstream
 * call, `completed`/`failed` with the response in the same transaction as the usage record.
 * A line found `running` after a crash is never re-run (it may have reached the upstream).
 */
export const batchLines = pgTable(
  'batch_lines',
  {
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    line: integer('line').notNull(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    customId: text('custom_id').notNull(),
    /** running | completed | failed */
    status: text('status').notNull(),
    statusCode: integer('status_code'),
    requestId: text('request_id'),
    /** JSON response body (completed and failed-with-response lines) until the output file is written. */
    body: jsonExact('body'),
    /** JSON {code, message} for lines that produced no response. */
    error: jsonExact('error'),
    usageId: text('usage_id'),
    startedAt: epochMs('started_at').notNull(),
    finishedAt: epochMs('finished_at'),
  },
  (t) => [primaryKey({ columns: [t.batchId, t.line] })],
);

// ---- Metering (issue 7): plans, prices, limits, rollups, alerts -----------------------

/** Named plans defined by platform admins: capabilities (JSON array) and limits (JSON object). */
export const plans = pgTable('plans', {
  name: text('name').primaryKey(),
  description: text('description').notNull().default(''),
  /** JSON array of capability names (cloud_providers, batch_api, content_logging, self_service_keys, custom_providers). */
  capabilities: jsonText('capabilities').notNull().default('[]'),
  /** JSON object: monthly_tokens, monthly_cost_micros, requests_per_minute, tokens_per_minute, concurrent_requests, max_keys, max_active_jobs (absent/null = unlimited). */
  limits: jsonText('limits').notNull().default('{}'),
  /** JSON array of model names the plan allows; null = every model. */
  allowedModels: jsonText('allowed_models'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

/**
 * Prices per model (and optionally per deployment), versioned: setting a price inserts a
 * new row with the next version (global, increasing); the newest version of a
 * (model, deployment) pair is current. Integer micro-units of `currency` per million tokens.
 */
export const prices = pgTable(
  'prices',
  {
    version: integer('version').primaryKey(),
    model: text('model').notNull(),
    /** '' = any deployment serving this model. */
    deploymentId: text('deployment_id').notNull().default(''),
    inputMicrosPerMTok: counter('input_micros_per_mtok').notNull(),
    outputMicrosPerMTok: counter('output_micros_per_mtok').notNull(),
    requestMicros: counter('request_micros').notNull().default(0),
    currency: text('currency').notNull().default('USD'),
    /** bundled | admin */
    source: text('source').notNull().default('admin'),
    createdBy: text('created_by'),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [index('prices_model_idx').on(t.model, t.deploymentId, t.version)],
);

/**
 * Usage rollups per hour (UTC) × tenant × user × key × model × provider × boundary,
 * maintained by a trigger on usage_records (same transaction, so always consistent with
 * the raw records); kept when raw records are purged. '' stands for "none".
 */
export const usageRollups = pgTable(
  'usage_rollups',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    hour: epochMs('hour').notNull(),
    userId: text('user_id').notNull().default(''),
    keyId: text('key_id').notNull().default(''),
    model: text('model').notNull().default(''),
    provider: text('provider').notNull().default(''),
    boundary: text('boundary').notNull().default(''),
    requests: counter('requests').notNull().default(0),
    errors: counter('errors').notNull().default(0),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    costMicros: counter('cost_micros').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hour, t.userId, t.keyId, t.model, t.provider, t.boundary] })],
);

/** Per-user and per-key limits a tenant admin sets inside the plan (JSON object, same names as plan limits). */
export const meteringLimits = pgTable(
  'metering_limits',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** user | key */
    subjectType: text('subject_type').notNull(),
    subjectId: text('subject_id').notNull(),
    limits: jsonText('limits').notNull().default('{}'),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.subjectType, t.subjectId] })],
);

/** A tenant's metering settings: time zone of monthly windows, raw-record retention, alert thresholds. */
export const meteringSettings = pgTable('metering_settings', {
  tenantId: text('tenant_id')
    .primaryKey()
    .references(() => tenants.id, { onDelete: 'cascade' }),
  timezone: text('timezone').notNull().default('UTC'),
  /** Days raw usage records are kept (rollups are kept); null = forever. */
  rawRetentionDays: integer('raw_retention_days'),
  /** JSON array of percentages, e.g. [80, 100]. */
  alertThresholds: jsonText('alert_thresholds').notNull().default('[80,100]'),
  /** Optional webhook for alerts (delivery: jobs lane, HMAC-signed). */
  webhookUrl: text('webhook_url'),
  /** HMAC-SHA256 key of the webhook signature (SecretBox ciphertext, AAD metering_settings.webhook_secret:<tenant_id>). */
  webhookSecret: text('webhook_secret'),
  updatedAt: epochMs('updated_at').notNull(),
});

/** Soft-limit notifications: one per tenant × window × limit × threshold (banner, audit, webhook). */
export const meteringNotifications = pgTable(
  'metering_notifications',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The window, e.g. 2025-03 (tenant time zone). */
    window: text('window').notNull(),
    limitName: text('limit_name').notNull(),
    threshold: integer('threshold').notNull(),
    used: counter('used').notNull(),
    limitValue: counter('limit_value').notNull(),
    createdAt: epochMs('created_at').notNull(),
    dismissedAt: epochMs('dismissed_at'),
    webhookDeliveredAt: epochMs('webhook_delivered_at'),
  },
  (t) => [uniqueIndex('metering_notifications_once').on(t.tenantId, t.window, t.limitName, t.threshold)],
);

// ---- Content logging (AI gateway, per-tenant opt-in) ---------------------------------------

/**
 * What one AI call sent and received, stored only for tenants that opted in to content
 * logging (tenant setting `gateway.content_logging`, plan capability `content_logging`).
 * `content` is a SecretBox ciphertext (AAD `call_contents.content:<id>`) of a JSON document
 * {model, request, response, status}; nothing readable sits in the other columns. Rows are
 * deleted by the retention schedule once `expires_at` has passed (and never served after it).
 */
export const callContents = pgTable(
  'call_contents',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    requestId: text('request_id').notNull(),
    /** The call's usage record (usage_records.id); raw usage records may be purged earlier. */
    usageId: text('usage_id'),
    endpoint: text('endpoint').notNull(),
    content: text('content').notNull(),
    createdAt: epochMs('created_at').notNull(),
    expiresAt: epochMs('expires_at').notNull(),
  },
  (t) => [index('call_contents_request_idx').on(t.tenantId, t.requestId), index('call_contents_expiry_idx').on(t.expiresAt)],
);

/**
 * Responses stored by `POST /v1/responses` with `store` (issue 18): the conversation so far
 * (input and output items, instructions) as one JSON document sealed with the master key like
 * call contents, per tenant and key, read back by `previous_response_id` and
 * `GET /v1/responses/{id}`, deleted by `DELETE` or when `expires_at` passes.
 */
export const storedResponses = pgTable(
  'stored_responses',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The key (or, for a session, the user) that created it: only that principal reads it. */
    ownerId: text('owner_id').notNull(),
    model: text('model').notNull(),
    content: text('content').notNull(),
    createdAt: epochMs('created_at').notNull(),
    expiresAt: epochMs('expires_at').notNull(),
  },
  (t) => [index('stored_responses_owner_idx').on(t.tenantId, t.ownerId), index('stored_responses_expiry_idx').on(t.expiresAt)],
);

// ---------------------------------------------------------------------------
// Identity authority (issue 16): invitations (consent before membership) and e-mail
// domains a platform administrator verified for a tenant.
// ---------------------------------------------------------------------------

/**
 * An invitation to a tenant. Only the SHA-256 of the link token is stored. Accepted by the
 * account holder signed in as themselves, or (for an address without an account) through
 * the link, where the invitee sets their own password or signs in with the tenant's IdP.
 */
export const invitations = pgTable(
  'invitations',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** Lower-cased. */
    email: text('email').notNull(),
    role: text('role', { enum: ['owner', 'admin', 'member', 'viewer'] }).notNull(),
    tokenHash: text('token_hash').notNull().unique(),
    /** The actor who invited (a user id or `system:<name>`). */
    invitedBy: text('invited_by').notNull(),
    status: text('status', { enum: ['pending', 'accepted', 'declined', 'revoked'] }).notNull().default('pending'),
    acceptedUserId: text('accepted_user_id'),
    createdAt: epochMs('created_at').notNull(),
    expiresAt: epochMs('expires_at').notNull(),
    decidedAt: epochMs('decided_at'),
  },
  (t) => [index('invitations_tenant_idx').on(t.tenantId, t.status), index('invitations_email_idx').on(t.email, t.status)],
);

/**
 * An e-mail domain claimed for a tenant. Only a platform administrator verifies it
 * (`enclave tenants domains verify`); a verified domain lets the tenant's IdP link and
 * provision accounts of that domain. A domain is verified for at most one tenant.
 */
export const tenantDomains = pgTable(
  'tenant_domains',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** Lower-cased, without a leading @. */
    domain: text('domain').notNull(),
    /** The value the tenant publishes as DNS TXT `_enclave-challenge.<domain>` for the platform admin to check. */
    challenge: text('challenge').notNull(),
    verifiedAt: epochMs('verified_at'),
    verifiedBy: text('verified_by'),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [uniqueIndex('tenant_domains_tenant_domain_idx').on(t.tenantId, t.domain), index('tenant_domains_domain_idx').on(t.domain)],
);

// ---------------------------------------------------------------------------
// SCIM 2.0 provisioning (issue 24): as in server/db/schema.ts.
// ---------------------------------------------------------------------------

export const scimTokens = pgTable(
  'scim_tokens',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    prefix: text('prefix').notNull().unique(),
    tokenHash: text('token_hash').notNull(),
    createdAt: epochMs('created_at').notNull(),
    createdBy: text('created_by').notNull(),
    lastUsedAt: epochMs('last_used_at'),
    revokedAt: epochMs('revoked_at'),
    revokedBy: text('revoked_by'),
  },
  (t) => [index('scim_tokens_tenant_idx').on(t.tenantId)],
);

export const scimUsers = pgTable(
  'scim_users',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    userName: text('user_name').notNull(),
    userNameKey: text('user_name_key').notNull(),
    externalId: text('external_id'),
    attributes: jsonText('attributes').notNull(),
    active: boolean('active').notNull().default(true),
    role: text('role', { enum: ['owner', 'admin', 'member', 'viewer'] }).notNull().default('member'),
    accountDeactivated: boolean('account_deactivated').notNull().default(false),
    deletedAt: epochMs('deleted_at'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.userId] }),
    uniqueIndex('scim_users_user_name_idx').on(t.tenantId, t.userNameKey),
    index('scim_users_external_idx').on(t.tenantId, t.externalId),
    index('scim_users_user_idx').on(t.userId),
  ],
);

export const scimGroups = pgTable(
  'scim_groups',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    displayName: text('display_name').notNull(),
    externalId: text('external_id'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [index('scim_groups_tenant_idx').on(t.tenantId, t.displayName)],
);

export const scimGroupMembers = pgTable(
  'scim_group_members',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    groupId: text('group_id')
      .notNull()
      .references(() => scimGroups.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.userId] }), index('scim_group_members_user_idx').on(t.tenantId, t.userId)],
);

/** A SIEM sink (issue 25): see the SQLite schema. */
export const siemSinks = pgTable('siem_sinks', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  kind: text('kind', { enum: ['syslog', 'webhook', 'otlp'] }).notNull(),
  config: jsonText('config').notNull().default('{}'),
  secret: text('secret'),
  enabled: boolean('enabled').notNull().default(true),
  cursorSeq: counter('cursor_seq').notNull().default(0),
  failures: integer('failures').notNull().default(0),
  lastError: text('last_error'),
  lastErrorAt: epochMs('last_error_at'),
  lastSuccessAt: epochMs('last_success_at'),
  createdAt: epochMs('created_at').notNull(),
  updatedAt: epochMs('updated_at').notNull(),
});

// ---------------------------------------------------------------------------
// Knowledge (issue 20): vector stores (collections), the files attached to them with their
// ingestion state, chunks with page numbers, vectors and a keyword index, and the citations of
// chat answers. Keyword search: an FTS5 index of the chunks (migration knowledge_search);
// PostgreSQL: a GIN to_tsvector index (migrations-pg knowledge_search).
// ---------------------------------------------------------------------------

/** A vector store (a knowledge collection): shared with the tenant, or one user's own. */
export const vectorStores = pgTable(
  'vector_stores',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description'),
    /** tenant: every member reads it; user: only its owner; conversation: a chat's attachments (its owner's). */
    sharing: text('sharing', { enum: ['tenant', 'user', 'conversation'] }).notNull(),
    ownerUserId: text('owner_user_id'),
    keyId: text('key_id'),
    conversationId: text('conversation_id'),
    /** The default classification of its files (a file may be higher, never lower). */
    classification: text('classification', { enum: ['public', 'internal', 'confidential', 'restricted'] }).notNull(),
    embeddingModel: text('embedding_model').notNull(),
    /** JSON object of up to 16 string pairs (OpenAI metadata), or null. */
    metadata: text('metadata'),
    usageBytes: counter('usage_bytes').notNull().default(0),
    createdAt: epochMs('created_at').notNull(),
    lastActiveAt: epochMs('last_active_at'),
  },
  (t) => [index('vector_stores_tenant_idx').on(t.tenantId, t.createdAt)],
);

/** A file attached to a vector store, with its ingestion state (in_progress → completed | failed | cancelled). */
export const vectorStoreFiles = pgTable(
  'vector_store_files',
  {
    vectorStoreId: text('vector_store_id')
      .notNull()
      .references(() => vectorStores.id, { onDelete: 'cascade' }),
    fileId: text('file_id')
      .notNull()
      .references(() => files.id, { onDelete: 'cascade' }),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    status: text('status', { enum: ['in_progress', 'completed', 'failed', 'cancelled'] }).notNull(),
    /** JSON {code, message} when failed. */
    lastError: text('last_error'),
    classification: text('classification', { enum: ['public', 'internal', 'confidential', 'restricted'] }).notNull(),
    /** JSON object of attributes (search filters), or null. */
    attributes: text('attributes'),
    contentType: text('content_type').notNull(),
    pages: integer('pages'),
    chunkCount: integer('chunk_count').notNull().default(0),
    usageBytes: counter('usage_bytes').notNull().default(0),
    /** The user or key that attached it: the embedding calls run on its behalf. */
    userId: text('user_id'),
    keyId: text('key_id'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.vectorStoreId, t.fileId] }), index('vector_store_files_file_idx').on(t.tenantId, t.fileId)],
);

/**
 * One chunk of a file in a store: its text (with the page it starts on), its embedding (float32
 * little-endian) — written together, so a chunk is searchable by both or neither. The id is
 * deterministic (store, file, index): an ingestion that runs again inserts-or-ignores.
 */
export const knowledgeChunks = pgTable(
  'knowledge_chunks',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    vectorStoreId: text('vector_store_id')
      .notNull()
      .references(() => vectorStores.id, { onDelete: 'cascade' }),
    fileId: text('file_id')
      .notNull()
      .references(() => files.id, { onDelete: 'cascade' }),
    chunkIndex: integer('chunk_index').notNull(),
    page: integer('page'),
    text: text('text').notNull(),
    embedding: floatVector('embedding').notNull(),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [index('knowledge_chunks_store_idx').on(t.vectorStoreId, t.fileId, t.chunkIndex)],
);

/** The passages a chat answer cited (JSON array), for showing them again after a reload. */
export const knowledgeCitations = pgTable('knowledge_citations', {
  messageId: text('message_id')
    .primaryKey()
    .references(() => chatMessages.id, { onDelete: 'cascade' }),
  tenantId: text('tenant_id')
    .notNull()
    .references(() => tenants.id, { onDelete: 'cascade' }),
  conversationId: text('conversation_id').notNull(),
  citations: text('citations').notNull(),
  createdAt: epochMs('created_at').notNull(),
}, (t) => [index('knowledge_citations_conversation_idx').on(t.tenantId, t.conversationId)]);

/** Every table whose rows belong to a tenant. A test checks that no table with a tenant_id column is missing. */
// ---------------------------------------------------------------------------
// Teams inside a tenant (issue 24): members, team admins, per-team models, ceiling, limits.
// ---------------------------------------------------------------------------

/**
 * A team of a tenant. `allowed_models`: JSON array (null = every model the tenant may use);
 * `limits`: JSON object with the plan's limit names (the `team` admission level);
 * `alert_thresholds`: JSON array of percentages; `idp_group`: the IdP group (OIDC/SAML claim
 * value, SCIM group displayName) whose members are the team's members.
 */
export const teams = pgTable(
  'teams',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    description: text('description').notNull().default(''),
    allowedModels: jsonText('allowed_models'),
    maxClassification: text('max_classification', { enum: ['public', 'internal', 'confidential', 'restricted'] }),
    limits: jsonText('limits').notNull().default('{}'),
    alertThresholds: jsonText('alert_thresholds').notNull().default('[80,100]'),
    idpGroup: text('idp_group'),
    createdAt: epochMs('created_at').notNull(),
    updatedAt: epochMs('updated_at').notNull(),
  },
  (t) => [uniqueIndex('teams_name_idx').on(t.tenantId, t.name)],
);

/** A user's membership of a team: `role` admin (team admin) or member; `source` manual, idp or scim. */
export const teamMembers = pgTable(
  'team_members',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    teamId: text('team_id')
      .notNull()
      .references(() => teams.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['admin', 'member'] }).notNull().default('member'),
    source: text('source', { enum: ['manual', 'idp', 'scim'] }).notNull().default('manual'),
    createdAt: epochMs('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.teamId, t.userId] }), index('team_members_user_idx').on(t.tenantId, t.userId)],
);

/**
 * Usage per hour (UTC) × tenant × team × model, maintained by a trigger on usage_records rows
 * with a team (same transaction, like usage_rollups; kept when raw records are purged).
 */
export const usageTeamRollups = pgTable(
  'usage_team_rollups',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    hour: epochMs('hour').notNull(),
    teamId: text('team_id').notNull(),
    model: text('model').notNull().default(''),
    requests: counter('requests').notNull().default(0),
    errors: counter('errors').notNull().default(0),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    costMicros: counter('cost_micros').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hour, t.teamId, t.model] })],
);

/**
 * Call traces (issue 25): the decision record of one AI call — classification and its source,
 * content-rule hits by type, candidates kept or dropped and why, admission per level, each
 * attempt with its timings, fallbacks, usage and cost — as one JSON document, plus the columns
 * the request explorer searches by. Never content (prompts and completions only in
 * call_contents, opt-in). Written in batches off the call path; purged per the tenant's raw
 * usage retention (server/traces/service.ts).
 */
export const callTraces = pgTable(
  'call_traces',
  {
    id: text('id').primaryKey(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    requestId: text('request_id').notNull(),
    /** The call's usage record (usage_records.id). */
    usageId: text('usage_id'),
    createdAt: epochMs('created_at').notNull(),
    api: text('api').notNull(),
    endpoint: text('endpoint').notNull(),
    /** The model (alias) asked for. */
    model: text('model'),
    /** The deployment (name) of the last attempt. */
    deployment: text('deployment'),
    userId: text('user_id'),
    keyId: text('key_id'),
    teamId: text('team_id'),
    workflow: text('workflow'),
    classification: text('classification'),
    status: text('status').notNull(),
    httpStatus: integer('http_status').notNull(),
    errorCode: text('error_code'),
    latencyMs: integer('latency_ms').notNull(),
    promptTokens: counter('prompt_tokens').notNull().default(0),
    completionTokens: counter('completion_tokens').notNull().default(0),
    costMicros: counter('cost_micros').notNull().default(0),
    /** JSON: the decision record (server/traces/recorder.ts TraceDoc + the call's result). */
    trace: jsonExact('trace').notNull(),
  },
  (t) => [index('call_traces_tenant_idx').on(t.tenantId, t.createdAt), index('call_traces_request_idx').on(t.tenantId, t.requestId), index('call_traces_created_idx').on(t.createdAt)],
);

export const TENANT_OWNED = { tenantSettings, memberships, apiKeys, usageRecords, ssoIdps, conversations, chatMessages, chatAttachments, files, batches, batchLines, usageRollups, meteringLimits, meteringSettings, meteringNotifications, callContents, invitations, tenantDomains, storedResponses, assistants, messageFeedback, prompts, promptVersions, scimTokens, scimUsers, scimGroups, scimGroupMembers, vectorStores, vectorStoreFiles, knowledgeChunks, knowledgeCitations, teams, teamMembers, usageTeamRollups, callTraces } as const;
