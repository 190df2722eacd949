import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { inject } from 'vitest';
import { PACKAGE_ROOT } from '../../server/paths.js';

/**
 * Child processes (servers, CLIs, fixtures) start from JavaScript compiled once per state of
 * the sources, not through `node --import tsx`: tsx transforms and resolves every module again
 * in every spawned process (≈0.8 s of CPU per CLI run here, three times a plain-JS start), and
 * the suite spawns a few hundred. The output is esbuild's per-file transform, the same one tsx
 * applies, with the directory layout kept (so `PACKAGE_ROOT`, the migrations and node_modules
 * resolve as from the sources) and inline source maps (stack traces name the .ts lines).
 */
const SOURCE_DIRS = ['server', 'cli', 'license', 'installer', 'test/fixtures'];
/** Under node_modules (ignored by git and Biome) and inside the package, so bare imports resolve. */
const CACHE = path.join(PACKAGE_ROOT, 'node_modules', '.cache', 'enclave-test-build');
/**
 * Builds of earlier source states are removed once this old (a run still using one is long
 * over). In a checkout several people edit, a build is made every few minutes (≈5 MB each).
 */
const KEEP_MS = 3600_000;

function sources(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return walk(p);
      return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
    });
  return SOURCE_DIRS.map((d) => path.join(PACKAGE_ROOT, d)).filter(existsSync).flatMap(walk).sort();
}

/**
 * Compiles the sources into a directory named by a hash of their paths and contents (and the
 * tsconfig esbuild reads), unless a complete build of that state exists; returns it. Several
 * test runs may start at once in one checkout: each builds into a private directory and
 * renames it into place, so no run ever sees a half-written build.
 */
export async function ensureCompiled(): Promise<string> {
  const files = sources();
  const key = createHash('sha256');
  for (const f of [...files, path.join(PACKAGE_ROOT, 'tsconfig.json')]) {
    key.update(`${path.relative(PACKAGE_ROOT, f)}\0`);
    key.update(readFileSync(f)); // contents, not mtimes: a touch or checkout alone builds nothing new
  }
  const dir = path.join(CACHE, key.digest('hex').slice(0, 16));
  if (existsSync(path.join(dir, '.complete'))) {
    const now = new Date();
    utimesSync(dir, now, now); // in use: not pruned
    return dir;
  }
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await build({
    entryPoints: files,
    outdir: tmp,
    outbase: PACKAGE_ROOT,
    absWorkingDir: PACKAGE_ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    logLevel: 'silent',
  });
  writeFileSync(path.join(tmp, '.complete'), '');
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another run put the same build in place first
  }
  prune(dir);
  return dir;
}

function prune(keep: string): void {
  const cutoff = Date.now() - KEEP_MS;
  for (const name of readdirSync(CACHE)) {
    const p = path.join(CACHE, name);
    if (p === keep) continue;
    try {
      if (statSync(p).mtimeMs < cutoff) rmSync(p, { recursive: true, force: true });
    } catch {
      /* removed by another run meanwhile */
    }
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    compiledRoot: string;
  }
}

/**
 * `node` arguments that run `source` (a path from the package root, e.g. 'cli/main.ts') from the
 * run's compiled build, with source maps for stack traces; `preload` are node options placed
 * before the script (after tsx's hooks, when through tsx). Through tsx, as before, outside a
 * vitest run that has the global setup, or with TEST_SPAWN_TSX=1 (to compare the two).
 */
export function nodeArgs(source: string, preload: readonly string[] = []): string[] {
  let root: string | undefined;
  try {
    root = process.env.TEST_SPAWN_TSX === '1' ? undefined : inject('compiledRoot');
  } catch {
    root = undefined;
  }
  if (!root) return ['--import', 'tsx', ...preload, source];
  return ['--enable-source-maps', ...preload, path.join(root, source.replace(/\.ts$/, '.js'))];
}

/**
 * vitest globalSetup (vitest.config.ts): compiles once for the run and tells the workers where.
 * A source that does not compile (someone's edit in progress) fails only the tests that spawn:
 * they fall back to tsx, which reports the same error in the child, instead of the whole run.
 */
export default async function setup(project: { provide(key: 'compiledRoot', value: string): void }): Promise<void> {
  // Once per run, whatever the number of vitest projects (each runs its global setup).
  const g = globalThis as { __enclaveCompiled?: Promise<string> };
  g.__enclaveCompiled ??= ensureCompiled();
  try {
    project.provide('compiledRoot', await g.__enclaveCompiled);
  } catch (e) {
    process.stderr.write(`test setup: the sources did not compile, spawned processes run through tsx: ${(e as Error).message.split('\n')[0]}\n`);
    project.provide('compiledRoot', '');
  }
}
