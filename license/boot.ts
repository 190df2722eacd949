import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '../server/clock.js';
import type { RuntimeSettings } from '../server/config/runtime-settings.js';
import type { Config } from '../server/config/settings.js';
import type { Store } from '../server/db/store.js';
import { LicenseError } from './errors.js';
import { LicenseService, type LicenseServiceOptions } from './service.js';

/**
 * Builds and starts the LicenseService for the server (createServices). Installs
 * ENCLAVE_LICENSE_FILE when set. Never throws because of a licence: every problem becomes
 * a log line and the state `unlicensed`/`invalid` (community entitlements).
 */
export async function startLicense(
  deps: { config: Config; store: Store; settings: RuntimeSettings; clock: Clock; log: Logger },
  extra: Partial<LicenseServiceOptions> = {},
): Promise<LicenseService> {
  const { config, log } = deps;
  const license = await new LicenseService({
    store: deps.store,
    settings: deps.settings,
    clock: deps.clock,
    log,
    mode: config.licenseMode,
    environment: config.licenseEnvironment,
    ...extra,
  }).start();
  if (config.licenseFile) {
    try {
      const r = await license.install(readFileSync(config.licenseFile, 'utf8'));
      log.info({ lid: r.licence.payload.lid, seq: r.licence.payload.seq, result: r.result }, `licence: ENCLAVE_LICENSE_FILE ${r.result}`);
    } catch (e) {
      const why = e instanceof LicenseError ? `${e.code}: ${e.message}` : (e as Error).message;
      const level = e instanceof LicenseError && e.code === 'sequence_downgrade' ? 'info' : 'error';
      log[level]({ file: config.licenseFile }, `licence: ENCLAVE_LICENSE_FILE not installed (${why})`);
    }
  }
  return license;
}
