import { eq } from 'drizzle-orm';
import type { Clock } from '../clock.js';
import type { Db } from '../db/connection.js';
import { settings } from '../db/schema.js';
import { secretAad } from '../db/secret-columns.js';
import type { SecretBox } from './secret-box.js';

export const SELFTEST_KEY = 'secrets.selftest';
const SELFTEST_VALUE = 'enclave-master-key-selftest';

/** Runtime settings stored in the database (plain JSON values, or encrypted secrets). */
export class RuntimeSettings {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly clock: Clock,
  ) {}

  get<T>(key: string): T | undefined {
    const row = this.db.select().from(settings).where(eq(settings.key, key)).get();
    if (!row) return undefined;
    if (row.secret) throw new Error(`setting ${key} is a secret; use getSecret`);
    return JSON.parse(row.value) as T;
  }

  set(key: string, value: unknown): void {
    this.write(key, JSON.stringify(value), false);
  }

  getSecret(key: string): string | undefined {
    const row = this.db.select().from(settings).where(eq(settings.key, key)).get();
    if (!row) return undefined;
    return this.box.decrypt(row.value, secretAad('settings', 'value', key));
  }

  setSecret(key: string, plaintext: string): void {
    this.write(key, this.box.encrypt(plaintext, secretAad('settings', 'value', key)), true);
  }

  private write(key: string, value: string, secret: boolean): void {
    const updatedAt = this.clock.now();
    this.db
      .insert(settings)
      .values({ key, value, secret, updatedAt })
      .onConflictDoUpdate({ target: settings.key, set: { value, secret, updatedAt } })
      .run();
  }

  /** Stores the self-test value on first start. */
  ensureSelfTest(): void {
    if (!this.db.select().from(settings).where(eq(settings.key, SELFTEST_KEY)).get()) {
      this.setSecret(SELFTEST_KEY, SELFTEST_VALUE);
    }
  }

  /**
   * Decrypts the self-test value: proves the configured master key is the one this
   * database's secrets were written with. Returns a reason when it is not.
   */
  checkSelfTest(): { ok: true } | { ok: false; reason: string } {
    try {
      const v = this.getSecret(SELFTEST_KEY);
      if (v === undefined) return { ok: false, reason: 'no self-test value stored yet (the server has not started on this database)' };
      return v === SELFTEST_VALUE ? { ok: true } : { ok: false, reason: 'self-test value decrypted to the wrong text' };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
  }
}
