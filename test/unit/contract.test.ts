import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DenyReason } from '../../server/access/authorize.js';
import { ERROR_CODES, type ErrorCode } from '../../server/contract.js';
import { PACKAGE_ROOT } from '../../server/paths.js';
import type { UpstreamError } from '../../server/providers/types.js';

/**
 * The error codes of server/contract.ts are the closed list the web UI types its errors by
 * (web/src/api.ts). This test keeps the list true: every code a server source throws as a
 * literal is in it, and the typed code families (authorisation denials, upstream failures)
 * are contained in it at compile time.
 */
type Assert<T extends true> = T;
export type DenialsCovered = Assert<Exclude<DenyReason, 'unauthenticated'> extends ErrorCode ? true : false>;
export type UpstreamCovered = Assert<UpstreamError['code'] extends ErrorCode ? true : false>;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('error code contract', () => {
  it('lists every literal code the server throws', () => {
    const known = new Set<string>(ERROR_CODES);
    const missing = new Map<string, string>();
    for (const file of [...sources(path.join(PACKAGE_ROOT, 'server')), ...sources(path.join(PACKAGE_ROOT, 'license'))]) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/AppError\(\s*\d{3},\s*'([a-z0-9_]+)'/g)) {
        if (!known.has(m[1]!)) missing.set(m[1]!, path.relative(PACKAGE_ROOT, file));
      }
      for (const m of text.matchAll(/AppError\(\s*\d{3},\s*\w+\s*\?\s*'([a-z0-9_]+)'\s*:\s*'([a-z0-9_]+)'/g)) {
        for (const c of [m[1]!, m[2]!]) if (!known.has(c)) missing.set(c, path.relative(PACKAGE_ROOT, file));
      }
    }
    expect(Object.fromEntries(missing), 'add these codes to ERROR_CODES in server/contract.ts').toEqual({});
  });

  it('has no duplicates', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });
});
