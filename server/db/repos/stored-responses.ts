import { and, eq, lt } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { storedResponses } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * Stored Responses-API conversations (tenant-owned `stored_responses`, server/gateway/faces/
 * response-store.ts seals and opens the content), on either dialect. Reads and deletes take
 * the context and apply its tenant and the owner; one statement crosses tenants, named here:
 * purgeExpired.
 */
export type StoredResponseRow = typeof storedResponses.$inferSelect;

export class StoredResponsesRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  async insert(ctx: RequestContext, row: Omit<StoredResponseRow, 'tenantId'>): Promise<void> {
    await this.data.storedResponses.insert(ctx, row);
  }

  get(ctx: RequestContext, id: string, ownerId: string): Promise<StoredResponseRow | undefined> {
    return this.data.storedResponses.get(ctx, (r) => and(eq(r.id, id), eq(r.ownerId, ownerId)));
  }

  remove(ctx: RequestContext, id: string, ownerId: string): Promise<number> {
    return this.data.storedResponses.delete(ctx, (r) => and(eq(r.id, id), eq(r.ownerId, ownerId)));
  }

  /** Every tenant's rows past their expiry (cross-tenant by design: retention). */
  purgeExpired(now: number): Promise<number> {
    const r = this.store.t.storedResponses;
    return this.store.run(this.store.q.delete(r).where(lt(r.expiresAt, now)));
  }
}
