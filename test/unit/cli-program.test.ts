import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, GROUPS, groupNamed } from '../../cli/program.js';

// The CLI loads a group's module only when argv names it; `enclave --help` is drawn from the
// static table in cli/program.ts. These checks keep that table true to the modules.
describe('enclave command groups', () => {
  it('each table entry matches the one group its module registers', async () => {
    for (const g of GROUPS) {
      const p = new Command('enclave');
      (await g.load())(p);
      expect(p.commands.map((c) => c.name()), g.name).toEqual([g.name]);
      const c = p.commands[0]!;
      expect(c.description(), `description of ${g.name} (copy it into GROUPS in cli/program.ts)`).toBe(g.description);
      expect(c.options.length > 0, `options of ${g.name}`).toBe(g.options === true);
      expect(c.registeredArguments, `arguments of ${g.name}`).toEqual([]);
      expect(c.aliases(), `aliases of ${g.name}`).toEqual([]);
    }
  }, 60_000);

  it('the top-level help without the modules is the help with all of them', async () => {
    const lazy = await buildProgram(undefined);
    const full = await buildProgram('all');
    expect(lazy.helpInformation()).toBe(full.helpInformation());
    expect(lazy.commands.map((c) => c.name())).toEqual(full.commands.map((c) => c.name()));
  }, 60_000);

  it('finds the group commander dispatches to', () => {
    expect(groupNamed([])).toBeUndefined();
    expect(groupNamed(['--help'])).toBeUndefined();
    expect(groupNamed(['help'])).toBeUndefined();
    expect(groupNamed(['tenants', 'list', '--json'])).toBe('tenants');
    expect(groupNamed(['help', 'tenants'])).toBe('tenants');
    expect(groupNamed(['--', 'tenants', 'list'])).toBe('tenants');
    expect(groupNamed(['-h', 'tenants'])).toBe('tenants');
  });
});
