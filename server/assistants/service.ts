import type { RequestContext } from '../context.js';
import { CLASSIFICATIONS, type AssistantView, type Classification } from '../contract.js';
import type { AssistantRow, ChatFeaturesRepo } from '../db/repos/chat-features.js';
import { AppError } from '../errors.js';
import type { Identity } from '../identity/index.js';
import { newId } from '../ids.js';

/**
 * Assistants (presets) of the chat: shared ones per tenant (tenant admins: settings:write)
 * and private ones per user. The model and classification are only what the chat
 * preselects; every call still goes through the gateway, which decides (a preset's model the
 * user may not use is refused, its classification never goes below the tenant's floor, and
 * its own classification is a floor of the conversation: see chatClassification).
 */
export interface AssistantInput {
  name: string;
  description?: string | undefined;
  instructions: string;
  model?: string | null | undefined;
  classification?: Classification | null | undefined;
  starters?: string[] | undefined;
}

export function serializeAssistant(a: AssistantRow): AssistantView {
  return {
    object: 'assistant',
    id: a.id,
    scope: a.ownerUserId ? 'private' : 'tenant',
    name: a.name,
    description: a.description,
    instructions: a.instructions,
    model: a.model,
    classification: a.classification as Classification | null,
    starters: parseStarters(a.starters),
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}
function parseStarters(json: string): string[] {
  try {
    const v = JSON.parse(json) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

const RANK = Object.fromEntries(CLASSIFICATIONS.map((c, i) => [c, i])) as Record<Classification, number>;
/** The stricter of two classifications. */
export function stricter(a: Classification, b: Classification): Classification {
  return RANK[a] >= RANK[b] ? a : b;
}

export class AssistantService {
  constructor(
    private readonly repo: ChatFeaturesRepo,
    private readonly identity: Identity,
    /** The models the caller may use (the gateway's list for ctx); a preset must name one of them. */
    private readonly models: (ctx: RequestContext) => Promise<string[]>,
  ) {}

  private userOf(ctx: RequestContext): string {
    const u = ctx.principal?.userId;
    if (!u || ctx.principal?.kind !== 'user') throw new AppError(401, 'auth_required', 'Sign in to use assistants.');
    if (!ctx.tenant) throw new AppError(403, 'tenant_required', 'Choose an organisation first.');
    return u;
  }

  /** What the caller may pick: the tenant's shared assistants and their own private ones. */
  async listVisible(ctx: RequestContext): Promise<AssistantView[]> {
    return (await this.repo.assistants(ctx, this.userOf(ctx))).map(serializeAssistant);
  }
  /** An assistant the caller may use (shared, or their own); another user's private one is not found. */
  async visible(ctx: RequestContext, id: string): Promise<AssistantRow> {
    const userId = this.userOf(ctx);
    const a = await this.repo.assistant(ctx, id);
    if (!a || (a.ownerUserId !== null && a.ownerUserId !== userId)) throw new AppError(404, 'not_found', 'Assistant not found.', { param: 'assistant_id' });
    return a;
  }

  /** Tenant-shared assistants (admin console). */
  async listShared(ctx: RequestContext): Promise<AssistantView[]> {
    await this.identity.access.require(ctx, 'settings:read', {}, { type: 'assistant' });
    return (await this.repo.assistants(ctx, null)).map(serializeAssistant);
  }

  async create(ctx: RequestContext, input: AssistantInput, scope: 'tenant' | 'private'): Promise<AssistantView> {
    let owner: string | null = null;
    if (scope === 'tenant') await this.identity.access.require(ctx, 'settings:write', {}, { type: 'assistant' });
    else {
      owner = this.userOf(ctx);
      await this.identity.access.require(ctx, 'models:invoke', {}, { type: 'assistant' });
    }
    const clean = await this.check(ctx, input);
    const now = ctx.clock.now();
    const row = await this.repo.insertAssistant(ctx, {
      id: newId('ast', now),
      ownerUserId: owner,
      name: clean.name,
      description: clean.description ?? '',
      instructions: clean.instructions,
      model: clean.model ?? null,
      classification: clean.classification ?? null,
      starters: JSON.stringify(clean.starters ?? []),
      createdBy: ctx.principal?.id ?? 'unknown',
      createdAt: now,
      updatedAt: now,
    });
    if (scope === 'tenant') await this.identity.audit.record(ctx, { action: 'assistant.create', target: { type: 'assistant', id: row.id }, details: { name: row.name, model: row.model, classification: row.classification } });
    return serializeAssistant(row);
  }

  async update(ctx: RequestContext, id: string, input: Partial<AssistantInput>, scope: 'tenant' | 'private'): Promise<AssistantView> {
    const a = await this.owned(ctx, id, scope);
    const clean = await this.check(ctx, { name: a.name, instructions: a.instructions, ...input });
    const patch: Parameters<ChatFeaturesRepo['updateAssistant']>[2] = { updatedAt: ctx.clock.now() };
    if (input.name !== undefined) patch.name = clean.name;
    if (input.description !== undefined) patch.description = clean.description ?? '';
    if (input.instructions !== undefined) patch.instructions = clean.instructions;
    if (input.model !== undefined) patch.model = clean.model ?? null;
    if (input.classification !== undefined) patch.classification = clean.classification ?? null;
    if (input.starters !== undefined) patch.starters = JSON.stringify(clean.starters ?? []);
    await this.repo.updateAssistant(ctx, id, patch);
    if (scope === 'tenant') await this.identity.audit.record(ctx, { action: 'assistant.update', target: { type: 'assistant', id }, details: { fields: Object.keys(input) } });
    return serializeAssistant((await this.repo.assistant(ctx, id))!);
  }

  async remove(ctx: RequestContext, id: string, scope: 'tenant' | 'private'): Promise<void> {
    await this.owned(ctx, id, scope);
    await this.repo.deleteAssistant(ctx, id);
    if (scope === 'tenant') await this.identity.audit.record(ctx, { action: 'assistant.delete', target: { type: 'assistant', id } });
  }

  /** A shared assistant (for tenant admins) or the caller's own private one; anything else is not found. */
  private async owned(ctx: RequestContext, id: string, scope: 'tenant' | 'private'): Promise<AssistantRow> {
    if (scope === 'tenant') await this.identity.access.require(ctx, 'settings:write', {}, { type: 'assistant', id });
    const user = scope === 'private' ? this.userOf(ctx) : null;
    const a = await this.repo.assistant(ctx, id);
    if (!a || a.ownerUserId !== user) throw new AppError(404, 'not_found', 'Assistant not found.');
    return a;
  }

  /** Trims and checks an assistant; its model must be one the author may use now. */
  private async check(ctx: RequestContext, input: AssistantInput): Promise<AssistantInput> {
    const name = input.name.trim();
    if (!name) throw new AppError(400, 'invalid_request', 'Give the assistant a name.', { param: 'name' });
    const instructions = input.instructions.trim();
    if (!instructions) throw new AppError(400, 'invalid_request', 'Write the instructions (what the assistant should do).', { param: 'instructions' });
    const starters = input.starters?.map((s) => s.trim()).filter(Boolean);
    if (input.model) {
      const allowed = await this.models(ctx);
      if (!allowed.includes(input.model)) throw new AppError(400, 'invalid_request', `The model ${input.model} is not available to you; pick one of: ${allowed.join(', ') || '(none)'}.`, { param: 'model' });
    }
    return { ...input, name, instructions, ...(input.description !== undefined ? { description: input.description.trim() } : {}), ...(starters ? { starters } : {}) };
  }
}
