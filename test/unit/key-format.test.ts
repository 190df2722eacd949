import { describe, expect, it } from 'vitest';
import { generateKey, hashKey, parseKey, visiblePrefix } from '../../server/keys/format.js';
import { checkPasswordPolicy, hashPassword, verifyPassword } from '../../server/identity/passwords.js';

describe('API key format', () => {
  it('is enk_ + 43 base62 + 6 checksum characters, with a 12-character visible prefix', () => {
    const k = generateKey();
    expect(k.secret).toMatch(/^enk_[0-9A-Za-z]{49}$/);
    expect(k.prefix).toBe(k.secret.slice(0, 12));
    expect(k.hash).toBe(hashKey(k.secret));
    expect(k.hash).not.toContain(k.secret);
    expect(parseKey(k.secret)).toEqual({ ok: true, prefix: visiblePrefix(k.secret) });
  });
  it('keys are unique', () => {
    const set = new Set(Array.from({ length: 2000 }, () => generateKey().secret));
    expect(set.size).toBe(2000);
  });
  it('detects every single-character change through the checksum', () => {
    const k = generateKey().secret;
    for (let i = 4; i < k.length; i++) {
      const c = k[i] === 'a' ? 'b' : 'a';
      const typo = k.slice(0, i) + c + k.slice(i + 1);
      expect(parseKey(typo)).toEqual({ ok: false, reason: 'checksum' });
    }
  });
  it('refuses malformed input', () => {
    const k = generateKey().secret;
    for (const bad of ['', 'enk_', k.slice(0, -1), k + 'x', k.replace('enk_', 'sk-_'), k.replace(/.$/, '!'), ` ${k}`, k.toUpperCase().replace('ENK_', 'enk_').slice(0, 10), 'enk_' + 'ä'.repeat(49)]) {
      expect(parseKey(bad).ok, bad).toBe(false);
    }
  });
});

describe('passwords', () => {
  it('hash and verify with scrypt; the stored form carries the cost', async () => {
    const h = await hashPassword('a long enough passphrase', 10);
    expect(h).toMatch(/^scrypt\$10\$8\$1\$/);
    expect(await verifyPassword('a long enough passphrase', h)).toBe(true);
    expect(await verifyPassword('a long enough passphrasE', h)).toBe(false);
    expect(await verifyPassword('x', null)).toBe(false);
    expect(await verifyPassword('x', 'scrypt$99$8$1$AAAA$BBBB')).toBe(false);
    expect(await verifyPassword('x', 'bcrypt$whatever')).toBe(false);
  });
  it('policy', () => {
    expect(checkPasswordPolicy('short')?.code).toBe('password_policy');
    expect(checkPasswordPolicy('aaaaaaaaaaaaaaa')?.message).toMatch(/different/);
    expect(checkPasswordPolicy('password1234')?.message).toMatch(/well-known/);
    expect(checkPasswordPolicy('someone@example.com', 'someone@example.com')?.message).toMatch(/e-mail/);
    expect(checkPasswordPolicy('x'.repeat(250) + 'abcdefg')?.message).toMatch(/at most/);
    expect(checkPasswordPolicy('correct horse battery staple', 'a@b.c')).toBeUndefined();
  });
});
