import type { RequestContext } from '../context.js';
import type { PromptVersionView, PromptView } from '../contract.js';
import type { ChatFeaturesRepo, PromptRow, PromptVersionRow } from '../db/repos/chat-features.js';
import { AppError } from '../errors.js';
import type { Identity } from '../identity/index.js';
import { newId } from '../ids.js';

/**
 * The tenant's approved prompt library: tenant admins (settings:write) create prompts and edit
 * them, each edit a new version that records who wrote it and when (older versions are never
 * changed: the history is the governance record); members read the current versions and
 * insert one from the chat composer with `/`.
 */
function versionView(v: PromptVersionRow, names: (id: string) => string | null): PromptVersionView {
  return { object: 'prompt_version', version: v.version, title: v.title, body: v.body, author: { id: v.authorId, name: names(v.authorId) }, created_at: v.createdAt };
}
function promptView(p: PromptRow, current: PromptVersionRow, names: (id: string) => string | null): PromptView {
  return { object: 'prompt', id: p.id, version: p.version, title: current.title, body: current.body, updated_by: { id: current.authorId, name: names(current.authorId) }, created_at: p.createdAt, updated_at: p.updatedAt };
}

export class PromptService {
  constructor(
    private readonly repo: ChatFeaturesRepo,
    private readonly identity: Identity,
  ) {}

  /**
   * The display names of these author ids (null for non-users, e.g. an API key), looked up
   * once each. `Promise.resolve`: the identity lookup may be synchronous or async.
   */
  private async names(ids: string[]): Promise<(id: string) => string | null> {
    const out = new Map<string, string | null>();
    for (const id of new Set(ids)) {
      if (!id.startsWith('usr_')) continue;
      const u = await Promise.resolve(this.identity.users.byId(id));
      out.set(id, u ? u.name || u.email : null);
    }
    return (id) => out.get(id) ?? null;
  }

  /** Current versions, for anyone in the tenant who may chat (the composer's `/` picker) and for admins. */
  async list(ctx: RequestContext): Promise<PromptView[]> {
    if (!ctx.tenant) throw new AppError(403, 'tenant_required', 'Choose an organisation first.');
    const rows = await this.repo.prompts(ctx);
    const names = await this.names(rows.map((r) => r.current.authorId));
    return rows.map((r) => promptView(r.prompt, r.current, names));
  }

  /** A prompt with its whole history, newest first (admins). */
  async history(ctx: RequestContext, id: string): Promise<PromptView & { versions: PromptVersionView[] }> {
    await this.identity.access.require(ctx, 'settings:read', {}, { type: 'prompt', id });
    const p = await this.repo.prompt(ctx, id);
    if (!p) throw new AppError(404, 'not_found', 'Prompt not found.');
    const versions = await this.repo.versions(ctx, id);
    const names = await this.names(versions.map((v) => v.authorId));
    return { ...promptView(p, versions[0]!, names), versions: versions.map((v) => versionView(v, names)) };
  }

  async create(ctx: RequestContext, input: { title: string; body: string }): Promise<PromptView> {
    await this.identity.access.require(ctx, 'settings:write', {}, { type: 'prompt' });
    const clean = check(input);
    const now = ctx.clock.now();
    const id = newId('prm', now);
    await this.repo.writeVersion(ctx, { promptId: id, versionId: newId('prv', now), ...clean, authorId: ctx.principal?.id ?? 'unknown', now, create: true });
    await this.identity.audit.record(ctx, { action: 'prompt.create', target: { type: 'prompt', id }, details: { title: clean.title, version: 1 } });
    return this.current(ctx, id);
  }

  /** Writes a new version (the previous ones stay). */
  async edit(ctx: RequestContext, id: string, input: { title: string; body: string }): Promise<PromptView> {
    await this.identity.access.require(ctx, 'settings:write', {}, { type: 'prompt', id });
    const clean = check(input);
    const now = ctx.clock.now();
    const version = await this.repo.writeVersion(ctx, { promptId: id, versionId: newId('prv', now), ...clean, authorId: ctx.principal?.id ?? 'unknown', now, create: false });
    if (!version) throw new AppError(404, 'not_found', 'Prompt not found.');
    await this.identity.audit.record(ctx, { action: 'prompt.update', target: { type: 'prompt', id }, details: { title: clean.title, version } });
    return this.current(ctx, id);
  }

  async remove(ctx: RequestContext, id: string): Promise<void> {
    await this.identity.access.require(ctx, 'settings:write', {}, { type: 'prompt', id });
    if (!(await this.repo.deletePrompt(ctx, id))) throw new AppError(404, 'not_found', 'Prompt not found.');
    await this.identity.audit.record(ctx, { action: 'prompt.delete', target: { type: 'prompt', id } });
  }

  private async current(ctx: RequestContext, id: string): Promise<PromptView> {
    const found = (await this.repo.prompts(ctx)).find((r) => r.prompt.id === id);
    if (!found) throw new AppError(404, 'not_found', 'Prompt not found.');
    return promptView(found.prompt, found.current, await this.names([found.current.authorId]));
  }
}

function check(input: { title: string; body: string }): { title: string; body: string } {
  const title = input.title.trim();
  if (!title) throw new AppError(400, 'invalid_request', 'Give the prompt a title.', { param: 'title' });
  if (!input.body.trim()) throw new AppError(400, 'invalid_request', 'Write the prompt text.', { param: 'body' });
  return { title, body: input.body };
}
