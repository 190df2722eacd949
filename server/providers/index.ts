import { AnthropicAdapter } from './anthropic/adapter.js';
import { AzureOpenAIAdapter } from './azure-openai/adapter.js';
import { BedrockAdapter } from './bedrock/adapter.js';
import { OllamaAdapter } from './ollama/adapter.js';
import { OpenAIAdapter } from './openai/adapter.js';
import { GeminiAdapter, VertexAdapter } from './vertex/adapter.js';
import { UpstreamError, type AdapterConfig, type ProviderAdapter, type ProviderKind } from './types.js';

export * from './types.js';
export { KIND_SPECS, PROVIDER_KIND_NAMES, isProviderKind, type KindField, type KindSpec } from './kinds.js';

type Factory = (cfg: AdapterConfig) => ProviderAdapter;

/**
 * Provider kinds and their adapter factories: adding a kind adds one folder and one line
 * here (and its declaration in kinds.ts). `null`: the kind is declared but this build has no
 * adapter for it yet — such deployments cannot be created (deployments.ts), and one that
 * exists anyway (a database from a newer build) fails each call with a clear error instead
 * of breaking the catalogue's reload for every other deployment.
 */
export const PROVIDER_KINDS: Readonly<Record<ProviderKind, Factory | null>> = {
  ollama: (cfg) => new OllamaAdapter(cfg),
  openai: (cfg) => new OpenAIAdapter(cfg),
  anthropic: (cfg) => new AnthropicAdapter(cfg),
  'azure-openai': (cfg) => new AzureOpenAIAdapter(cfg),
  bedrock: (cfg) => new BedrockAdapter(cfg),
  vertex: (cfg) => new VertexAdapter(cfg),
  gemini: (cfg) => new GeminiAdapter(cfg),
};

export function kindAvailable(kind: ProviderKind): boolean {
  return PROVIDER_KINDS[kind] !== null;
}

export function createAdapter(kind: ProviderKind, cfg: AdapterConfig): ProviderAdapter {
  const f = PROVIDER_KINDS[kind];
  return f ? f(cfg) : new UnavailableAdapter(kind);
}

class UnavailableAdapter implements ProviderAdapter {
  constructor(readonly kind: ProviderKind) {}
  private fail(): Promise<never> {
    return Promise.reject(new UpstreamError('provider_request_rejected', `Provider kind ${this.kind} is not available in this build.`, undefined, undefined, `provider kind ${this.kind} is not available in this build`));
  }
  chat = (): Promise<never> => this.fail();
  chatStream = (): Promise<never> => this.fail();
  embed = (): Promise<never> => this.fail();
  listModels = (): Promise<never> => this.fail();
}
