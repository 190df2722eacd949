import { gte, sum } from 'drizzle-orm';
import type { PreparedInsert, Store } from '../store.js';

/**
 * Usage records (tenant-owned) written in batches by server/metering/usage.ts. Each record
 * carries the tenant id the gateway took from the request context (requireTenant), so the
 * batch path writes exactly what the scoped path would. Reads go through the tenant store
 * (tenantStore.usageRecords) or the rollups (server/db/repos/metering.ts).
 */
export interface UsageRow {
  id: string;
  tenantId: string;
  requestId: string;
  userId: string | null;
  keyId: string | null;
  /** The team the call counted against (server/teams); absent = none. */
  teamId?: string | null;
  workflow: string | null;
  endpoint: string;
  /** The face the call came through (chat, responses, messages, ollama, batch); absent = chat. */
  api?: string;
  alias: string | null;
  deploymentId: string | null;
  provider: string | null;
  model: string | null;
  boundary: string | null;
  classification: string | null;
  policy: string;
  promptTokens: number;
  completionTokens: number;
  tokensEstimated: boolean;
  costMicros: number;
  /** The price version the cost was computed with (metering fills it); null = no price. */
  priceVersion?: number | null;
  latencyMs: number;
  ttftMs: number | null;
  stream: boolean;
  attempts: number;
  status: string;
  httpStatus: number;
  errorCode: string | null;
  createdAt: number;
  /** Response cache verdict (hit, miss, bypass); absent = the cache was off. */
  cache?: string | null;
  /** A cache hit: the cost of the call whose answer it served. */
  savedCostMicros?: number;
}

export class UsageRepo {
  /** The usage insert, prepared once (server/db/store.ts prepareInsert): the hottest write there is, one row per AI call. */
  private readonly insert: PreparedInsert<UsageRow>;

  constructor(private readonly store: Store) {
    // asyncCommit: a killed replica loses no record (each answer waits for its record's write),
    // without a disk flush per call on PostgreSQL (Store.prepareInsert says what it risks).
    this.insert = store.prepareInsert<UsageRow>(store.t.usageRecords, 'usage_records', { asyncCommit: true });
  }

  /**
   * Writes the rows in one transaction through the prepared insert (SQLite: one reused
   * statement per row; PostgreSQL: one statement with an array per column, any number of rows):
   * the rollup trigger (SQLite: migrations/0006; PostgreSQL: migrations-pg/0001) adds each row
   * to its hour in the same transaction, so rollups never disagree with the raw records.
   * `api` absent = chat, `priceVersion` absent = null (the columns' meaning, set here so both
   * dialects store the same).
   */
  insertMany(rows: readonly UsageRow[]): Promise<void> {
    if (!rows.length) return Promise.resolve();
    return this.insert.run(rows.map((r) => (r.api === undefined || r.priceVersion === undefined ? { ...r, api: r.api ?? 'chat', priceVersion: r.priceVersion ?? null } : r)));
  }

  /** Installation-wide tokens since `since` (licence allowance); cross-tenant by design. */
  async tokensSince(since: number): Promise<number> {
    const u = this.store.t.usageRecords;
    const row = await this.store.one(this.store.q.select({ p: sum(u.promptTokens), c: sum(u.completionTokens) }).from(u).where(gte(u.createdAt, since)));
    return Number(row?.p ?? 0) + Number(row?.c ?? 0);
  }
}
