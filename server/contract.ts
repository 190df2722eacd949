/**
 * The server's public contract with its clients, in one module the web UI imports
 * (web/src/api.ts): error codes, classifications, roles, scopes and the chat's response
 * shapes. It has no runtime dependencies (the web bundle includes it), so it imports
 * nothing but pure data modules.
 *
 * Error codes are a closed union: the web types `ApiError.code` as `ErrorCode`, so a client
 * that checks for a code the server never sends is a type error, and
 * test/unit/contract.test.ts fails when server code throws a code missing here.
 */
export { ROLES, SCOPES, type Role, type Scope } from './access/permissions.js';

export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];
export const BOUNDARIES = ['local', 'private', 'public'] as const;
export type Boundary = (typeof BOUNDARIES)[number];

/** Every `code` an error envelope `{"error":{"code"}}` of this server may carry. */
export const ERROR_CODES = [
  // request shape
  'invalid_request', 'invalid_json', 'invalid_file', 'invalid_name', 'invalid_email', 'invalid_slug', 'invalid_role', 'invalid_scope', 'invalid_scopes',
  'invalid_classification', 'invalid_completion_window', 'invalid_endpoint', 'invalid_expiry', 'invalid_issuer', 'invalid_models', 'invalid_overlap',
  'invalid_owner', 'invalid_purpose', 'invalid_tenant_id', 'invalid_oidc_issuer', 'body_too_large', 'file_too_large', 'unsupported_encoding', 'request_aborted',
  'password_policy', 'wrong_password', 'tenant_mismatch', 'alias_target_unknown', 'base_url_forbidden',
  // chat images: the model does not accept images (server/chat/attachments.ts)
  'vision_unsupported',
  // authentication
  'auth_required', 'auth_invalid_credentials', 'auth_invalid_header', 'auth_locked', 'auth_metrics_token', 'auth_session_expired', 'auth_session_invalid',
  'auth_key_checksum', 'auth_key_expired', 'auth_key_invalid', 'auth_key_malformed', 'auth_key_owner_inactive', 'auth_key_revoked', 'csrf_failed',
  'session_required', 'sso_required', 'metrics_not_local', 'password_not_accepted',
  // identity: invitations and verified domains
  'account_exists', 'domain_managed', 'domain_verified_elsewhere', 'invalid_domain', 'invitation_invalid', 'invitation_other_account', 'password_required',
  // gateway faces and metering
  'response_not_found', 'webhook_url_forbidden',
  // authorization (server/access DenyReason, 'unauthenticated' answers auth_required)
  'permission_denied', 'platform_admin_required', 'tenant_required', 'not_a_member', 'role_forbidden', 'key_scope_missing', 'key_model_not_allowed',
  'key_classification_exceeded', 'team_model_not_allowed', 'team_classification_exceeded', 'team_exists', 'team_has_keys', 'plan_forbidden', 'feature_unlicensed', 'tenant_suspended', 'key_scope_exceeds_creator', 'batches_need_key',
  'license_feature_missing',
  // data-boundary policy
  'policy_boundary_denied', 'policy_boundary_unlicensed', 'policy_content_blocked', 'policy_local_unavailable',
  // limits
  'rate_limit_exceeded', 'quota_exceeded', 'license_quota_exceeded', 'license_lapsed', 'key_limit',
  // not found / conflicts
  'not_found', 'replay_unavailable', 'route_not_found', 'model_not_found', 'plan_not_found', 'job_not_found', 'batch_not_found', 'file_not_found', 'file_gone',
  'already_member', 'batch_not_cancellable', 'file_in_use', 'key_revoked', 'last_owner', 'last_platform_admin', 'nothing_to_resend', 'plan_in_use',
  'provider_exists', 'tenant_exists', 'user_exists', 'scim_token_exists',
  // SIEM sinks (server/siem)
  'siem_sink_exists', 'siem_target_forbidden',
  // providers (server/providers ProviderError codes)
  'provider_auth_failed', 'provider_bad_response', 'provider_busy', 'provider_connection_error', 'provider_content_filtered', 'provider_error', 'provider_model_not_found',
  'provider_rate_limited', 'provider_request_rejected', 'provider_server_error', 'provider_stream_error', 'provider_timeout', 'provider_unavailable',
  // the client went away mid-call (recorded, rarely seen by anyone)
  'client_disconnect',
  // availability
  'internal_error', 'gateway_unavailable', 'jobs_unavailable', 'metering_unavailable', 'rate_limiter_unavailable', 'redis_unavailable',
  'secrets_unavailable', 'sso_platform_secret_unreadable',
  // SAML IdP settings (server/sso/saml/settings.ts)
  'invalid_certificate', 'invalid_metadata', 'invalid_sso_url',
  // knowledge: files for retrieval, vector stores, ingestion (server/knowledge)
  'unsupported_file_type', 'invalid_file_purpose', 'invalid_embedding_model', 'no_embedding_model', 'invalid_sharing', 'classification_lowered',
  'vector_store_not_found', 'vector_store_read_only', 'file_batch_not_found', 'passage_not_found', 'conversation_not_found', 'too_many_files',
  'too_many_vector_stores', 'embedding_failed',
] as const;

