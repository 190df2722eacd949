/**
 * The database dialect the integration suite runs on: TEST_DIALECT=postgres (npm run
 * test:postgres) gives every test app a fresh PostgreSQL database (test/helpers/app.ts). Not an
 * ENCLAVE_* variable: the server and the CLI refuse unknown settings of their own prefix.
 *
 * A CLI process a test starts on an app's data dir must use that app's database too: the app
 * records its data dir → database URL here, and the CLI helper adds the URL (test/helpers/cli.ts).
 */
export const testDialect = (): 'sqlite' | 'postgres' => (process.env.TEST_DIALECT === 'postgres' ? 'postgres' : 'sqlite');

const urls = new Map<string, string>();

export function rememberDatabase(dataDir: string, url: string | undefined): void {
  if (url) urls.set(dataDir, url);
}

export function databaseOf(dataDir: string | undefined): string | undefined {
  return dataDir === undefined ? undefined : urls.get(dataDir);
}

/**
 * The environment that puts a test's own config (testConfig(…)) on the run's dialect: nothing on
 * SQLite, a fresh PostgreSQL database under TEST_DIALECT=postgres. For files that build their
 * services themselves instead of through startTestApp (which does this already); pair it with
 * rememberDatabase(config.dataDir, config.databaseUrl) when the file runs the CLI.
 */
export async function dialectEnv(prefix = 'app'): Promise<Record<string, string>> {
  if (testDialect() !== 'postgres') return {};
  const { freshDatabase } = await import('./postgres.js');
  return { ENCLAVE_DATABASE_URL: await freshDatabase(prefix) };
}
