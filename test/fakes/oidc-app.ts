import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { unrestricted } from '../../server/access/entitlements.js';
import { buildApp, createServices, type Services } from '../../server/app.js';
import { listen, type RunningServer } from '../../server/http/server.js';
import { testConfig } from '../helpers/app.js';

/**
 * The real app for SSO tests, with every log line kept (trace level) so tests can scan
 * them for tokens, and the platform IdP's client secret written to a file.
 */
export interface SsoApp {
  readonly services: Services;
  readonly server: RunningServer;
  readonly url: string;
  readonly logs: string[];
  close(): Promise<void>;
}

export const PLATFORM_SECRET = 'platform-client-secret-0123456789';

export async function startSsoApp(env: Record<string, string> = {}): Promise<SsoApp> {
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-sso-'));
  const secretFile = path.join(dir, 'oidc_client_secret');
  writeFileSync(secretFile, PLATFORM_SECRET + '\n');
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const config = testConfig({ ENCLAVE_OIDC_CLIENT_SECRET_FILE: secretFile, ENCLAVE_OIDC_ALLOW_LOOPBACK_HTTP: 'true', ENCLAVE_LOG_LEVEL: 'trace', ...env });
  const services = await createServices(config, { log: pino({ level: 'trace' }, sink), passwordLogN: 10, entitlements: unrestricted });
  const server = await listen(buildApp(services), 0, '127.0.0.1');
  return {
    services,
    server,
    url: `http://127.0.0.1:${server.port}`,
    logs,
    close: async () => {
      await server.close(1000);
      await services.close();
      rmSync(config.dataDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
