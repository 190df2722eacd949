import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { withTable } from '../../scripts/config-table.js';

describe('README.md', () => {
  it('configuration table matches server/config/settings.ts (regenerate: node --import tsx scripts/config-table.ts --write)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(readme).toBe(withTable(readme));
  });

  it('gives the test command that .ci/run runs', () => {
    const readme = readFileSync('README.md', 'utf8');
    const testSection = readme.slice(readme.indexOf('## Test'));
    const command = /```sh\n([^\n]+)\n```/.exec(testSection)?.[1];
    expect(command).toBe('npm test');
    const ci = readFileSync('.ci/run', 'utf8').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    expect(ci.at(-1)).toBe(command);
  });
});
