import { gte, sum } from 'drizzle-orm';
import type { Store } from '../store.js';

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
}

/**
 * Rows per INSERT statement. SQLite binds at most 32766 parameters per statement and
 * PostgreSQL 65535; 28 columns × 500 rows stays below both.
 */
const ROWS_PER_STATEMENT = 500;

export class UsageRepo {
  constructor(private readonly store: Store) {}

  /**
   * Writes the rows with one multi-row INSERT (per 500 rows) in one transaction: the rollup
   * trigger (SQLite: migrations/0006; PostgreSQL: migrations-pg/0001) adds each row to its
   * hour in the same transaction, so rollups never disagree with the raw records.
   */
  async insertMany(rows: readonly UsageRow[]): Promise<void> {
    if (!rows.length) return;
    const { q, t } = this.store;
    const values = rows.map((r) => ({ ...r, api: r.api ?? 'chat', priceVersion: r.priceVersion ?? null }));
    if (values.length <= ROWS_PER_STATEMENT) {
      await this.store.run(q.insert(t.usageRecords).values(values));
      return;
    }
    await this.store.tx(async () => {
      for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
        await this.store.run(this.store.q.insert(t.usageRecords).values(values.slice(i, i + ROWS_PER_STATEMENT)));
      }
    });
  }

  /** Installation-wide tokens since `since` (licence allowance); cross-tenant by design. */
  async tokensSince(since: number): Promise<number> {
    const u = this.store.t.usageRecords;
    const row = await this.store.one(this.store.q.select({ p: sum(u.promptTokens), c: sum(u.completionTokens) }).from(u).where(gte(u.createdAt, since)));
    return Number(row?.p ?? 0) + Number(row?.c ?? 0);
  }
}
