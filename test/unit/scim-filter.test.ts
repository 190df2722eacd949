import { describe, expect, it } from 'vitest';
import { ScimError } from '../../server/scim/errors.js';
import { emailTerms, matches, parseFilter, parsePatchPath } from '../../server/scim/filter.js';
import { applyPatch } from '../../server/scim/patch.js';
import { parseResource, userInput } from '../../server/scim/resources.js';

const user = {
  schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
  id: 'usr_1',
  externalId: 'Ext-1',
  userName: 'Ada@Example.com',
  name: { givenName: 'Ada', familyName: 'Lovelace' },
  emails: [
    { value: 'ada@example.com', type: 'work', primary: true },
    { value: 'ada@home.example', type: 'home' },
  ],
  active: true,
  'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Engineering' },
};
const m = (f: string) => matches(user, parseFilter(f));
const scimType = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof ScimError ? `${e.status} ${e.scimType}` : String(e);
  }
  return 'no error';
};

describe('SCIM filters', () => {
  it('compares userName case-insensitively, externalId and id exactly', () => {
    expect(m('userName eq "ada@example.com"')).toBe(true);
    expect(m('USERNAME EQ "ADA@EXAMPLE.COM"')).toBe(true);
    expect(m('externalId eq "Ext-1"')).toBe(true);
    expect(m('externalId eq "ext-1"')).toBe(false);
    expect(m('id eq "usr_1"')).toBe(true);
  });
  it('value paths, Entra’s `[…].value eq` form, and multi-valued attributes', () => {
    expect(m('emails[type eq "work"].value eq "ada@example.com"')).toBe(true);
    expect(m('emails[type eq "home"].value eq "ada@example.com"')).toBe(false);
    expect(m('emails[type eq "work" and primary eq true]')).toBe(true);
    expect(m('emails.value eq "ada@home.example"')).toBe(true);
    expect(m('emails co "home"')).toBe(true);
    expect(m('name.givenName sw "Ad" and not (name.familyName eq "Byron")')).toBe(true);
    expect(m('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "engineering"')).toBe(true);
    expect(m('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada@example.com"')).toBe(true);
    expect(m('title pr')).toBe(false);
    expect(m('title pr or active eq true')).toBe(true);
  });
  it('members[value eq "…"] on a group', () => {
    const g = { id: 'grp_1', displayName: 'Eng', members: [{ value: 'usr_1' }, { value: 'usr_2' }] };
    expect(matches(g, parseFilter('id eq "grp_1" and members[value eq "usr_2"]'))).toBe(true);
    expect(matches(g, parseFilter('members[value eq "usr_3"]'))).toBe(false);
  });
  it('emailTerms: the e-mail values an and-chain requires, only when safe for a substring pre-selection', () => {
    expect(emailTerms(parseFilter('emails[type eq "work"].value eq "a@b.c"'))).toEqual(['a@b.c']);
    expect(emailTerms(parseFilter('emails.value eq "a@b.c" and active eq true'))).toEqual(['a@b.c']);
    expect(emailTerms(parseFilter('emails eq "a@b.c"'))).toEqual(['a@b.c']);
    // Not required by every match, or not stored verbatim: no pre-selection.
    expect(emailTerms(parseFilter('emails.value eq "a@b.c" or userName eq "x"'))).toEqual([]);
    expect(emailTerms(parseFilter('emails.value co "a@b.c"'))).toEqual([]);
    expect(emailTerms(parseFilter('emails[type eq "work"].type eq "work"'))).toEqual([]);
    expect(emailTerms(parseFilter('emails.value eq "é@b.c"'))).toEqual([]);
    expect(emailTerms(parseFilter('emails.value eq "a\\"b@c.d"'))).toEqual([]);
  });

  it('bad filters are 400 invalidFilter, never a crash', () => {
    for (const f of ['userName', 'userName eq', 'userName eq ada', 'userName zz "x"', '(userName eq "x"', 'userName eq "x" junk', 'emails[type eq "work"', '"x" eq userName', 'a.b.c eq "x"', `${'('.repeat(40)}userName eq "x"${')'.repeat(40)}`, 'x'.repeat(3000)]) {
      expect(scimType(() => parseFilter(f)), f.slice(0, 40)).toBe('400 invalidFilter');
    }
    expect(scimType(() => parsePatchPath('emails[type eq'))).toBe('400 invalidPath');
  });
});

describe('SCIM PATCH', () => {
  it('Entra ID: replace without path, keys as paths, active as the string "False"', () => {
    const out = applyPatch(user, [
      { op: 'Replace', value: { 'name.givenName': 'Augusta', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department': 'Math' } },
      { op: 'Replace', path: 'active', value: 'False' },
    ]);
    const parsed = parseResource(userInput, out);
    expect(parsed.active).toBe(false);
    expect(parsed.name?.givenName).toBe('Augusta');
    expect(parsed.name?.familyName).toBe('Lovelace');
    expect(parsed['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User']?.department).toBe('Math');
  });
  it('Okta: replace without path with a value object; filtered path creates the element', () => {
    const out = applyPatch(user, [{ op: 'replace', value: { active: false, displayName: 'Ada L' } }, { op: 'add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555' }]);
    const parsed = parseResource(userInput, out);
    expect(parsed.active).toBe(false);
    expect(parsed.displayName).toBe('Ada L');
    expect(parsed.phoneNumbers).toEqual([{ type: 'mobile', value: '+1 555' }]);
  });
  it('emails[type eq "work"].value replace changes only that element', () => {
    const out = parseResource(userInput, applyPatch(user, [{ op: 'replace', path: 'emails[type eq "work"].value', value: 'ada.l@example.com' }]));
    expect(out.emails?.map((e) => e.value)).toEqual(['ada.l@example.com', 'ada@home.example']);
  });
  it('members: add (no duplicates), remove by filter (RFC/Okta) and by value list (Entra)', () => {
    const g = { displayName: 'Eng', members: [{ value: 'a' }] };
    let out = applyPatch(g, [{ op: 'Add', path: 'members', value: [{ value: 'b' }, { value: 'a' }, { value: 'c' }] }]);
    expect(out.members).toEqual([{ value: 'a' }, { value: 'b' }, { value: 'c' }]);
    out = applyPatch(out, [{ op: 'remove', path: 'members[value eq "b"]' }]);
    expect(out.members).toEqual([{ value: 'a' }, { value: 'c' }]);
    out = applyPatch(out, [{ op: 'Remove', path: 'members', value: [{ value: 'a' }] }]);
    expect(out.members).toEqual([{ value: 'c' }]);
    out = applyPatch(out, [{ op: 'remove', path: 'members' }]);
    expect(out.members).toBeUndefined();
  });
  it('bad operations are SCIM 400s', () => {
    expect(scimType(() => applyPatch(user, [{ op: 'move', path: 'x', value: 1 }]))).toBe('400 invalidSyntax');
    expect(scimType(() => applyPatch(user, [{ op: 'remove' }]))).toBe('400 noTarget');
    expect(scimType(() => applyPatch(user, [{ op: 'replace', value: 'x' }]))).toBe('400 invalidValue');
    expect(scimType(() => applyPatch(user, [{ op: 'replace', path: 'urn:example:unknown:2.0:User:x', value: 'x' }]))).toBe('400 invalidPath');
    expect(scimType(() => parseResource(userInput, applyPatch(user, [{ op: 'replace', path: 'active', value: 'maybe' }])))).toBe('400 invalidValue');
    expect(scimType(() => parseResource(userInput, applyPatch(user, [{ op: 'remove', path: 'userName' }])))).toBe('400 invalidValue');
  });
});
