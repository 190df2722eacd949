import { eq } from 'drizzle-orm';
import type { Clock } from '../clock.js';
import { secretAad } from '../db/secret-columns.js';
import type { Store } from '../db/store.js';
import type { SecretBox } from './secret-box.js';

export const SELFTEST_KEY = 'secrets.selftest';
const SELFTEST_VALUE = 'enclave-master-key-selftest';

/**
 * Runtime settings stored in the database (plain JSON values, or encrypted secrets), over the
 * async Store (issue 22), so they read the same on SQLite and PostgreSQL. Inside a `store.tx`
 * every read and write joins the transaction.
 */
export class RuntimeSettings {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly clock: Clock,
  ) {}

  private row(key: string) {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.settings).where(eq(t.settings.key, key)));
  }

  async get<T>(key: string): Promise<T | undefined> {
    const row = await this.row(key);
    if (!row) return undefined;
    if (row.secret) throw new Error(`setting ${key} is a secret; use getSecret`);
    return JSON.parse(row.value) as T;
  }

  set(key: string, value: unknown): Promise<void> {
    return this.write(key, JSON.stringify(value), false);
  }

  async getSecret(key: string): Promise<string | undefined> {
    const row = await this.row(key);
    if (!row) return undefined;
    return this.box.decrypt(row.value, secretAad('settings', 'value', key));
  }

  setSecret(key: string, plaintext: string): Promise<void> {
    return this.write(key, this.box.encrypt(plaintext, secretAad('settings', 'value', key)), true);
  }

  private async write(key: string, value: string, secret: boolean): Promise<void> {
    const { q, t } = this.store;
    const updatedAt = this.clock.now();
    await this.store.run(q.insert(t.settings).values({ key, value, secret, updatedAt }).onConflictDoUpdate({ target: t.settings.key, set: { value, secret, updatedAt } }));
  }

  /**
   * Stores the self-test value on first start. One statement (insert unless present), so
   * processes starting together never overwrite each other's value.
   */
  async ensureSelfTest(): Promise<void> {
    const { q, t } = this.store;
    const value = this.box.encrypt(SELFTEST_VALUE, secretAad('settings', 'value', SELFTEST_KEY));
    await this.store.run(q.insert(t.settings).values({ key: SELFTEST_KEY, value, secret: true, updatedAt: this.clock.now() }).onConflictDoNothing({ target: t.settings.key }));
  }

  /**
   * Decrypts the self-test value: proves the configured master key is the one this
   * database's secrets were written with. Returns a reason when it is not.
   */
  async checkSelfTest(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      const v = await this.getSecret(SELFTEST_KEY);
      if (v === undefined) return { ok: false, reason: 'no self-test value stored yet (the server has not started on this database)' };
      return v === SELFTEST_VALUE ? { ok: true } : { ok: false, reason: 'self-test value decrypted to the wrong text' };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
  }
}
