import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
