import { flushWorkerDatabases } from './redis-db.js';

// Runs in the worker before each test file (vitest.config.ts setupFiles): every file starts
// with empty Redis databases in its worker's range (see flushWorkerDatabases).
await flushWorkerDatabases();
