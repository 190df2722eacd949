import type { Db } from '../connection.js';

/**
 * Usage records (tenant-owned) written in batches by server/metering/usage.ts. Each record
 * carries the tenant id the gateway took from the request context (requireTenant), so the
 * batch path writes exactly what the scoped path would. Reads go through
 * createTenantData().usageRecords.
 */
export interface UsageRow {
  id: string;
  tenantId: string;
  requestId: string;
  userId: string | null;
  keyId: string | null;
  workflow: string | null;
  endpoint: string;
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

export class UsageRepo {
  private readonly insert;
  private readonly many;
  private readonly sumSince;

  constructor(db: Db) {
    const c = db.$client;
    this.insert = c.prepare(
      `INSERT INTO usage_records (id, tenant_id, request_id, user_id, key_id, workflow, endpoint, alias, deployment_id, provider, model, boundary, classification, policy,
        prompt_tokens, completion_tokens, tokens_estimated, cost_micros, price_version, latency_ms, ttft_ms, stream, attempts, status, http_status, error_code, created_at)
       VALUES (@id, @tenantId, @requestId, @userId, @keyId, @workflow, @endpoint, @alias, @deploymentId, @provider, @model, @boundary, @classification, @policy,
        @promptTokens, @completionTokens, @tokensEstimated, @costMicros, @priceVersion, @latencyMs, @ttftMs, @stream, @attempts, @status, @httpStatus, @errorCode, @createdAt)`,
    );
    this.many = c.transaction((rows: UsageRow[]) => {
      for (const r of rows) this.insert.run({ ...r, priceVersion: r.priceVersion ?? null, tokensEstimated: r.tokensEstimated ? 1 : 0, stream: r.stream ? 1 : 0 });
    });
    this.sumSince = c.prepare('SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_records WHERE created_at >= ?').pluck();
  }

  insertMany(rows: UsageRow[]): void {
    if (rows.length) this.many(rows);
  }

  /** Installation-wide tokens since `since` (licence allowance). */
  tokensSince(since: number): number {
    return this.sumSince.get(since) as number;
  }
}
