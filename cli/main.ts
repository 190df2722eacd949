import { CommanderError } from 'commander';
import { CliError } from './output.js';
import { buildProgram, groupNamed } from './program.js';

/** Runs the CLI; every failure ends as one line on stderr and a non-zero exit code. */
export async function run(argv: string[]): Promise<void> {
  try {
    await (await buildProgram(groupNamed(argv.slice(2)))).parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      process.exitCode = e.exitCode;
      return;
    }
    // Loaded only on this path (and already loaded by any command that can throw them).
    const [{ ConfigError }, { SecretError }] = await Promise.all([import('../server/config/load.js'), import('../server/config/secret-box.js')]);
    const code = e instanceof CliError ? e.exitCode : e instanceof ConfigError ? 2 : 1;
    const message = e instanceof CliError || e instanceof ConfigError || e instanceof SecretError ? e.message : `failed: ${(e as Error).message}`;
    process.stderr.write(`enclave: ${message}\n`);
    process.exitCode = code;
  }
}

await run(process.argv);
