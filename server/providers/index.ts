import { OllamaAdapter } from './ollama/adapter.js';
import { OpenAIAdapter } from './openai/adapter.js';
import type { AdapterConfig, ProviderAdapter, ProviderKind } from './types.js';

export * from './types.js';

/** Provider kinds and their adapter factories: adding a kind adds one folder and one line here. */
export const PROVIDER_KINDS: Readonly<Record<ProviderKind, (cfg: AdapterConfig) => ProviderAdapter>> = {
  ollama: (cfg) => new OllamaAdapter(cfg),
  openai: (cfg) => new OpenAIAdapter(cfg),
};

export function createAdapter(kind: ProviderKind, cfg: AdapterConfig): ProviderAdapter {
  return PROVIDER_KINDS[kind](cfg);
}
