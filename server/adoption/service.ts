import type { RequestContext } from '../context.js';
import type { AdoptionView } from '../contract.js';
import type { AdoptionRepo } from '../db/repos/adoption.js';
import type { Identity } from '../identity/index.js';
import { tzOffset } from '../metering/limits.js';

const DAY = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** The Monday (YYYY-MM-DD) of the week of a YYYY-MM-DD day. */
function mondayOf(day: string): string {
  const d = new Date(`${day}T00:00:00Z`);
  return isoDay(d.getTime() - ((d.getUTCDay() + 6) % 7) * DAY);
}

/**
 * The adoption view of usage analytics: active people per day and per week over the last
 * `days` days (days and weeks in the tenant's time zone; days without use are 0, so a chart's
 * axis is right), the people active in the whole period and their share of the members.
 */
export class AdoptionService {
  constructor(
    private readonly repo: AdoptionRepo,
    private readonly identity: Identity,
    private readonly timezone: (tenantId: string) => string,
    /** Writes pending usage records first, so a call that just finished counts. */
    private readonly flush: () => void | Promise<void>,
  ) {}

  async view(ctx: RequestContext, days: number): Promise<AdoptionView> {
    await this.identity.access.require(ctx, 'usage:read', {}, { type: 'usage' });
    await this.flush();
    const tz = this.timezone(ctx.tenant!.id);
    const to = ctx.clock.now();
    const off = tzOffset(to, tz);
    // From the start of the tenant's day `days - 1` days ago.
    const todayStart = Math.floor((to + off) / DAY) * DAY - off;
    const from = todayStart - (days - 1) * DAY;
    const byDay = new Map((await this.repo.activeByDay(ctx, from, to, off)).map((r) => [r.day, Number(r.users)]));
    const byWeek = new Map((await this.repo.activeByWeek(ctx, from, to, off)).map((r) => [r.week, Number(r.users)]));
    const members = await this.repo.members(ctx);
    const active = await this.repo.activeIn(ctx, from, to);
    const share = (n: number) => (members ? Math.round((1000 * n) / members) / 1000 : 0);
    const dayList: AdoptionView['days'] = [];
    const weeks = new Set<string>();
    for (let i = 0; i < days; i++) {
      const day = isoDay(from + off + i * DAY);
      const users = byDay.get(day) ?? 0;
      dayList.push({ day, active_users: users, share: share(users) });
      weeks.add(mondayOf(day));
    }
    return {
      object: 'adoption',
      timezone: tz,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      members,
      active_users: active,
      share: share(active),
      days: dayList,
      weeks: [...weeks].map((week) => ({ week, active_users: byWeek.get(week) ?? 0, share: share(byWeek.get(week) ?? 0) })),
    };
  }
}
