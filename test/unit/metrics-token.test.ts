import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../server/config/load.js';
import { resolveMetricsToken } from '../../server/metrics/token.js';

const dir = mkdtempSync(path.join(tmpdir(), 'enclave-metrics-token-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('metrics token (ENCLAVE_METRICS_TOKEN, ENCLAVE_METRICS_TOKEN_FILE)', () => {
  it('the variable wins; else the file (trimmed); else none', () => {
    const file = path.join(dir, 'metrics_token');
    writeFileSync(file, 'tok_0123456789abcdef\n', { mode: 0o600 });
    expect(resolveMetricsToken({ metricsToken: 'from-env-token-123', metricsTokenFile: file })).toBe('from-env-token-123');
    expect(resolveMetricsToken({ metricsToken: undefined, metricsTokenFile: file })).toBe('tok_0123456789abcdef');
    expect(resolveMetricsToken({ metricsToken: undefined, metricsTokenFile: undefined })).toBeUndefined();
  });

  it('a missing, empty or short file is a configuration error naming the setting', () => {
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    for (const f of [path.join(dir, 'absent'), empty]) {
      expect(() => resolveMetricsToken({ metricsToken: undefined, metricsTokenFile: f })).toThrow(ConfigError);
      expect(() => resolveMetricsToken({ metricsToken: undefined, metricsTokenFile: f })).toThrow(/ENCLAVE_METRICS_TOKEN_FILE/);
    }
  });
});
