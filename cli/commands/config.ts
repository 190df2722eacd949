import type { Command } from 'commander';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describeConfig } from '../../server/config/load.js';
import { readKeyFile, resolveMasterKey, writeKeyFile } from '../../server/config/master-key.js';
import { reencryptSecrets } from '../../server/config/rotate-master-key.js';
import { SecretBox } from '../../server/config/secret-box.js';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
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
      're-encrypt every stored secret under a new master key. With a generated key (embedded mode) a new key file is written; ' +
        'with ENCLAVE_MASTER_KEY(_FILE) pass --new-key-file, then set ENCLAVE_MASTER_KEY to it and keep the old one in ENCLAVE_PREVIOUS_MASTER_KEYS until every process has restarted',
    )
    .option('--new-key-file <file>', 'file holding the new key (base64, 32 bytes)')
    .option('--json', 'print JSON')
    .action((opts: { newKeyFile?: string; json?: boolean }) => {
      const cfg = cliConfig();
      const current = resolveMasterKey(cfg, undefined, { create: false });
      const file = databaseFile(cfg.dataDir);
      if (!existsSync(file)) throw new CliError(`${file} does not exist; nothing to rotate`);
      const generated = current.source === 'generated';
      if (!generated && !opts.newKeyFile) {
        throw new CliError('the master key comes from ENCLAVE_MASTER_KEY(_FILE): create a new key (openssl rand -base64 32 > new.key) and pass --new-key-file new.key');
      }
      // A generated key is first written beside the current one as `.next`, which start-up
      // also accepts for decryption, so a crash between re-encryption and the file swap
      // leaves a database the next start can still read.
      const nextFile = `${current.file}.next`;
      let newKey: Buffer;
      if (opts.newKeyFile) newKey = readKeyFile(opts.newKeyFile, '--new-key-file');
      else {
        newKey = randomBytes(32);
        rmSync(nextFile, { force: true });
        writeKeyFile(nextFile, newKey);
      }
      const to = new SecretBox(newKey);
      if (to.currentKid === current.box.currentKid) throw new CliError('the new key is the current key');

      const db = openDatabase(file);
      let values: number;
      try {
        values = reencryptSecrets(db, current.box, to).values;
      } finally {
        db.$client.close();
      }
      if (generated && !opts.newKeyFile) {
        renameSync(current.file!, `${current.file}.previous`);
        renameSync(nextFile, current.file!);
      }
      const out = { rotated: values, from: current.box.currentKid, to: to.currentKid, source: current.source };
      if (opts.json) printJson(out);
      else {
        process.stdout.write(`re-encrypted ${values} secret value(s): key ${out.from} -> ${out.to}\n`);
        if (!generated) {
          process.stdout.write('now set ENCLAVE_MASTER_KEY to the new key, put the old one in ENCLAVE_PREVIOUS_MASTER_KEYS, and restart every Enclave process\n');
        } else if (opts.newKeyFile) {
          process.stdout.write('now set ENCLAVE_MASTER_KEY to the new key and restart every Enclave process\n');
        } else {
          process.stdout.write(`the new key is in ${current.file}; the old one stays in ${current.file}.previous until you delete it\n`);
        }
      }
    });
}
