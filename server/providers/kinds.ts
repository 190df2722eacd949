/**
 * Provider kinds as data: what each kind needs from an administrator (base URL, API key,
 * region, its own settings and secrets). One declaration drives the server's validation
 * (server/routing/deployments.ts), the CLI's flags (`enclave providers add --kind …`,
 * cli/commands/providers.ts) and the console's provider form (web/src/pages/admin/Providers.tsx),
 * so the three cannot drift. Pure data and pure functions only: the web bundle imports this
 * file (no node modules, no zod).
 *
 * Where values live on a deployment row:
 * - `base_url`, `region`, `api_key` — columns of their own (api_key SecretBox-encrypted);
 * - `settings` — a JSON object of the kind's non-secret fields (returned by the API);
 * - `credentials` — a SecretBox-encrypted JSON object of the kind's secret fields (never
 *   returned; the API says only which ones are set: `credential_fields`).
 */
export const PROVIDER_KIND_NAMES = ['ollama', 'openai', 'anthropic', 'azure-openai', 'bedrock', 'vertex', 'gemini'] as const;
export type ProviderKind = (typeof PROVIDER_KIND_NAMES)[number];

export interface KindField {
  /** Key in `settings` (or in `credentials` when `secret`). snake_case. */
  readonly key: string;
  readonly label: string;
  /** One line for the CLI's --help and the form's hint. */
  readonly help: string;
  /**
   * The CLI flag's long name without dashes. A secret field's flag takes a file path
   * (`-` = standard input), never the value: command lines end up in shell history and `ps`.
   */
  readonly flag: string;
  readonly type: 'string' | 'url' | 'boolean';
  /** Stored encrypted in `credentials`, never returned. */
  readonly secret?: boolean;
  /** Must be set on create (cross-field rules are in `check`). */
  readonly required?: boolean;
  /** Regular expression (source) a string value must match. */
  readonly pattern?: string;
  readonly patternHint?: string;
  readonly maxLength?: number;
  /** The form shows a text area (e.g. a service-account JSON key). */
  readonly multiline?: boolean;
  readonly placeholder?: string;
}

export type Settings = Readonly<Record<string, string | boolean>>;

export interface KindSpec {
  readonly kind: ProviderKind;
  readonly label: string;
  /** `optional` = derived from the settings/region by `defaultBaseUrl` when not given. */
  readonly baseUrl: 'required' | 'optional';
  readonly baseUrlPlaceholder: string;
  readonly apiKey: 'required' | 'optional' | 'none';
  readonly apiKeyLabel: string;
  /** The region is part of the endpoint (bedrock, vertex): the deployment's `region` must be set. */
  readonly regionRequired: boolean;
  /** Whether the kind offers embeddings (the gateway answers a clear error otherwise). */
  readonly embeddings: boolean;
  readonly fields: readonly KindField[];
  /** The base URL when the administrator gave none (undefined: cannot derive one). */
  defaultBaseUrl?(s: Settings, region: string | null): string | undefined;
  /** Other URLs the adapter connects to (token endpoints): egress-checked like the base URL. */
  extraUrls?(s: Settings): string[];
  /** Cross-field rules on the merged configuration; returns a reason, or undefined when fine. */
  check?(c: { settings: Settings; credentials: readonly string[]; hasApiKey: boolean; region: string | null }): string | undefined;
}

const str = (s: Settings, k: string): string | undefined => {
  const v = s[k];
  return typeof v === 'string' && v !== '' ? v : undefined;
};

const ollama: KindSpec = {
  kind: 'ollama',
  label: 'Ollama',
  baseUrl: 'required',
  baseUrlPlaceholder: 'http://127.0.0.1:11434',
  apiKey: 'optional',
  apiKeyLabel: 'API key (a proxy in front of Ollama may want one)',
  regionRequired: false,
  embeddings: true,
  fields: [],
};

const openai: KindSpec = {
  kind: 'openai',
  label: 'OpenAI-compatible',
  baseUrl: 'required',
  baseUrlPlaceholder: 'https://host/v1',
  apiKey: 'optional',
  apiKeyLabel: 'API key',
  regionRequired: false,
  embeddings: true,
  fields: [],
};

