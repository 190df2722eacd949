import type { Clock } from '../../clock.js';
import type { SecretBox } from '../../config/secret-box.js';
import type { RequestContext } from '../../context.js';
import { StoredResponsesRepo } from '../../db/repos/stored-responses.js';
import { secretAad } from '../../db/secret-columns.js';
import type { Store } from '../../db/store.js';
import type { TenantStore } from '../../db/tenant-store.js';
import { AppError } from '../../errors.js';

/**
 * `store: true` responses of the Responses face: the conversation so far (chat-form messages,
 * the answer included) and the Response object, sealed with the master key like call
 * contents, per tenant and owner (the key, or the signed-in user). Another owner's or another
 * tenant's id is "not found". Kept for RETENTION_MS; expired rows go on the next write.
 */
const TABLE = 'stored_responses';
const RETENTION_MS = 30 * 24 * 3600_000;

export interface StoredResponse {
  // Chat-form messages and the Response object as JSON.
  readonly messages: any[];
  readonly response: Record<string, unknown>;
}

export class ResponseStore {
  private readonly repo: StoredResponsesRepo;

  constructor(private readonly d: { store: Store; tenantStore: TenantStore; secrets: SecretBox; clock: Clock }) {
    this.repo = new StoredResponsesRepo(d.store, d.tenantStore);
  }

  private owner(ctx: RequestContext): string {
    const p = ctx.principal;
    const id = p?.keyId ?? p?.userId;
    if (!id) throw new AppError(401, 'auth_required', 'Stored responses need an authenticated caller.');
    return id;
  }

  async save(ctx: RequestContext, id: string, model: string, doc: StoredResponse): Promise<void> {
    const now = this.d.clock.now();
    await this.repo.purgeExpired(now);
    const content = this.d.secrets.encrypt(JSON.stringify(doc), secretAad(TABLE, 'content', id));
    await this.repo.insert(ctx, { id, ownerId: this.owner(ctx), model, content, createdAt: now, expiresAt: now + RETENTION_MS });
  }

  async get(ctx: RequestContext, id: string, param = 'id'): Promise<StoredResponse> {
    const r = await this.repo.get(ctx, id, this.owner(ctx));
    if (!r || r.expiresAt <= this.d.clock.now()) throw new AppError(404, 'response_not_found', `Response ${id} not found.`, { param });
    return JSON.parse(this.d.secrets.decrypt(r.content, secretAad(TABLE, 'content', r.id))) as StoredResponse;
  }

  async remove(ctx: RequestContext, id: string): Promise<void> {
    const n = await this.repo.remove(ctx, id, this.owner(ctx));
    if (!n) throw new AppError(404, 'response_not_found', `Response ${id} not found.`, { param: 'id' });
  }
}
