import { ConfigError, loadConfig } from '../server/config/load.js';
import type { Config } from '../server/config/settings.js';
import { refuseUnsupportedDialect } from '../server/db/dialect.js';
import { CliError } from './output.js';

/** The CLI reads the same environment and config file as the server. */
export function cliConfig(): Config {
  try {
    const config = loadConfig();
    refuseUnsupportedDialect(config); // the commands below speak SQLite only (issue 22); `enclave db` reads the URL itself
    return config;
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}
