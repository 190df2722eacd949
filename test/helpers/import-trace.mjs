// `node --import ./test/helpers/import-trace.mjs …`: appends every package an ES module imports
// (the bare specifier's package name, once per resolution) to the file named by
// IMPORT_TRACE_FILE. Used to check which packages a CLI command loads.
import { register } from 'node:module';

const hooks = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (process.env.IMPORT_TRACE_FILE && !/^(\\.|\\/|file:|node:|data:)/.test(specifier)) {
    const parts = specifier.split('/');
    appendFileSync(process.env.IMPORT_TRACE_FILE, (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/') + '\\n');
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
