import { defineConfig } from 'drizzle-kit';

/** PostgreSQL migrations (issue 22): `npm run db:generate` generates these and the SQLite ones. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './server/db/pg/schema.ts',
  out: './migrations-pg',
});
