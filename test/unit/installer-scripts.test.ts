import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RELEASE_ROOT } from '../../installer/layout.js';

const scripts = [
  ...readdirSync(path.join(RELEASE_ROOT, 'installer')).filter((f) => f.endsWith('.sh')).map((f) => `installer/${f}`),
  'test/fakes/installer-bin/docker',
  'test/fakes/installer-bin/timedatectl',
];

function tool(name: string, pkg: string): string {
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(path.join(d, name))) return path.join(d, name);
  throw new Error(`${name} is not installed: apt-get install -y ${pkg} (listed in .ci/apt-packages.txt)`);
}

describe('installer shell scripts', () => {
  it('finds the scripts', () => {
    expect(scripts).toEqual(expect.arrayContaining(['installer/install.sh', 'installer/upgrade.sh', 'installer/uninstall.sh', 'installer/bundle.sh', 'installer/lib.sh']));
  });

  it.each(scripts)('bash -n %s', (s) => {
    const r = spawnSync('bash', ['-n', path.join(RELEASE_ROOT, s)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('shellcheck passes on every script', () => {
    const shellcheck = tool('shellcheck', 'shellcheck');
    const r = spawnSync(shellcheck, ['-x', '--severity=style', ...scripts], { cwd: RELEASE_ROOT, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the entry scripts are executable and reach the installer (--help lists the flags)', () => {
    for (const s of ['install.sh', 'upgrade.sh', 'uninstall.sh', 'bundle.sh']) {
      execFileSync('test', ['-x', path.join(RELEASE_ROOT, 'installer', s)]);
    }
    const r = spawnSync('bash', [path.join(RELEASE_ROOT, 'installer/install.sh'), '--help'], {
      env: { ...process.env, ENCLAVE_INSTALLER_FROM_SOURCE: '1' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--hostname <name>/);
    expect(r.stdout).toMatch(/--offline <bundle>/);
    expect(r.stdout).toMatch(/--skip-check <id>/);
  });
});
