import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM for secrets at rest (provider keys, IdP client secrets).
 *
 * Ciphertext: `enc:v1:<kid>:<base64url(iv ‖ tag ‖ data)>`. The key id (first 8 bytes of
 * SHA-256 of the key, hex) lets a keyring hold the current key and older ones while a
 * rotation is under way, and tells the operator which key a value needs. The caller's
 * `aad` binds a ciphertext to where it is stored (table, column, row), so a value copied
 * into another row does not decrypt.
 */
export class SecretBox {
  readonly currentKid: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    if (current.length !== 32) throw new Error('master key must be 32 bytes');
    this.currentKid = keyId(current);
    this.keys.set(this.currentKid, current);
    for (const k of previous) {
      if (k.length !== 32) throw new Error('previous master key must be 32 bytes');
      if (!this.keys.has(keyId(k))) this.keys.set(keyId(k), k);
    }
  }

  encrypt(plaintext: string, aad: string): string {
    const key = this.keys.get(this.currentKid)!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `enc:v1:${this.currentKid}:${Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64url')}`;
  }

  decrypt(ciphertext: string, aad: string): string {
    const parts = ciphertext.split(':');
    if (parts.length !== 4 || parts[0] !== 'enc' || parts[1] !== 'v1') {
      throw new SecretError('not an Enclave ciphertext');
    }
    const kid = parts[2]!;
    const key = this.keys.get(kid);
    if (!key) throw new SecretError(`encrypted with master key ${kid}, which is not configured`);
    const raw = Buffer.from(parts[3]!, 'base64url');
    if (raw.length < 28) throw new SecretError('ciphertext is truncated');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError('ciphertext failed authentication (tampered, or stored under another row)');
    }
  }

  /**
   * A 32-byte key for one purpose, derived from the current master key (HMAC-SHA256 over the
   * label): e.g. the response cache's lookup keys, which must not be guessable from a prompt.
   */
  derive(label: string): Buffer {
    return createHmac('sha256', this.keys.get(this.currentKid)!).update(`enclave-derive:${label}`).digest();
  }

  /** The key id a ciphertext was made with, without decrypting it. */
  static kidOf(ciphertext: string): string | undefined {
    const parts = ciphertext.split(':');
    return parts.length === 4 && parts[0] === 'enc' ? parts[2] : undefined;
  }
}

export class SecretError extends Error {
  override readonly name = 'SecretError';
}

export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
