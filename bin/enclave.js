#!/usr/bin/env node
// The `enclave` CLI. Runs the compiled CLI from dist/ (built by `npm ci` through the
// `prepare` script, or `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(entry)) {
  process.stderr.write('enclave: not built yet; run: npm run build\n');
  process.exit(1);
}
await import(entry);
