import type { Clock } from '../clock.js';
import type { GroupBy, MeteringRepo, RollupGroupRow } from '../db/repos/metering.js';
import { monthById, monthWindow, tzOffset, type LimitName } from './limits.js';
import type { PlanService } from './plans.js';
import type { TeamsRepo } from '../db/repos/teams.js';
import type { TeamGrant } from '../context.js';

/** Usage reports from the rollups (kept when raw records are purged). */
export interface ReportQuery {
  readonly tenantId: string;
  /** YYYY-MM in the tenant's time zone; default: the current month. */
  readonly month?: string;
  readonly from?: number;
  readonly to?: number;
  /** `team`: usage_team_rollups (calls that counted against a team; server/teams). */
  readonly by?: GroupBy | 'team';
  readonly userId?: string;
  readonly keyId?: string;
  readonly model?: string;
}

export interface ReportRow {
  readonly group: string | null;
  readonly requests: number;
  readonly errors: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly cost_micros: number;
  /** by=team: the team's name (group is its id). */
  readonly label?: string;
}

export class Reports {
  constructor(
    private readonly repo: MeteringRepo,
    private readonly plans: PlanService,
    private readonly clock: Clock,
    /** Writes pending usage records first, so a report includes calls that just finished. */
    private readonly flush: () => Promise<void> | void = () => {},
    private readonly teams?: TeamsRepo,
  ) {}

  async report(q: ReportQuery) {
    await this.flush();
    const t = await this.plans.tenantFresh(q.tenantId);
    const tz = t?.timezone ?? 'UTC';
    const w = q.month ? monthById(q.month, tz) : monthWindow(this.clock.now(), tz);
    const from = q.from ?? w.start;
    const to = q.to ?? w.end;
    const by = q.by ?? 'none';
    if (by === 'team') return this.byTeam(q.tenantId, t?.slug ?? q.tenantId, q.month ?? w.id, tz, from, to);
    const rows = await this.repo.report({ tenantId: q.tenantId, from, to, by, ...(q.userId ? { userId: q.userId } : {}), ...(q.keyId ? { keyId: q.keyId } : {}), ...(q.model ? { model: q.model } : {}), tzOffsetMs: tzOffset(from, tz) });
    const out = rows.filter((r) => r.requests !== null).map(toRow);
    const total = out.reduce((a, r) => ({ requests: a.requests + r.requests, errors: a.errors + r.errors, prompt_tokens: a.prompt_tokens + r.prompt_tokens, completion_tokens: a.completion_tokens + r.completion_tokens, total_tokens: a.total_tokens + r.total_tokens, cost_micros: a.cost_micros + r.cost_micros }), {
      requests: 0,
      errors: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
      cost_micros: 0,
    });
    return { tenant: t?.slug ?? q.tenantId, month: q.month ?? w.id, timezone: tz, from: new Date(from).toISOString(), to: new Date(to).toISOString(), by, rows: out, total };
  }

  /** Usage grouped by team (the team of each call: its key's team, else its user's first team). */
  private async byTeam(tenantId: string, slug: string, month: string, tz: string, from: number, to: number) {
    const names = new Map((await (this.teams?.list(tenantId) ?? [])).map((t) => [t.id, t.name]));
    const rows: ReportRow[] = (await (this.teams?.report(tenantId, from, to) ?? [])).map((r) => ({
      group: r.group,
      label: names.get(r.group) ?? '(deleted team)',
      requests: r.requests,
      errors: r.errors,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      total_tokens: r.promptTokens + r.completionTokens,
      cost_micros: r.costMicros,
    }));
    const total = rows.reduce((a, r) => ({ requests: a.requests + r.requests, errors: a.errors + r.errors, prompt_tokens: a.prompt_tokens + r.prompt_tokens, completion_tokens: a.completion_tokens + r.completion_tokens, total_tokens: a.total_tokens + r.total_tokens, cost_micros: a.cost_micros + r.cost_micros }), {
      requests: 0,
      errors: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
      cost_micros: 0,
    });
    return { tenant: slug, month, timezone: tz, from: new Date(from).toISOString(), to: new Date(to).toISOString(), by: 'team' as const, rows, total };
  }

