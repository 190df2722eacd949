import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';

/**
 * Gateway refusals that indicate misuse (a 403: a data-boundary or content-rule refusal, a
 * key or role not allowed to use a model) become `gateway.refused` entries with outcome
 * `denied` in the tenant's audit log — what the console's "Denied actions (24 h)" counts —
 * in addition to the call's usage record (which always carries the refusal code).
 *
 * The audit log is hash-chained and append-only, so it must not be floodable by a key in a
 * loop: per (tenant, actor, code) at most one entry per window, and at most `perTenant`
 * entries per tenant per window; the repeats are still in the usage records (every refusal
 * has one), so nothing is lost, only not written twice into the chain. Quota and rate-limit refusals (429) and malformed requests (400) are
 * not misuse and stay in the usage records only.
 */
export class RefusalAudit {
  private windowStart = 0;
  private readonly seen = new Set<string>();
  private readonly tenantCount = new Map<string, number>();

  constructor(
    private readonly audit: AuditLog,
    private readonly clock: Clock,
    private readonly windowMs = 60_000,
    private readonly perTenant = 10,
    /** Keys remembered per window (a bound on memory, whatever the callers do). */
    private readonly maxKeys = 10_000,
  ) {}

  /** Whether a refusal with this status and code is recorded as a denied action. */
  static indicatesMisuse(status: number): boolean {
    return status === 403;
  }

  async record(ctx: RequestContext, code: string, facts: { readonly model: string | null; readonly classification: string | null; readonly api: string }): Promise<void> {
    const tenant = ctx.tenant?.id;
    if (!tenant) return;
    const now = this.clock.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.seen.clear();
      this.tenantCount.clear();
    }
    const actor = ctx.principal?.id ?? 'anonymous';
    const key = `${tenant}\u0000${actor}\u0000${code}`;
    if (this.seen.has(key)) return;
    const n = this.tenantCount.get(tenant) ?? 0;
    if (n >= this.perTenant || this.seen.size >= this.maxKeys) return;
    this.tenantCount.set(tenant, n + 1);
    this.seen.add(key);
    await this.audit.record(ctx, {
      action: 'gateway.refused',
      outcome: 'denied',
      reason: code,
      target: { type: 'model', id: facts.model ? facts.model.slice(0, 100) : null },
      // Facts only, never the request's content. Later refusals of this window are not written.
      details: { api: facts.api, classification: facts.classification, window_s: Math.round(this.windowMs / 1000) },
    });
  }
}
