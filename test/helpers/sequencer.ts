import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Test files in the order that keeps the end of a run short on two workers: the longest
 * first, so the last files to start are short ones and neither worker idles for long while
 * the other finishes a 30-second file.
 *
 * vitest's own order is the same when its results cache (node_modules/.vite) knows every file,
 * but a fresh clone (CI, scripts/test-under-load.sh) has no cache and vitest then runs the
 * largest files first: several of the longest files are short to read (a CLI session, a
 * browser pass at two widths) and started last. test/durations.json holds each file's duration
 * from a full run (ms, the tests' own time, files of a second or more); a file's duration in
 * the cache, when there is one and the file passed, wins (it is from this machine; a file that
 * failed to import has a duration of nothing). Files known to neither run first, larger before
 * smaller (a new file is as likely to be long as not).
 *
 * `--sequence.shuffle` still shuffles the files (by the run's seed): a custom sequencer replaces
 * vitest's RandomSequencer, so this one does the shuffling itself.
 */
const TABLE = JSON.parse(readFileSync(new URL('../durations.json', import.meta.url), 'utf8')) as Record<string, number>;

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const { root, sequence } = this.ctx.config;
    if (sequence.shuffle) return shuffled(files, sequence.seed);
    const known = (f: TestSpecification): number | undefined => {
      const rel = path.relative(root, f.moduleId).split(path.sep).join('/');
      const cached = this.ctx.cache.getFileTestResults(`${f.project.name}:${rel}`);
      return cached && !cached.failed ? cached.duration : TABLE[rel];
    };
    const size = (f: TestSpecification): number => {
      try {
        return statSync(f.moduleId).size;
      } catch {
        return 0;
      }
    };
    return [...files]
      .map((f) => ({ f, ms: known(f), size: size(f) }))
      .sort((a, b) => {
        if (a.ms === undefined || b.ms === undefined) return a.ms === b.ms ? b.size - a.size : a.ms === undefined ? -1 : 1;
        return b.ms - a.ms || b.size - a.size;
      })
      .map(({ f }) => f);
  }
}

/** Fisher–Yates with a small seeded generator (mulberry32): the same seed, the same order. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
