import express, { Router, type Request, type Response, type NextFunction } from 'express';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

/** Where `vite build --config web/vite.config.ts` writes the UI. */
export const WEB_DIST = path.join(PACKAGE_ROOT, 'dist', 'web');

/** Paths the UI never answers for: the API surfaces keep their own 404s. */
const API_PREFIXES = ['/v1', '/ollama', '/admin/api', '/auth', '/oidc', '/api', '/healthz', '/readyz', '/metrics'];

function isApiPath(p: string): boolean {
  return API_PREFIXES.some((x) => p === x || p.startsWith(`${x}/`));
}

/**
 * The web UI: hashed files under /assets/* are immutable (a year, `immutable`),
 * index.html is never cached (it names the current hashes) and is the SPA fallback for
 * any other GET/HEAD whose Accept names text/html and is not an API path. Without a build
 * (dist/web missing) the router does nothing and the API answers as before.
 */
export function webRouter(dir: string = WEB_DIST): Router {
  const r = Router();
  const indexFile = path.join(dir, 'index.html');
  if (!existsSync(indexFile)) return r;
  const index = readFileSync(indexFile);

  r.use(
    '/assets',
    express.static(path.join(dir, 'assets'), {
      index: false,
      fallthrough: true,
      immutable: true,
      maxAge: '365d',
      etag: false,
      lastModified: false,
    }),
  );

  const sendIndex = (_req: Request, res: Response) => {
    res.set({ 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache, no-store, must-revalidate' });
    res.send(index);
  };

  // Other top-level files the build emits (favicon and the like), not index.html.
  r.use(
    express.static(dir, {
      index: false,
      fallthrough: true,
      maxAge: '1h',
      etag: false,
      setHeaders: (res, file) => {
        if (file.endsWith('.html')) res.setHeader('cache-control', 'no-cache');
      },
    }),
  );

  r.use((req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    if (isApiPath(req.path) || req.path.startsWith('/assets/')) return next();
    // Browsers navigating ask for text/html explicitly; API clients (*/*, JSON) get the API's 404.
    if (!(req.get('accept') ?? '').includes('text/html')) return next();
    sendIndex(req, res);
  });
  return r;
}
