import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/helpers/sequencer.js';

/**
 * The `postgres` project: integration files that run a second time in `npm test`, on a real
 * PostgreSQL (TEST_DIALECT=postgres: every test app gets a fresh database, test/helpers/app.ts).
 * The data-layer-heavy ones — identity and keys, audit, licence, SCIM, metering admission, chat,
 * the cross-tenant matrix — chosen within the suite's time budget (docs/postgres.md "Tests":
 * the list, why, and what it costs). The dialect contract tests (store, identity-store,
 * chat-store, metering-store, license-store, postgres-*) already run both dialects themselves
 * and are not listed. `npm run test:postgres` runs the whole integration suite on PostgreSQL.
 */
export const POSTGRES_FILES = [
  'test/integration/admin-cross-tenant.test.ts',
  'test/integration/audit.test.ts',
  'test/integration/chat-assistants.test.ts',
  'test/integration/identity-sessions.test.ts',
  'test/integration/jobs-audit-archive.test.ts',
  'test/integration/keys.test.ts',
  'test/integration/license-trusted-time.test.ts',
  'test/integration/metering-admission.test.ts',
  'test/integration/scim-conformance.test.ts',
  'test/integration/scim-security.test.ts',
];

/** Options of both projects (a project does not inherit the root's test options). */
const shared = {
  // Redis for the run; the sources compiled once for the processes tests spawn (compiled.ts).
  // Both run once per run whatever the number of projects (they share through globalThis).
  globalSetup: ['test/helpers/global-setup.ts', 'test/helpers/compiled.ts'],
  // Before each file: its worker's Redis databases emptied (no keys left by an earlier file).
  setupFiles: ['test/helpers/setup-file.ts'],
  // Generous: several tests run the CLI or the server as child processes (each start takes
  // seconds on a loaded 2-core machine).
  testTimeout: 60_000,
  hookTimeout: 30_000,
  // expect.poll waits for the UI or a process to catch up; 1 s (the default) is too short on a
  // loaded 2-core machine (a UI poll failed that way in a full run).
  expect: { poll: { timeout: 10_000 } },
  pool: 'forks' as const,
  // Test files share their worker process instead of each getting a fresh one: importing the
  // server for every file cost more than the tests themselves (16 integration files on the
  // loaded machine: 238 s wall / 59 s CPU isolated, 91 s / 24 s shared). Files must leave the
  // process as they found it: setup-file.ts restores the environment and spies after each
  // file; servers, apps and timers are closed in afterAll as before.
  isolate: false,
};

export default defineConfig({
  test: {
    // The longest files first, also in a fresh clone without vitest's results cache (sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
    // Tests spawn processes and servers; two workers match this 2-core machine.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'main', include: ['test/**/*.test.ts'] } },
      { test: { ...shared, name: 'postgres', include: POSTGRES_FILES, env: { TEST_DIALECT: 'postgres' } } },
    ],
  },
});
