import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config/load.js';
import { tracesUrl } from '../../server/telemetry/index.js';
import { parseHeaders, withoutCredentials } from '../../server/telemetry/export.js';
import { samplerOf } from '../../server/telemetry/sdk.js';

/**
 * OpenTelemetry configuration (issue 25): the standard OTEL_* variables, and the promise that
 * with no collector configured nothing of the SDK is even loaded — no server module outside
 * the lazily imported ones imports @opentelemetry/* at run time.
 */
const base = { ENCLAVE_DATA_DIR: '/tmp/x', ENCLAVE_LOG_LEVEL: 'silent' };

describe('OTEL_* settings', () => {
  it('traces go to the base endpoint + /v1/traces, or to the traces endpoint as is; none without either, or when disabled', () => {
    expect(tracesUrl(loadConfig({ ...base }))).toBeUndefined();
    expect(tracesUrl(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }))).toBe('http://collector:4318/v1/traces');
    expect(tracesUrl(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/otlp/traces' }))).toBe('https://t.example/otlp/traces');
    expect(tracesUrl(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }))).toBeUndefined();
  });

  it('refuses bad values with the variable and the fix', () => {
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT.*http/);
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL.*http\/protobuf/);
    expect(() => loadConfig({ ...base, OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => loadConfig({ ...base, OTEL_TRACES_SAMPLER_ARG: '1.5' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_HEADERS: 'no-equals-sign' })).toThrow(/OTEL_EXPORTER_OTLP_HEADERS/);
  });

  it('headers: comma-separated key=value, URL-decoded; the sampler by name', () => {
    expect(parseHeaders('Authorization=Bearer%20abc, x-scope=team1')).toEqual({ authorization: 'Bearer abc', 'x-scope': 'team1' });
    expect(parseHeaders(undefined)).toBeUndefined();
    expect(samplerOf('parentbased_traceidratio', 0.25).toString()).toMatch(/ParentBased.*TraceIdRatioBased\{0\.25\}/);
    expect(samplerOf('always_off', undefined).toString()).toBe('AlwaysOffSampler');
    // The endpoint as logged: no credentials even if someone put them in the URL.
    expect(withoutCredentials('https://user:s3cret@collector.example:4318/v1/traces')).toBe('https://collector.example:4318/v1/traces');
  });
});

describe('no tracing, nothing loaded', () => {
  it('only server/telemetry/{sdk,export,call-trace,span-context}.ts import @opentelemetry/* (the rest may import types only)', () => {
    const lazy = new Set(['sdk.ts', 'export.ts', 'call-trace.ts', 'span-context.ts'].map((f) => path.join('server', 'telemetry', f)));
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = path.join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts') && !lazy.has(p)) {
          const text = readFileSync(p, 'utf8');
          // A value import (not `import type`) or a static re-export of an OpenTelemetry package.
          if (/^\s*(?:import|export)\s+(?!type\b)[^;]*from\s+['"]@opentelemetry\//m.test(text) || /^\s*import\s+['"]@opentelemetry\//m.test(text)) offenders.push(p);
        }
      }
    };
    for (const root of ['server', 'license', 'cli']) walk(root);
    expect(offenders).toEqual([]);
    // And the one way in is a dynamic import behind the endpoint check.
    expect(readFileSync('server/telemetry/index.ts', 'utf8')).toMatch(/if \(!url\) return undefined;\s*const \{ createTelemetry \} = await import\('\.\/sdk\.js'\)/);
  });
});
