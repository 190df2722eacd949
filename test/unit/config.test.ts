import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../../server/config/load.js';

const KEY = Buffer.alloc(32, 7).toString('base64');

function fileWith(content: string): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'enclave-cfg-')), 'enclave.json');
  writeFileSync(f, content);
  return f;
}

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env, '/srv');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected the config to be refused');
}

describe('bootstrap config', () => {
  it('defaults serve the embedded mode', () => {
    const c = loadConfig({}, '/srv');
    expect(c.port).toBe(8080);
    expect(c.deployment).toBe('embedded');
    expect(c.dataDir).toBe('/srv/data');
    expect(c.redisUrl).toBeUndefined();
    expect(c.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(c.trustProxy).toBe(0);
  });

  it('reads and coerces environment variables', () => {
    const c = loadConfig({ PORT: '9090', ENCLAVE_TRUST_PROXY: 'true', ENCLAVE_MAX_BODY_BYTES: '2048', REDIS_URL: 'redis://r:6379/1' }, '/');
    expect(c).toMatchObject({ port: 9090, trustProxy: 1, maxBodyBytes: 2048, redisUrl: 'redis://r:6379/1' });
  });

  it('refuses an invalid value with one line naming the variable and the fix', () => {
    expect(refusal({ PORT: 'eighty' })).toMatch(/^invalid PORT: .*; set it to a number between 0 and 65535$/);
    expect(refusal({ PORT: '70000' })).toMatch(/^invalid PORT/);
    expect(refusal({ ENCLAVE_LOG_LEVEL: 'loud' })).toMatch(/^invalid ENCLAVE_LOG_LEVEL: .*use one of/);
    expect(refusal({ REDIS_URL: 'http://x' })).toMatch(/^invalid REDIS_URL: must start with redis:\/\//);
    expect(refusal({ ENCLAVE_MASTER_KEY: 'c2hvcnQ=' })).toMatch(/^invalid ENCLAVE_MASTER_KEY: must be 32 bytes.*openssl rand -base64 32$/);
    expect(refusal({ ENCLAVE_MAX_BODY_BYTES: '-1' })).toMatch(/^invalid ENCLAVE_MAX_BODY_BYTES/);
  });

  it('refuses unknown ENCLAVE_* variables and suggests the near miss', () => {
    expect(refusal({ ENCLAVE_DATADIR: '/x' })).toBe('unknown setting ENCLAVE_DATADIR: remove it or rename it to ENCLAVE_DATA_DIR');
    expect(refusal({ ENCLAVE_WHATEVER_THING: '1' })).toMatch(/^unknown setting ENCLAVE_WHATEVER_THING: remove it \(see the configuration table/);
  });

  it('production requires a master key and REDIS_URL', () => {
    expect(refusal({ ENCLAVE_DEPLOYMENT: 'production', REDIS_URL: 'redis://r' })).toMatch(/^missing ENCLAVE_MASTER_KEY/);
    expect(refusal({ ENCLAVE_DEPLOYMENT: 'production', ENCLAVE_MASTER_KEY: KEY })).toMatch(/^missing REDIS_URL/);
    expect(loadConfig({ ENCLAVE_DEPLOYMENT: 'production', ENCLAVE_MASTER_KEY: KEY, REDIS_URL: 'redis://r' }).deployment).toBe('production');
  });

  it('reads a JSON config file; the environment wins', () => {
    const f = fileWith(JSON.stringify({ PORT: 7000, ENCLAVE_LOG_LEVEL: 'debug', ENCLAVE_DATA_DIR: '/var/enclave' }));
    const c = loadConfig({ ENCLAVE_CONFIG: f, ENCLAVE_LOG_LEVEL: 'warn' }, '/');
    expect(c.port).toBe(7000);
    expect(c.logLevel).toBe('warn');
    expect(c.dataDir).toBe('/var/enclave');
  });

  it('refuses a config file that is unreadable, not JSON, not an object, or has unknown keys', () => {
    expect(refusal({ ENCLAVE_CONFIG: '/nonexistent/enclave.json' })).toMatch(/^invalid ENCLAVE_CONFIG: cannot read .* \(ENOENT\)/);
    expect(refusal({ ENCLAVE_CONFIG: fileWith('{ port: 1') })).toMatch(/^invalid ENCLAVE_CONFIG: .* is not valid JSON/);
    expect(refusal({ ENCLAVE_CONFIG: fileWith('[1,2]') })).toMatch(/must hold a JSON object/);
    expect(refusal({ ENCLAVE_CONFIG: fileWith('{"PROT": 1}') })).toMatch(/^unknown setting PROT in .*: remove it or rename it to PORT$/);
    expect(refusal({ ENCLAVE_CONFIG: fileWith('{"PORT": "x"}') })).toMatch(/^invalid PORT/);
  });

  it('reads the first admin password from ENCLAVE_ADMIN_PASSWORD_FILE (docker secrets)', () => {
    const f = fileWith('a-long-enough-password\n');
    expect(loadConfig({ ENCLAVE_ADMIN_PASSWORD_FILE: f }, '/').adminPassword).toBe('a-long-enough-password');
    expect(loadConfig({ ENCLAVE_ADMIN_PASSWORD_FILE: f, ENCLAVE_ADMIN_PASSWORD: 'the-variable-wins-here' }, '/').adminPassword).toBe('the-variable-wins-here');
    expect(refusal({ ENCLAVE_ADMIN_PASSWORD_FILE: fileWith('short\n') })).toMatch(/^invalid ENCLAVE_ADMIN_PASSWORD_FILE: .*at least 12 characters$/);
    expect(refusal({ ENCLAVE_ADMIN_PASSWORD_FILE: '/nonexistent/pw' })).toMatch(/^invalid ENCLAVE_ADMIN_PASSWORD_FILE: cannot read .* \(ENOENT\)/);
  });

  it('describes the effective config with every secret redacted', () => {
    const c = loadConfig({ ENCLAVE_MASTER_KEY: KEY, REDIS_URL: 'redis://:hunter2@r:6379', ENCLAVE_METRICS_TOKEN: 'tok-123' }, '/');
    const d = describeConfig(c);
    const text = JSON.stringify(d);
    expect(text).not.toContain(KEY);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('tok-123');
    expect(d.ENCLAVE_MASTER_KEY).toBe('[redacted]');
    expect(d.REDIS_URL).toBe('[redacted]');
    expect(d.PORT).toBe(8080);
    expect(d.ENCLAVE_CONFIG).toBeNull();
  });
});
