import { ConfigError, loadConfig } from '../server/config/load.js';
import type { Config } from '../server/config/settings.js';
import { CliError } from './output.js';

/** The CLI reads the same environment and config file as the server. */
export function cliConfig(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}
