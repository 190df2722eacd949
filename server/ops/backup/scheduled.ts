import type { Config } from '../../config/settings.js';
import { createBackup, type CreateBackupResult } from './create.js';

/** How many scheduled backups stay in <dataDir>/backups. */
export const SCHEDULED_KEEP = 14;

/**
 * The scheduled backup (the worker's maintenance lane runs it on ENCLAVE_BACKUP_CRON):
 * encrypted to ENCLAVE_BACKUP_RECIPIENT when set, read back and verified right after
 * writing (the content key stays in memory, so this works without the private key), newest
 * SCHEDULED_KEEP kept. Records last success and last verified, which the
 * enclave_backup_last_{success,verified}_timestamp_seconds gauges and doctor's backup_age read.
 */
export function scheduledBackup(config: Config): Promise<CreateBackupResult> {
  return createBackup(config, {
    keep: SCHEDULED_KEEP,
    verify: true,
    ...(config.backupRecipient ? { encrypt: { recipient: config.backupRecipient } } : {}),
  });
}
