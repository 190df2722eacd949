import { crossTenantMatrix, adminApiRoutes, MATRIX_APP } from '../helpers/cross-tenant-matrix.js';
import { startTestApp } from '../helpers/app.js';

/**
 * Cross-tenant matrix over every admin API route (test/helpers/cross-tenant-matrix.ts, where
 * the cases are): a principal of tenant A reaching for tenant B's resources by id gets 404,
 * nothing of B changes, every attempt is audited. One app here; through two PostgreSQL replicas
 * in postgres-replicas-matrix.test.ts.
 */
const ROUTES = await adminApiRoutes();

crossTenantMatrix('cross-tenant matrix over every admin API route', ROUTES, async () => {
  const app = await startTestApp(MATRIX_APP);
  return { app, urls: [app.url], close: () => app.close() };
});
