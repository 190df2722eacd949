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

export class UsageRepo {
  private readonly insert;
  private readonly many;
  private readonly sumSince;

  constructor(db: Db) {
    const c = db.$client;
    // Positional parameters: binding 27 named ones from a fresh object per row cost more
    // than SQLite's insert itself (this runs once per AI call).
    this.insert = c.prepare(
      `INSERT INTO usage_records (id, tenant_id, request_id, user_id, key_id, workflow, endpoint, api, alias, deployment_id, provider, model, boundary, classification, policy,
        prompt_tokens, completion_tokens, tokens_estimated, cost_micros, price_version, latency_ms, ttft_ms, stream, attempts, status, http_status, error_code, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.many = c.transaction((rows: UsageRow[]) => {
      for (const r of rows) {
        this.insert.run(
          r.id, r.tenantId, r.requestId, r.userId, r.keyId, r.workflow, r.endpoint, r.api ?? 'chat', r.alias, r.deploymentId, r.provider, r.model, r.boundary, r.classification, r.policy,
          r.promptTokens, r.completionTokens, r.tokensEstimated ? 1 : 0, r.costMicros, r.priceVersion ?? null, r.latencyMs, r.ttftMs, r.stream ? 1 : 0, r.attempts, r.status,
          r.httpStatus, r.errorCode, r.createdAt,
        );
      }
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
