import { afterAll, vi } from 'vitest';
import { flushWorkerDatabases } from './redis-db.js';

// Runs in the worker before each test file (vitest.config.ts setupFiles): every file starts
// with empty Redis databases in its worker's range (see flushWorkerDatabases).
await flushWorkerDatabases();

// Files share their worker's process (vitest.config.ts `isolate: false`), so what one file
// changes in the process must not reach the next: the environment is put back as it was when
// the file started (a file that sets ENCLAVE_* for an in-process CLI would otherwise configure
// every later file's apps), and spies are undone.
const envAtStart = { ...process.env };
afterAll(() => {
  for (const name of Object.keys(process.env)) {
    if (!(name in envAtStart)) delete process.env[name];
  }
  Object.assign(process.env, envAtStart);
  vi.restoreAllMocks();
});
