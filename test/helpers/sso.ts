import type { Browser } from '../fakes/oidc-browser.js';
import type { FakeOp } from '../fakes/oidc-provider.js';

/**
 * One SSO login through the test IdP as `sub`: follows the redirects from `start` until they
 * land back on the app (outside /auth/oidc/). A login that ends in a redirect into the app
 * is { status: 302 }; one the app refuses is its status and error code.
 */
export async function ssoLogin(br: Browser, op: FakeOp, appUrl: string, start: string, sub: string): Promise<{ status: number; code?: string }> {
  op.nextLogin = sub;
  const r = await br.follow(start, { until: (next) => next.startsWith(appUrl) && !next.includes('/auth/oidc/') });
  if (r.stoppedAt) return { status: 302 };
  return { status: r.res.status, code: ((await r.res.json()) as { error?: { code?: string } }).error?.code };
}

/** The app's view of the browser's session (GET /auth/session); `body` is any because tests read its fields freely. */
export async function sessionOf(br: Browser, appUrl: string): Promise<{ status: number; body: any }> {
  const res = await br.request(`${appUrl}/auth/session`);
  return { status: res.status, body: await res.json() };
}