const anthropic: KindSpec = {
  kind: 'anthropic',
  label: 'Anthropic',
  baseUrl: 'optional',
  baseUrlPlaceholder: 'https://api.anthropic.com',
  apiKey: 'required',
  apiKeyLabel: 'API key (x-api-key)',
  regionRequired: false,
  embeddings: false,
  fields: [
    {
      key: 'anthropic_version',
      label: 'API version',
      help: 'anthropic-version header (default 2023-06-01)',
      flag: 'anthropic-version',
      type: 'string',
      pattern: '^\\d{4}-\\d{2}-\\d{2}$',
      patternHint: 'a date like 2023-06-01',
      placeholder: '2023-06-01',
    },
  ],
  defaultBaseUrl: () => 'https://api.anthropic.com',
};

const azure: KindSpec = {
  kind: 'azure-openai',
  label: 'Azure OpenAI',
  baseUrl: 'optional',
  baseUrlPlaceholder: 'https://my-resource.openai.azure.com',
  apiKey: 'optional',
  apiKeyLabel: 'API key (api-key header; or use Entra ID below)',
  regionRequired: false,
  embeddings: true,
  fields: [
    {
      key: 'resource',
      label: 'Resource name',
      help: 'the Azure OpenAI resource: the endpoint is https://<resource>.openai.azure.com (or give --base-url)',
      flag: 'azure-resource',
      type: 'string',
      pattern: '^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$',
      patternHint: 'letters, digits and dashes',
    },
    {
      key: 'api_version',
      label: 'API version',
      help: 'api-version query parameter (default 2024-10-21); model names are the Azure deployment names',
      flag: 'azure-api-version',
      type: 'string',
      pattern: '^\\d{4}-\\d{2}-\\d{2}(-preview)?$',
      patternHint: 'like 2024-10-21 or 2025-01-01-preview',
      placeholder: '2024-10-21',
    },
    { key: 'entra_tenant_id', label: 'Entra tenant id', help: 'Microsoft Entra ID tenant (client-credentials auth instead of an API key)', flag: 'entra-tenant-id', type: 'string', maxLength: 100 },
    { key: 'entra_client_id', label: 'Entra client id', help: "the app registration's client id", flag: 'entra-client-id', type: 'string', maxLength: 100 },
    { key: 'entra_client_secret', label: 'Entra client secret', help: "file holding the app registration's client secret (- = stdin)", flag: 'entra-client-secret-file', type: 'string', secret: true },
    {
      key: 'entra_token_url',
      label: 'Entra token endpoint',
      help: 'token endpoint (default https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)',
      flag: 'entra-token-url',
      type: 'url',
    },
  ],
  defaultBaseUrl: (s) => {
    const r = str(s, 'resource');
    return r ? `https://${r}.openai.azure.com` : undefined;
  },
  extraUrls: (s) => (str(s, 'entra_client_id') ? [azureTokenUrl(s)] : []),
  check: ({ settings: s, credentials, hasApiKey }) => {
    const entra = ['entra_tenant_id', 'entra_client_id'].filter((k) => str(s, k));
    const secret = credentials.includes('entra_client_secret');
    if (entra.length || secret) {
      if (entra.length < 2 || !secret) return 'Entra ID auth needs entra_tenant_id, entra_client_id and entra_client_secret';
      if (hasApiKey) return 'use either an API key or Entra ID, not both';
      return undefined;
    }
    return hasApiKey ? undefined : 'an API key or Entra ID credentials (entra_tenant_id, entra_client_id, entra_client_secret) are required';
  },
};

/** The Entra ID token endpoint of an azure-openai deployment's settings. */
export function azureTokenUrl(s: Settings): string {
  return str(s, 'entra_token_url') ?? `https://login.microsoftonline.com/${encodeURIComponent(str(s, 'entra_tenant_id') ?? 'common')}/oauth2/v2.0/token`;
}

