import helmet from 'helmet';
import { describe, expect, it } from 'vitest';
import { CSP_DIRECTIVES, SECURITY_HEADERS, securityHeaders } from '../../server/http/security-headers.js';

/** What a middleware sets and removes on a stub response. */
function run(mw: (req: any, res: any, next: (e?: unknown) => void) => void): { set: Record<string, string>; removed: string[] } {
  const set: Record<string, string> = {};
  const removed: string[] = [];
  const res = {
    setHeader: (k: string, v: string) => {
      set[k.toLowerCase()] = v;
    },
    removeHeader: (k: string) => removed.push(k.toLowerCase()),
  };
  let called = false;
  mw({}, res, (e) => {
    expect(e).toBeUndefined();
    called = true;
  });
  expect(called).toBe(true);
  return { set, removed };
}

describe('security headers', () => {
  it('are exactly what helmet sets with the same configuration', () => {
    const reference = run(helmet({ contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES as Record<string, string[]> }, strictTransportSecurity: false }) as any);
    const ours = run(securityHeaders() as any);
    expect(ours.set).toEqual(reference.set);
    expect(ours.removed).toEqual(reference.removed);
    expect(SECURITY_HEADERS.length).toBe(Object.keys(reference.set).length);
  });

  it('keep the strict CSP the web UI relies on', () => {
    const csp = run(securityHeaders() as any).set['content-security-policy']!;
    expect(csp).toBe("default-src 'self';base-uri 'self';script-src 'self';style-src 'self';img-src 'self' data:;font-src 'self';connect-src 'self';object-src 'none';frame-ancestors 'none';form-action 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('https:');
  });
});
