import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Redis for the run; the sources compiled once for the processes tests spawn (compiled.ts).
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
    pool: 'forks',
    // Test files share their worker process instead of each getting a fresh one: importing the
    // server for every file cost more than the tests themselves (16 integration files on the
    // loaded machine: 238 s wall / 59 s CPU isolated, 91 s / 24 s shared). Files must leave the
    // process as they found it: setup-file.ts restores the environment and spies after each
    // file; servers, apps and timers are closed in afterAll as before.
    isolate: false,
    // The longest files first, also in a fresh clone without vitest's results cache (sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
    // Tests spawn processes and servers; two workers match this 2-core machine.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