  /** A key's or user's own usage this month and what remains at every level (self-service). */
  async self(tenantId: string, subject: { userId?: string; keyId?: string; team?: TeamGrant }) {
    await this.flush();
    const t = await this.plans.tenantFresh(tenantId);
    const tz = t?.timezone ?? 'UTC';
    const w = monthWindow(this.clock.now(), tz);
    const levels: { level: string; team?: { id: string; name: string }; limits: Partial<Record<LimitName, number>>; used: { tokens: number; cost_micros: number; requests: number } }[] = [];
    const lim = (json: string | undefined) => (json ? JSON.parse(json) : {});
    if (subject.keyId) {
      const u = await this.repo.usageSince(tenantId, w.start, w.end, { type: 'key', id: subject.keyId });
      levels.push({ level: 'key', limits: lim(await this.repo.limits(tenantId, 'key', subject.keyId)), used: { tokens: u.tokens, cost_micros: u.cost, requests: u.requests } });
    }
    if (subject.userId) {
      const u = await this.repo.usageSince(tenantId, w.start, w.end, { type: 'user', id: subject.userId });
      levels.push({ level: 'user', limits: lim(await this.repo.limits(tenantId, 'user', subject.userId)), used: { tokens: u.tokens, cost_micros: u.cost, requests: u.requests } });
    }
    // The call's team (server/teams): its limits and what the whole team used this month.
    if (subject.team && this.teams) {
      const u = await this.teams.usageSince(tenantId, subject.team.id, w.start, w.end);
      const limits = Object.fromEntries(Object.entries(subject.team.limits ?? {}).filter(([, v]) => typeof v === 'number')) as Partial<Record<LimitName, number>>;
      levels.push({ level: 'team', team: { id: subject.team.id, name: subject.team.name }, limits, used: { tokens: u.tokens, cost_micros: u.cost, requests: u.requests } });
    }
    const tu = await this.repo.usageSince(tenantId, w.start, w.end);
    levels.push({ level: 'tenant', limits: Object.fromEntries(Object.entries(t?.plan.limits ?? {}).filter(([, v]) => typeof v === 'number')), used: { tokens: tu.tokens, cost_micros: tu.cost, requests: tu.requests } });
    const remaining = (name: 'monthly_tokens' | 'monthly_cost_micros', used: 'tokens' | 'cost_micros'): number | null => {
      let r: number | null = null;
      for (const l of levels) {
        const v = l.limits[name];
        if (typeof v === 'number') r = Math.min(r ?? Infinity, Math.max(0, v - l.used[used]));
      }
      return r;
    };
    const own = levels[0]!;
    const byModel = await this.repo.report({ tenantId, from: w.start, to: w.end, by: 'model', ...(subject.keyId ? { keyId: subject.keyId } : subject.userId ? { userId: subject.userId } : {}) });
    return {
      object: 'enclave.usage',
      month: w.id,
      timezone: tz,
      resets_at: new Date(w.end).toISOString(),
      plan: t?.plan.name ?? null,
      usage: own.used,
      remaining: { monthly_tokens: remaining('monthly_tokens', 'tokens'), monthly_cost_micros: remaining('monthly_cost_micros', 'cost_micros') },
      levels,
      by_model: byModel.map(toRow),
    };
  }
}

function toRow(r: RollupGroupRow): ReportRow {
  return {
    group: r.group,
    requests: r.requests ?? 0,
    errors: r.errors ?? 0,
    prompt_tokens: r.promptTokens ?? 0,
    completion_tokens: r.completionTokens ?? 0,
    total_tokens: (r.promptTokens ?? 0) + (r.completionTokens ?? 0),
    cost_micros: r.costMicros ?? 0,
  };
}

export function toCsv(rows: readonly ReportRow[], groupName: string): string {
  const esc = (v: unknown): string => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const head = [groupName, 'requests', 'errors', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'cost_micros'];
  return [head.join(','), ...rows.map((r) => [r.group, r.requests, r.errors, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost_micros].map(esc).join(','))].join('\n') + '\n';
}
