import { randomBytes } from 'node:crypto';
import { startTestApp, testConfig } from '../helpers/app.js';
import { adminApiRoutes, crossTenantMatrix, MATRIX_APP } from '../helpers/cross-tenant-matrix.js';
import { freshDatabase } from '../helpers/postgres.js';

/**
 * The cross-tenant matrix (test/helpers/cross-tenant-matrix.ts: every admin API route, both
 * credential kinds, tenant A reaching for tenant B's ids) through two api replicas on one
 * PostgreSQL and one Redis (issue 22). Tenants, keys and the session are made through replica
 * A; each route's session request goes to one replica and its API-key request to the other
 * (alternating per route), so every route and both credential kinds are served by both
 * replicas from the shared database — at the cost of one matrix, not two.
 */
const ROUTES = await adminApiRoutes();

crossTenantMatrix('cross-tenant matrix through two PostgreSQL replicas', ROUTES, async () => {
  const shared = { ...MATRIX_APP.env, ENCLAVE_DATABASE_URL: await freshDatabase('replicas_matrix'), ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') };
  const first = testConfig(shared);
  const a = await startTestApp({ config: first, entitlements: MATRIX_APP.entitlements });
  const b = await startTestApp({ config: testConfig({ ...shared, REDIS_URL: first.redisUrl! }), entitlements: MATRIX_APP.entitlements });
  return {
    app: a,
    urls: [a.url, b.url],
    close: async () => {
      await b.close();
      await a.close();
    },
  };
});
