import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { describeConfig } from '../../server/config/load.js';
import { readKeyFile, resolveMasterKey } from '../../server/config/master-key.js';
import { reencryptSecrets, rotateKeyFile } from '../../server/config/rotate-master-key.js';
import { SecretBox } from '../../server/config/secret-box.js';
import { databaseFile } from '../../server/db/connection.js';
import { databaseTarget } from '../../server/db/dialect.js';
import { openStore } from '../../server/db/open-store.js';
import { APP_VERSION } from '../../server/paths.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('show the effective configuration, rotate the master key');

  config
    .command('show')
    .description('print the effective bootstrap configuration (secrets redacted)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const effective = describeConfig(cliConfig());
      if (opts.json) printJson(effective);
      else printTable(Object.entries(effective).map(([setting, value]) => ({ setting, value: value ?? '(unset)' })), ['setting', 'value']);
    });

  config
    .command('rotate-master-key')
    .description(
      're-encrypt every stored secret under a new master key. A key kept in a file (generated in embedded mode, or ENCLAVE_MASTER_KEY_FILE when writable) is rotated in place, safely re-runnable after a crash; ' +
        'with ENCLAVE_MASTER_KEY pass --new-key-file, then set ENCLAVE_MASTER_KEY to it and keep the old one in ENCLAVE_PREVIOUS_MASTER_KEYS until every process has restarted',
    )
    .option('--new-key-file <file>', 'file holding the new key (base64, 32 bytes)')
    .option('--json', 'print JSON')
    .action(async (opts: { newKeyFile?: string; json?: boolean }) => {
      const cfg = cliConfig();
      const current = resolveMasterKey(cfg, undefined, { create: false });
      // SQLite: the data dir's file must exist (never create an empty one to rotate). PostgreSQL
      // (ENCLAVE_DATABASE_URL): the same re-encryption over the store, in one transaction.
      if (databaseTarget(cfg).dialect === 'sqlite') {
        const file = databaseFile(cfg.dataDir);
        if (!existsSync(file)) throw new CliError(`${file} does not exist; nothing to rotate`);
      }
      const inFile = current.source !== 'env' && !opts.newKeyFile;
      if (!inFile && !opts.newKeyFile) {
        throw new CliError('the master key comes from ENCLAVE_MASTER_KEY: create a new key (openssl rand -base64 32 > new.key) and pass --new-key-file new.key');
      }
      const { store, close } = await openStore(cfg, { appVersion: APP_VERSION, now: () => Date.now(), applicationName: 'enclave config rotate-master-key' });
      let out: { rotated: number; from: string; to: string; source: string; resumed?: boolean };
      try {
        if (inFile) {
          // server/config/rotate-master-key.ts: `.next`, re-encrypt, `.previous`, swap; every
          // crash window leaves keys that start-up accepts, and re-running finishes the job.
          const previous = (cfg.previousMasterKeys ?? '').split(',').map((k) => k.trim()).filter(Boolean).map((k) => Buffer.from(k, 'base64'));
          let r;
          try {
            r = await rotateKeyFile(store, current.file!, { extraKeys: previous });
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
              throw new CliError(`cannot write beside ${current.file} (${code}; a read-only docker secret?): nothing was changed; create a new key (openssl rand -base64 32 > new.key) and pass --new-key-file new.key`);
            }
            throw e;
          }
          out = { rotated: r.values, from: r.from, to: r.to, source: current.source, resumed: r.resumed };
        } else {
          const to = new SecretBox(readKeyFile(opts.newKeyFile!, '--new-key-file'));
          if (to.currentKid === current.box.currentKid) throw new CliError('the new key is the current key');
          out = { rotated: (await reencryptSecrets(store, current.box, to)).values, from: current.box.currentKid, to: to.currentKid, source: current.source };
        }
      } finally {
        await close();
      }
      if (opts.json) printJson(out);
      else {
        process.stdout.write(`re-encrypted ${out.rotated} secret value(s): key ${out.from} -> ${out.to}${out.resumed ? ' (finished an interrupted rotation)' : ''}\n`);
        if (inFile) {
          process.stdout.write(`the new key is in ${current.file}; the old one stays in ${current.file}.previous (accepted for decryption) until the next rotation; restart every Enclave process\n`);
        } else if (current.source === 'env') {
          process.stdout.write('now set ENCLAVE_MASTER_KEY to the new key, put the old one in ENCLAVE_PREVIOUS_MASTER_KEYS, and restart every Enclave process\n');
        } else {
          process.stdout.write(`now put the new key into ${current.file} (the old one into ${current.file}.previous or ENCLAVE_PREVIOUS_MASTER_KEYS) and restart every Enclave process\n`);
        }
      }
    });
}
