import { appendFileSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBundle, verifyBundle, listFiles, MANIFEST, SIGNATURE, IMAGE_ARCHIVE, type BundleManifest } from '../../installer/bundle.js';
import { RELEASE_ROOT } from '../../installer/layout.js';
import { tempDir } from '../helpers/app.js';
import { fakeDocker } from '../helpers/fake-docker.js';
import { cpSync } from 'node:fs';
import { install } from '../../installer/install.js';

const KEY = path.join(RELEASE_ROOT, 'license/keys/test/issuer.key.json');
const INCLUDE = ['compose', 'grafana', 'installer/install.sh', 'installer/lib.sh', 'installer/required-stops.json'];
let bundle: string;
let manifest: BundleManifest;

/** A fresh copy of the signed bundle to tamper with. */
function copy(): string {
  const d = path.join(tempDir('enclave-bundle-copy-'), 'b');
  cpSync(bundle, d, { recursive: true });
  return d;
}

beforeAll(async () => {
  const fd = fakeDocker();
  bundle = path.join(tempDir('enclave-bundle-'), 'enclave-bundle');
  manifest = await fd.withEnv(async () => createBundle({ out: bundle, signingKey: KEY, include: INCLUDE, log: () => {} }));
});

describe('air-gapped bundle manifest', () => {
  it('lists every image of every profile and every file with its SHA-256', () => {
    const refs = manifest.images.map((i) => i.ref);
    expect(refs).toContain('enclave/enclave:0.1.0');
    expect(refs.some((r) => r.startsWith('ollama/ollama:'))).toBe(true);
    expect(refs.some((r) => r.startsWith('quay.io/keycloak/keycloak:'))).toBe(true);
    expect(readFileSync(path.join(bundle, IMAGE_ARCHIVE), 'utf8').trim().split('\n').sort()).toEqual([...refs].sort());
    const listed = manifest.files.map((f) => f.path).sort();
    expect(listed).toEqual(listFiles(bundle).filter((f) => f !== MANIFEST && f !== SIGNATURE).sort());
    expect(listed).toContain('release/compose/docker-compose.yml');
    expect(listed).toContain(IMAGE_ARCHIVE);
  });

  it('the signature verifies (test root trusted in test mode only)', () => {
    const v = verifyBundle(bundle, { mode: 'test' });
    expect(v.manifest.version).toBe(manifest.version);
    expect(v.issuerKid).toMatch(/^iss-/);
    expect(() => verifyBundle(bundle, { mode: 'production' })).toThrow(/bundle signature invalid: .*test root/);
  });

  it('one changed byte in any listed file fails verification', () => {
    const d = copy();
    for (const f of manifest.files) {
      const file = path.join(d, f.path);
      const orig = readFileSync(file);
      const bad = Buffer.from(orig);
      const i = Math.floor(bad.length / 2);
      bad[i] = bad[i]! ^ 0x01;
      writeFileSync(file, bad);
      expect(() => verifyBundle(d, { mode: 'test' }), f.path).toThrow(new RegExp(`${f.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: SHA-256 differs`));
      writeFileSync(file, orig);
    }
    expect(verifyBundle(d, { mode: 'test' }).manifest.files).toHaveLength(manifest.files.length);
  });

  it('a changed manifest, a missing file, an extra file or a missing signature fail', () => {
    let d = copy();
    const m = readFileSync(path.join(d, MANIFEST), 'utf8');
    writeFileSync(path.join(d, MANIFEST), m.replace(`"version": "${manifest.version}"`, '"version": "9.9.9"'));
    expect(() => verifyBundle(d, { mode: 'test' })).toThrow(/signature invalid: .*changed after signing/);

    d = copy();
    rmSync(path.join(d, 'release/installer/install.sh'));
    expect(() => verifyBundle(d, { mode: 'test' })).toThrow(/release\/installer\/install.sh: missing/);

    d = copy();
    mkdirSync(path.join(d, 'release/extra'), { recursive: true });
    writeFileSync(path.join(d, 'release/extra/evil.sh'), 'echo pwned');
    expect(() => verifyBundle(d, { mode: 'test' })).toThrow(/release\/extra\/evil.sh: not in the manifest/);

    d = copy();
    appendFileSync(path.join(d, 'release/compose/docker-compose.yml'), '\n');
    expect(() => verifyBundle(d, { mode: 'test' })).toThrow(/size differs/);

    d = copy();
    rmSync(path.join(d, SIGNATURE));
    expect(() => verifyBundle(d, { mode: 'test' })).toThrow(/not an Enclave bundle/);
  });

  it('refuses to write into a non-empty directory', async () => {
    await expect(fakeDocker().withEnv(async () => createBundle({ out: bundle, signingKey: KEY, include: INCLUDE, log: () => {} }))).rejects.toThrow(/not empty/);
  });

  it('install --offline verifies the bundle, loads its images and never pulls', async () => {
    const fd = fakeDocker();
    const dir = path.join(tempDir('enclave-offline-'), 'enclave');
    const lines: string[] = [];
    await fd.withEnv(
      () => install({ dir, hostname: 'enclave.test', offlineBundle: bundle, httpPort: 1, httpsPort: 2, skipChecks: ['disk', 'root', 'ports'], out: (l) => lines.push(l) }),
      { ENCLAVE_LICENSE_MODE: 'test' },
    );
    const calls = fd.calls();
    expect(calls).toContain(`load -i ${path.join(bundle, IMAGE_ARCHIVE)}`);
    for (const img of manifest.images) expect(calls).toContain(`image inspect --format {{.Id}} ${img.ref}`);
    expect(calls.some((c) => / pull\b/.test(c))).toBe(false);
    expect(lines.join('\n')).toMatch(/signature ok/);

    const tampered = copy();
    appendFileSync(path.join(tampered, IMAGE_ARCHIVE), 'x');
    const before = fd.calls().length;
    await expect(
      fd.withEnv(() => install({ dir, offlineBundle: tampered, skipChecks: ['disk', 'root', 'ports'], out: () => {} }), { ENCLAVE_LICENSE_MODE: 'test' }),
    ).rejects.toThrow(/images\/enclave-images.tar: size differs/);
    expect(fd.calls().slice(before).some((c) => c.startsWith('load'))).toBe(false);
  });
});