const bedrock: KindSpec = {
  kind: 'bedrock',
  label: 'AWS Bedrock',
  baseUrl: 'optional',
  baseUrlPlaceholder: 'https://bedrock-runtime.<region>.amazonaws.com',
  apiKey: 'none',
  apiKeyLabel: '',
  regionRequired: true,
  embeddings: true,
  fields: [
    { key: 'aws_access_key_id', label: 'Access key id', help: 'file holding the AWS access key id (- = stdin)', flag: 'aws-access-key-id-file', type: 'string', secret: true },
    { key: 'aws_secret_access_key', label: 'Secret access key', help: 'file holding the AWS secret access key', flag: 'aws-secret-access-key-file', type: 'string', secret: true },
    { key: 'aws_session_token', label: 'Session token', help: 'file holding an AWS session token (temporary credentials)', flag: 'aws-session-token-file', type: 'string', secret: true },
    {
      key: 'use_instance_role',
      label: "Use the container's role",
      help: "no keys: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment, else the instance role via IMDSv2 (platform deployments only)",
      flag: 'aws-use-instance-role',
      type: 'boolean',
    },
  ],
  defaultBaseUrl: (_s, region) => (region && AWS_REGION.test(region) ? `https://bedrock-runtime.${region}.amazonaws.com` : undefined),
  check: ({ settings: s, credentials, region }) => {
    // The region names the host the prompts go to: never anything but a region's name.
    if (!region || !AWS_REGION.test(region)) return 'region must be an AWS region name like us-east-1';
    const id = credentials.includes('aws_access_key_id');
    const secret = credentials.includes('aws_secret_access_key');
    if (id !== secret) return 'an AWS access key needs both aws_access_key_id and aws_secret_access_key';
    if (credentials.includes('aws_session_token') && !id) return 'a session token needs the access key id and secret it belongs to';
    if (!id && s.use_instance_role !== true) return "AWS credentials are required: an access key id and secret, or use_instance_role (the container's role)";
    return undefined;
  },
};

/** AWS region names (us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4 …). */
export const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
/** Google Cloud locations (us-central1, europe-west4 …) and `global`. */
export const GCP_LOCATION = /^([a-z]+-[a-z]+\d{1,2}|global)$/;

const vertex: KindSpec = {
  kind: 'vertex',
  label: 'Google Vertex AI',
  baseUrl: 'optional',
  baseUrlPlaceholder: 'https://<region>-aiplatform.googleapis.com',
  apiKey: 'none',
  apiKeyLabel: '',
  regionRequired: true,
  embeddings: true,
  fields: [
    { key: 'project', label: 'Project id', help: 'the Google Cloud project', flag: 'gcp-project', type: 'string', required: true, pattern: '^[a-z][a-z0-9-]{4,61}[a-z0-9]$', patternHint: 'a GCP project id' },
    {
      key: 'service_account_json',
      label: 'Service-account key (JSON)',
      help: "file holding the service account's JSON key (- = stdin)",
      flag: 'service-account-file',
      type: 'string',
      secret: true,
      required: true,
      multiline: true,
    },
  ],
  defaultBaseUrl: (_s, region) => (!region || !GCP_LOCATION.test(region) ? undefined : region === 'global' ? 'https://aiplatform.googleapis.com' : `https://${region}-aiplatform.googleapis.com`),
  check: ({ region }) => (region && GCP_LOCATION.test(region) ? undefined : 'region must be a Google Cloud location like us-central1 (or global)'),
};

const gemini: KindSpec = {
  kind: 'gemini',
  label: 'Google Gemini API',
  baseUrl: 'optional',
  baseUrlPlaceholder: 'https://generativelanguage.googleapis.com',
  apiKey: 'required',
  apiKeyLabel: 'API key (x-goog-api-key)',
  regionRequired: false,
  embeddings: true,
  fields: [],
  defaultBaseUrl: () => 'https://generativelanguage.googleapis.com',
};

export const KIND_SPECS: Readonly<Record<ProviderKind, KindSpec>> = {
  ollama,
  openai,
  anthropic,
  'azure-openai': azure,
  bedrock,
  vertex,
  gemini,
};

export function isProviderKind(k: unknown): k is ProviderKind {
  return typeof k === 'string' && (PROVIDER_KIND_NAMES as readonly string[]).includes(k);
}
