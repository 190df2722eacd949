import type { Command } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ArchiveError } from '../../server/ops/archive/tar.js';
import { BackupError, createBackup } from '../../server/ops/backup/create.js';
import { BackupCryptoError, generateRecipientKeyPair, parseIdentity, parseRecipient, PUBLIC_KEY_PREFIX, type EncryptTo, type Keyring } from '../../server/ops/backup/envelope.js';
import { recordInDataDir } from '../../server/ops/backup/records.js';
import { RestoreError, restoreBackup } from '../../server/ops/backup/restore.js';
import { readSecretsExport, writeSecretsExport, type SecretsExport } from '../../server/ops/backup/secrets.js';
import { keyFingerprint, trustFor } from '../../server/ops/backup/signature.js';
import { verifyBackup } from '../../server/ops/backup/verify.js';
import { DataDirBusyError } from '../../server/ops/process-registry.js';
import { cliConfig } from '../config.js';
import { databaseTarget } from '../../server/db/dialect.js';
import { postgresTrust } from '../../server/ops/backup/postgres.js';
import { CliError, printJson, printTable } from '../output.js';

function readSecretFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new CliError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
  }
}

function encryptTo(o: { passphraseFile?: string; recipient?: string }, required: boolean): EncryptTo | undefined {
  if (o.passphraseFile && o.recipient) throw new CliError('use either --passphrase-file or --recipient, not both', 2);
  if (o.passphraseFile) {
    const passphrase = readSecretFile(o.passphraseFile, 'passphrase file');
    if (passphrase.length < 8) throw new CliError('the passphrase must have at least 8 characters', 2);
    return { passphrase };
  }
  if (o.recipient) {
    const text = o.recipient.startsWith(PUBLIC_KEY_PREFIX) ? o.recipient : readSecretFile(o.recipient, 'recipient public key file').trim();
    parseRecipient(text);
    return { recipient: text };
  }
  if (required) throw new CliError('secrets are always encrypted: pass --recipient PUBKEY (enclave backup keygen) or --passphrase-file FILE', 2);
  return undefined;
}

function keyring(o: { passphraseFile?: string; identity?: string[] }): Keyring {
  return {
    ...(o.passphraseFile ? { passphrase: readSecretFile(o.passphraseFile, 'passphrase file') } : {}),
    identities: (o.identity ?? []).map((f) => parseIdentity(readSecretFile(f, 'identity file'))),
  };
}

async function secretsFrom(o: { secrets?: string; passphraseFile?: string; identity?: string[] }, keys: Keyring): Promise<SecretsExport | undefined> {
  if (!o.secrets) return undefined;
  return readSecretsExport(o.secrets, keys);
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** Maps the ops errors to one-line CLI failures. */
async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof BackupCryptoError || e instanceof ArchiveError || e instanceof BackupError) throw new CliError(e.message, 1);
    if (e instanceof DataDirBusyError) throw new CliError(e.message, 3);
    if (e instanceof RestoreError) throw new CliError(e.message, 1);
    throw e;
  }
}

function progress(enabled: boolean): ((phase: string, done: number, total: number) => void) | undefined {
  if (!enabled) return undefined;
  let last = 0;
  return (phase, done, total) => {
    if (phase === 'snapshot') {
      process.stderr.write(done < total ? 'snapshot (VACUUM INTO + integrity_check)… ' : 'done\n');
      return;
    }
    const t = Date.now();
    if (t - last < 250 && done < total) return;
    last = t;
    const pct = total ? Math.floor((done / total) * 100) : 100;
    process.stderr.write(`\r${phase}: ${pct}% (${(done / 1024 ** 2).toFixed(1)} of ${(total / 1024 ** 2).toFixed(1)} MiB)   ${done >= total ? '\n' : ''}`);
  };
}

