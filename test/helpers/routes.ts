import express from 'express';
import type { RequestListener } from 'node:http';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/**
 * Every route of the express app that `build` creates ("GET /admin/api/tenants/:tenantId", …),
 * read from the app's own router stack, sub-routers included: a test that covers "every
 * route" cannot miss one that a router gains later. buildApp returns the /v1 fast path with
 * the express app behind it, so the app is caught where express creates it (its init()).
 * Routers are mounted at the root here (full paths in each route), as server/app.ts does.
 */
export function appRoutes(build: () => RequestListener): string[] {
  const created: { router: { stack: Layer[] } }[] = [];
  const proto = express.application as unknown as { init: (...a: unknown[]) => unknown };
  const init = proto.init;
  proto.init = function (this: { router: { stack: Layer[] } }, ...a: unknown[]) {
    created.push(this);
    return init.apply(this, a);
  };
  try {
    build();
  } finally {
    proto.init = init;
  }
  if (created.length !== 1) throw new Error(`expected one express app, saw ${created.length}`);
  const out: string[] = [];
  const walk = (stack: Layer[]): void => {
    for (const l of stack) {
      if (l.route) {
        const paths = Array.isArray(l.route.path) ? l.route.path : [l.route.path];
        for (const m of Object.keys(l.route.methods)) if (m !== '_all') for (const p of paths) out.push(`${m.toUpperCase()} ${p}`);
      } else if (l.handle?.stack) walk(l.handle.stack);
    }
  };
  walk(created[0]!.router.stack);
  return out;
}
