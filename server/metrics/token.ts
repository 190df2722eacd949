import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/settings.js';

/**
 * The bearer token GET /metrics requires (api and worker): ENCLAVE_METRICS_TOKEN, else the
 * content of ENCLAVE_METRICS_TOKEN_FILE (a docker secret; Prometheus sends the same file with
 * `authorization: credentials_file:`), else none. Read once at start; an unreadable or empty
 * file stops the start-up with the setting to fix, so /metrics is never open by accident.
 */
export function resolveMetricsToken(config: Pick<Config, 'metricsToken' | 'metricsTokenFile'>): string | undefined {
  if (config.metricsToken) return config.metricsToken;
  if (!config.metricsTokenFile) return undefined;
  return readTokenFile(config.metricsTokenFile, 'ENCLAVE_METRICS_TOKEN_FILE');
}

/** A token file: its text without surrounding whitespace, at least 16 characters, one line. */
export function readTokenFile(file: string, name: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(`invalid ${name}: cannot read ${file} (${(e as NodeJS.ErrnoException).code}); point it to a readable file containing the token`);
  }
  if (text.length < 16 || /\s/.test(text)) {
    throw new ConfigError(`invalid ${name}: ${file} must hold one token of at least 16 characters without spaces; generate one with: openssl rand -base64 32`);
  }
  return text;
}
