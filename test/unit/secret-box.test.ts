import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyId, SecretBox, SecretError } from '../../server/config/secret-box.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

describe('SecretBox (AES-256-GCM at rest)', () => {
  it('round-trips and never repeats a ciphertext', () => {
    const box = new SecretBox(k1);
    const a = box.encrypt('sk-provider-key', 'providers.api_key:prv_1');
    const b = box.encrypt('sk-provider-key', 'providers.api_key:prv_1');
    expect(a).not.toBe(b);
    expect(a).not.toContain('sk-provider-key');
    expect(a.startsWith(`enc:v1:${keyId(k1)}:`)).toBe(true);
    expect(box.decrypt(a, 'providers.api_key:prv_1')).toBe('sk-provider-key');
  });

  it('refuses a ciphertext moved to another row (AAD)', () => {
    const box = new SecretBox(k1);
    const c = box.encrypt('s', 'settings.value:a');
    expect(() => box.decrypt(c, 'settings.value:b')).toThrow(SecretError);
  });

  it('refuses every flipped byte', () => {
    const box = new SecretBox(k1);
    const c = box.encrypt('secret value', 'aad');
    const prefix = c.slice(0, c.lastIndexOf(':') + 1);
    const raw = Buffer.from(c.slice(prefix.length), 'base64url');
    for (let i = 0; i < raw.length; i++) {
      const t = Buffer.from(raw);
      t[i] = t[i]! ^ 0x01;
      expect(() => box.decrypt(prefix + t.toString('base64url'), 'aad')).toThrow(SecretError);
    }
  });

  it('names the missing key when a ciphertext was made with another key', () => {
    const c = new SecretBox(k2).encrypt('x', 'aad');
    expect(() => new SecretBox(k1).decrypt(c, 'aad')).toThrow(`encrypted with master key ${keyId(k2)}, which is not configured`);
  });

  it('decrypts with previous keys during a rotation and encrypts with the current one', () => {
    const old = new SecretBox(k1).encrypt('x', 'aad');
    const box = new SecretBox(k2, [k1]);
    expect(box.decrypt(old, 'aad')).toBe('x');
    expect(SecretBox.kidOf(box.encrypt('x', 'aad'))).toBe(keyId(k2));
  });

  it('refuses garbage and truncated input', () => {
    const box = new SecretBox(k1);
    expect(() => box.decrypt('plain text', 'aad')).toThrow('not an Enclave ciphertext');
    expect(() => box.decrypt(`enc:v1:${keyId(k1)}:AAAA`, 'aad')).toThrow('truncated');
    expect(() => new SecretBox(Buffer.alloc(16))).toThrow('32 bytes');
  });
});
