import { and, eq, lt } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { storedResponses } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * Stored Responses-API conversations (tenant-owned `stored_responses`, server/gateway/faces/
 * response-store.ts seals and opens the content). Reads and deletes take the context and apply
 * its tenant and the owner; one statement crosses tenants, named here: purgeExpired.
 */
export type StoredResponseRow = typeof storedResponses.$inferSelect;

export class StoredResponsesRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  insert(ctx: RequestContext, row: Omit<StoredResponseRow, 'tenantId'>): void {
    this.data.storedResponses.insert(ctx, row);
  }

  get(ctx: RequestContext, id: string, ownerId: string): StoredResponseRow | undefined {
    return this.data.storedResponses.get(ctx, and(eq(storedResponses.id, id), eq(storedResponses.ownerId, ownerId))!);
  }

  remove(ctx: RequestContext, id: string, ownerId: string): number {
    return this.data.storedResponses.delete(ctx, and(eq(storedResponses.id, id), eq(storedResponses.ownerId, ownerId))!);
  }

  /** Every tenant's rows past their expiry (cross-tenant by design: retention). */
  purgeExpired(now: number): number {
    return this.db.delete(storedResponses).where(lt(storedResponses.expiresAt, now)).run().changes;
  }
}
