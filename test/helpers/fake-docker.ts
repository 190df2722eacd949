import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../../server/paths.js';
import { nodeArgs } from './compiled.js';

const FAKES = fileURLToPath(new URL('../fakes/installer-bin/', import.meta.url));

/**
 * A fake `docker` (and `timedatectl`) on PATH for installer tests (test/fakes/installer-bin):
 * answers version, info, compose version/ps/up/down/exec, volume inspect/create/rm, image
 * inspect, save, load and pull from a state dir, and logs every call (one line each).
 * Knobs (env): FAKE_DOCKER_DOWN=1, FAKE_DOCKER_VERSION, FAKE_COMPOSE_VERSION, FAKE_DOCKER_NCPU,
 * FAKE_DOCKER_MEM, FAKE_DOCKER_NVIDIA=1, FAKE_DOCKER_FAIL=<substring of the args that fails>,
 * FAKE_NTP, FAKE_NTP_SYNC (yes|no).
 */
export interface FakeDocker {
  readonly bin: string;
  readonly state: string;
  /** Environment with the fakes first on PATH. */
  readonly env: NodeJS.ProcessEnv;
  calls(): string[];
  /** Runs fn with process.env pointing at the fakes (for in-process installer calls). */
  withEnv<T>(fn: () => Promise<T>, extra?: Record<string, string>): Promise<T>;
}

export function fakeDocker(): FakeDocker {
  const root = mkdtempSync(path.join(tmpdir(), 'enclave-fake-docker-'));
  const bin = path.join(root, 'bin');
  const state = path.join(root, 'state');
  mkdirSync(bin);
  mkdirSync(state);
  for (const f of ['docker', 'timedatectl']) {
    copyFileSync(path.join(FAKES, f), path.join(bin, f));
    chmodSync(path.join(bin, f), 0o755);
  }
  writeNodeShim(bin);
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_DOCKER_STATE: state };
  return {
    bin,
    state,
    env,
    calls: () => {
      const f = path.join(state, 'calls.log');
      return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
    },
    withEnv: async (fn, extra = {}) => {
      const saved = { ...process.env };
      Object.assign(process.env, { PATH: env.PATH, FAKE_DOCKER_STATE: state, ...extra });
      try {
        return await fn();
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
        Object.assign(process.env, saved);
      }
    },
  };
}

/**
 * The installer scripts (lib.sh) run the installer's TypeScript with `node --import tsx
 * installer/main.ts` when ENCLAVE_INSTALLER_FROM_SOURCE=1, as the tests ask. A `node` first on
 * the fakes' PATH runs that one command from the run's compiled build instead (compiled.ts:
 * the same sources, without tsx transforming them again in every run, ≈0.6 s of CPU each) and
 * passes everything else to the real node. Without a compiled build (TEST_SPAWN_TSX=1, or
 * outside vitest) nodeArgs() names tsx again and no shim is written.
 */
function writeNodeShim(bin: string): void {
  const args = nodeArgs('installer/main.ts');
  if (args[0] === '--import') return;
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const shim = [
    '#!/usr/bin/env bash',
    '# Written by test/helpers/fake-docker.ts: the installer from the compiled build, not through tsx.',
    `if [ "$#" -ge 3 ] && [ "$1" = --import ] && [ "$2" = tsx ] && [ "$3" = ${q(path.join(PACKAGE_ROOT, 'installer/main.ts'))} ]; then`,
    '  shift 3',
    `  exec ${q(process.execPath)} ${args.map(q).join(' ')} "$@"`,
    'fi',
    `exec ${q(process.execPath)} "$@"`,
    '',
  ].join('\n');
  writeFileSync(path.join(bin, 'node'), shim, { mode: 0o755 });
}