export function registerBackup(program: Command): void {
  const backup = program
    .command('backup')
    .description('verified backups: create, verify, restore; secrets export; recipient keys (schedule: jobs issue)');

  backup
    .command('create')
    .description('consistent snapshot (VACUUM INTO + integrity_check) of the database, licence, non-secret config and uploaded files; no secrets')
    .option('--out <path>', 'file to write, or a directory for a generated name (default: <data dir>/backups/)')
    .option('--passphrase-file <file>', 'encrypt with the passphrase in this file (scrypt -> AES-256-GCM)')
    .option('--recipient <key>', `encrypt to an X25519 public key (${PUBLIC_KEY_PREFIX}…, or a .pub file from enclave backup keygen)`)
    .option('--keep <n>', 'keep only the newest N backups in the output directory', (v) => Number(v))
    .option('--verify', 'read the written file back and verify it fully (works with --recipient: the content key stays in memory)')
    .option('--progress', 'show progress on stderr (default when stderr is a terminal)')
    .option('--json', 'print JSON')
    .action(async (o: { out?: string; passphraseFile?: string; recipient?: string; keep?: number; verify?: boolean; progress?: boolean; json?: boolean }) => {
      const config = cliConfig();
      const enc = await guarded(async () => encryptTo(o, false));
      const r = await guarded(() =>
        createBackup(config, {
          ...(o.out ? { out: o.out } : {}),
          ...(enc ? { encrypt: enc } : {}),
          ...(o.keep !== undefined ? { keep: o.keep } : {}),
          verify: !!o.verify,
          ...(progress(!o.json && (o.progress ?? process.stderr.isTTY)) ? { onProgress: progress(true)! } : {}),
        }),
      );
      if (o.json) {
        printJson({ file: r.file, size: r.size, sha256: r.sha256, encryption: r.encryption, durationMs: r.durationMs, pruned: r.pruned, verified: r.verified, manifest: r.manifest });
        return;
      }
      process.stdout.write(`backup written: ${r.file}\n`);
      process.stdout.write(`  ${r.size} bytes, sha256 ${r.sha256}, encryption ${r.encryption}, schema ${r.manifest.migrationHead}, ${r.manifest.parts.length} parts, ${r.durationMs} ms\n`);
      if (r.verified) process.stdout.write(`  verified: read back, ${r.verified.checks.length} checks passed\n`);
      process.stdout.write('  secrets are not included: export them once with enclave backup secrets and keep them apart\n');
      if (r.encryption === 'none') process.stdout.write('  warning: not encrypted; use --recipient (enclave backup keygen) for backups that leave this host\n');
      for (const p of r.pruned) process.stdout.write(`  pruned ${p}\n`);
    });

  backup
    .command('verify')
    .description('decrypt, check every checksum, restore into a scratch dir, integrity_check, compare schema; exit 0 only if all pass')
    .argument('<file>', 'backup archive')
    .option('--passphrase-file <file>', 'passphrase of an encrypted backup (or secrets export)')
    .option('--identity <file>', 'X25519 private key (repeatable)', collect, [])
    .option('--secrets <file>', 'secrets export: also decrypt every stored secret with its master key')
    .option('--trust-installation <id|pubkey>', 'also accept backups signed by this installation (id inst_… or public key; repeatable); this data dir\'s own installation is always trusted', collect, [])
    .option('--json', 'print JSON')
    .action(async (file: string, o: { passphraseFile?: string; identity: string[]; secrets?: string; trustInstallation: string[]; json?: boolean }) => {
      const config = cliConfig();
      const keys = await guarded(async () => keyring(o));
      const secrets = await guarded(() => secretsFrom(o, keys));
      // On PostgreSQL the installation whose signature is trusted is the one in the database.
      const onPg = databaseTarget(config).dialect === 'postgres';
      const trust = onPg ? await guarded(() => postgresTrust(config, o.trustInstallation)) : trustFor(config.dataDir, o.trustInstallation);
      const r = await guarded(() => verifyBackup(file, { keys, trust, ...(secrets ? { secrets } : {}) }));
      if (r.ok && !onPg) recordInDataDir(config.dataDir, 'lastVerified', { at: Date.now(), file, encryption: r.encryption });
      const signer = r.signer ? { installationId: r.signer.installationId, publicKey: r.signer.publicKey, fingerprint: keyFingerprint(r.signer.publicKey) } : null;
      if (o.json) printJson({ ok: r.ok, file: r.file, encryption: r.encryption, signer, checks: r.checks, manifest: r.manifest });
      else {
        printTable(r.checks as unknown as Record<string, unknown>[], ['id', 'status', 'message']);
        process.stdout.write(`\n${r.ok ? 'backup verified' : 'backup FAILED verification'}\n`);
      }
      if (!r.ok) {
        const first = r.checks.find((c) => c.status === 'fail');
        throw new CliError(`verification failed: ${first?.message ?? 'unknown reason'}`, 1);
      }
    });

  backup
    .command('restore')
    .description('replace this data dir with a backup: refuses while a server/worker runs and a newer schema; migrates an older one; keeps a pre-restore copy')
    .argument('<file>', 'backup archive')
    .option('--passphrase-file <file>', 'passphrase of an encrypted backup (or secrets export)')
    .option('--identity <file>', 'X25519 private key (repeatable)', collect, [])
    .option('--secrets <file>', 'secrets export: installs its master key in embedded mode, checks stored secrets with it')
    .option('--trust-installation <id|pubkey>', 'restore a backup signed by another installation (id inst_… or public key, as backup verify names it; repeatable)', collect, [])
    .option('--stop', 'stop (SIGTERM) the server and worker processes on this host first')
    .option('--force', 'restore although processes are registered as running (only when you know they are gone)')
    .option('--json', 'print JSON')
    .action(async (file: string, o: { passphraseFile?: string; identity: string[]; secrets?: string; trustInstallation: string[]; stop?: boolean; force?: boolean; json?: boolean }) => {
      const config = cliConfig();
      const keys = await guarded(async () => keyring(o));
      const secrets = await guarded(() => secretsFrom(o, keys));
      const r = await guarded(() => restoreBackup(config, file, { keys, ...(secrets ? { secrets } : {}), trustInstallations: o.trustInstallation, stop: !!o.stop, force: !!o.force }));
      const secretProblem = 'error' in r.secrets ? r.secrets.error : r.secrets.failed.length ? `${r.secrets.failed.length} of ${r.secrets.checked} stored secret(s) do not decrypt` : undefined;
      if (o.json) printJson(r);
      else {
        process.stdout.write(`restored ${r.file} (Enclave ${r.fromVersion}) into ${r.dataDir}\n`);
        if (r.signer) process.stdout.write(`  signed by installation ${r.signer.installationId} (key ${r.signer.fingerprint})\n`);
        if (r.preRestore) process.stdout.write(`  previous state kept in ${r.preRestore}\n`);
        if (r.stopped.length) process.stdout.write(`  stopped ${r.stopped.map((p) => `${p.role} ${p.pid}`).join(', ')}; start them again\n`);
        process.stdout.write(`  schema ${r.schema.backup}${r.schema.migrated ? ` migrated to ${r.schema.now}` : ''}\n`);
        if (r.masterKeyInstalled) process.stdout.write('  installed the master key from the secrets export\n');
        process.stdout.write(`  secrets: ${secretProblem ?? `all ${'checked' in r.secrets ? r.secrets.checked : 0} decrypt with the current master key`}\n`);
        if (!('error' in r.secrets)) for (const f of r.secrets.failed) process.stdout.write(`    cannot decrypt ${f.table}.${f.column}:${f.id}: ${f.reason}\n`);
        process.stdout.write(`  licence: ${r.licence.state}${r.licence.problem ? ` (${r.licence.problem.code}: ${r.licence.problem.message})` : ''}\n`);
      }
      if (secretProblem) {
        throw new CliError(`restored, but ${secretProblem}: set the master key of the backed-up installation (ENCLAVE_MASTER_KEY, or --secrets with its export)`, 4);
      }
    });

  backup
    .command('secrets')
    .description('export the secrets a backup leaves out (master keys, secret settings and files), always encrypted')
    .requiredOption('--out <path>', 'file to write, or a directory for a generated name; keep it away from the backups')
    .option('--passphrase-file <file>', 'encrypt with the passphrase in this file')
    .option('--recipient <key>', 'encrypt to an X25519 public key (or .pub file)')
    .option('--json', 'print JSON')
    .action(async (o: { out: string; passphraseFile?: string; recipient?: string; json?: boolean }) => {
      const config = cliConfig();
      const to = (await guarded(async () => encryptTo(o, true)))!;
      const r = await guarded(async () => writeSecretsExport(config, o.out, to));
      if (o.json) printJson(r);
      else process.stdout.write(`secrets written: ${r.file} (master key ${r.kid}); store it apart from the backups\n`);
    });

  backup
    .command('keygen')
    .description('make an X25519 key pair for backups: the appliance gets only the public key (--recipient)')
    .requiredOption('--out <file>', 'private key file to write (0600); the public key goes to <file>.pub')
    .option('--json', 'print JSON')
    .action((o: { out: string; json?: boolean }) => {
      if (existsSync(o.out)) throw new CliError(`${o.out} already exists; choose another --out`, 2);
      const kp = generateRecipientKeyPair();
      writeFileSync(o.out, kp.privateKeyPem, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${o.out}.pub`, kp.publicKey + '\n', { mode: 0o644 });
      if (o.json) printJson({ privateKeyFile: o.out, publicKeyFile: `${o.out}.pub`, publicKey: kp.publicKey });
      else {
        process.stdout.write(`${kp.publicKey}\n`);
        process.stderr.write(`private key: ${o.out} (keep it offline; needed to verify and restore)\npublic key:  ${o.out}.pub (give to: enclave backup create --recipient)\n`);
      }
    });
}