/** Families built at run time: `license_<LicenseErrorCode>` (licence upload) and `sso_<reason>` (sign-in). */
export type ErrorCode = (typeof ERROR_CODES)[number] | `license_${string}` | `sso_${string}`;

/** Extra fields of a 429 quota/rate refusal (server/metering admission `refusal`). */
export interface LimitRefusalDetails {
  level: 'tenant' | 'user' | 'key';
  limit: 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests' | 'monthly_tokens' | 'monthly_cost_micros';
  limit_value: number;
  /** ISO time the limit resets. */
  reset: string;
}

// --- chat (/api/chat) ---------------------------------------------------------------------

export interface UsageView {
  prompt_tokens: number;
  completion_tokens: number;
  cost_micros: number;
}
export interface ConversationView {
  object: 'conversation';
  id: string;
  title: string;
  model: string | null;
  classification: string | null;
  /** The assistant the conversation was started with (its instructions are the first, system, message). */
  assistant_id: string | null;
  usage: UsageView;
  created_at: number;
  updated_at: number;
}
/**
 * A stored chat message. `status`: complete | stopped | error (assistant answers),
 * superseded (an answer a regenerate replaced: kept as an earlier version, never sent as
 * history), or not_sent (a user turn the gateway refused or could not deliver: kept so the
 * user can retry or edit it, never sent as history).
 */
export type ChatMessageStatus = 'complete' | 'stopped' | 'error' | 'superseded' | 'not_sent';
export interface ChatMessageView {
  object: 'chat_message';
  id: string;
  role: 'system' | 'user' | 'assistant';
  /** The message this one follows (a conversation is a tree: edits branch, regenerated answers are siblings). */
  parent_id: string | null;
  content: string;
  model: string | null;
  status: ChatMessageStatus;
  error_code: string | null;
  usage: UsageView;
  /** The caller's own 👍/👎 on an answer (null: none given). */
  feedback?: FeedbackView | null;
  /** Files sent with a user message (images); the bytes are at /api/chat/conversations/:id/attachments/:attachment_id. */
  attachments?: ChatAttachmentView[];
  created_at: number;
}
export interface ChatAttachmentView {
  object: 'chat_attachment';
  id: string;
  mime: string;
  name: string | null;
  bytes: number;
  message_id: string | null;
  created_at: number;
}
export interface ChatModelsView {
  object: 'list';
  /** `vision`: every deployment that may serve the model accepts images. */
  data: { id: string; boundaries: string[]; vision: boolean }[];
  default_classification: Classification;
  policy: Record<Classification, string[]> | null;
  gateway: 'ready' | 'unavailable';
  /** Whether the caller's role may chat (viewers may read their history but not send). */
  can_chat: boolean;
}

/** An assistant (preset): `tenant` = shared by the tenant's admins, `private` = the caller's own. */
export interface AssistantView {
  object: 'assistant';
  id: string;
  scope: 'tenant' | 'private';
  name: string;
  description: string;
  instructions: string;
  model: string | null;
  classification: Classification | null;
  starters: string[];
  created_at: number;
  updated_at: number;
}
export interface FeedbackView {
  rating: 'up' | 'down';
  comment: string | null;
  updated_at: number;
}
export interface FeedbackSummaryView {
  object: 'feedback_summary';
  days: number;
  models: { model: string; up: number; down: number; recent_comments: { rating: 'up' | 'down'; comment: string; updated_at: number }[] }[];
}
/** A prompt of the tenant's library, at its current (newest) version. */
export interface PromptView {
  object: 'prompt';
  id: string;
  version: number;
  title: string;
  body: string;
  updated_by: { id: string; name: string | null };
  created_at: number;
  updated_at: number;
}
export interface PromptVersionView {
  object: 'prompt_version';
  version: number;
  title: string;
  body: string;
  author: { id: string; name: string | null };
  created_at: number;
}
/** Usage analytics' adoption view: people with at least one AI call, per day and per week (Monday), and their share of the members. */
export interface AdoptionView {
  object: 'adoption';
  timezone: string;
  from: string;
  to: string;
  /** Members with an active account now. */
  members: number;
  /** People active at least once in the period. */
  active_users: number;
  /** active_users / members (0..1). */
  share: number;
  days: { day: string; active_users: number; share: number }[];
  weeks: { week: string; active_users: number; share: number }[];
}
