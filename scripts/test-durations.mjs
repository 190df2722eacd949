#!/usr/bin/env node
// Per-file durations from vitest JSON reports (`--reporter=json --outputFile.json=<file>`, as
// scripts/test-under-load.sh writes them): prints the slowest files, and with --write updates
// test/durations.json, the table test/helpers/sequencer.ts starts the longest files first by
// (a fresh clone has no vitest cache). Several reports: each file's mean over them.
//
//   node scripts/test-durations.mjs run-1.json run-2.json            # the 25 slowest files
//   node scripts/test-durations.mjs --write run-1.json run-2.json    # and refresh the table
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const write = args.includes('--write');
const reports = args.filter((a) => a !== '--write');
if (reports.length === 0) {
  process.stderr.write('usage: node scripts/test-durations.mjs [--write] <vitest-report.json>...\n');
  process.exit(2);
}
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
/** file (relative to the repository) -> durations in ms, one per report that ran it */
const seen = new Map();
for (const file of reports) {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  for (const t of report.testResults) {
    // The report's paths are those of the clone it ran in: keep the part from test/ on.
    const rel = t.name.slice(t.name.lastIndexOf('/test/') + 1);
    seen.set(rel, [...(seen.get(rel) ?? []), t.endTime - t.startTime]);
  }
}
const mean = [...seen].map(([f, ds]) => [f, Math.round(ds.reduce((a, b) => a + b, 0) / ds.length)]).sort((a, b) => b[1] - a[1]);
for (const [f, ms] of mean.slice(0, 25)) process.stdout.write(`${(ms / 1000).toFixed(1).padStart(7)} s  ${f}\n`);
process.stdout.write(`(${mean.length} files, ${(mean.reduce((a, [, ms]) => a + ms, 0) / 1000).toFixed(0)} s of tests in all)\n`);
if (write) {
  const table = Object.fromEntries(mean.filter(([, ms]) => ms >= 1000));
  writeFileSync(path.join(root, 'test', 'durations.json'), `${JSON.stringify(table, null, 2)}\n`);
  process.stdout.write(`test/durations.json: ${Object.keys(table).length} files of a second or more\n`);
}
