import { ConfigError, loadConfig } from '../server/config/load.js';
import type { Config } from '../server/config/settings.js';
import { requireSqlite } from '../server/db/dialect.js';
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

/**
 * The config for a command that works on the embedded SQLite file only: on PostgreSQL it exits 2
 * with what to use instead (never silently works on a data-dir file the server does not use).
 */
export function sqliteOnlyConfig(what: string, instead: string): Config {
  const config = cliConfig();
  try {
    requireSqlite(config, what, instead);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
  return config;
}
