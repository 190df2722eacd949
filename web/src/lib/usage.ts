/** Usage report rows (server/metering/reports.ts ReportRow) and the daily series the charts draw. */
export interface UsageRow {
  group: string | null;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_micros: number;
}

export interface DailySeries {
  /** Unix seconds (UTC midnight of each day). */
  x: number[];
  days: string[];
  requests: number[];
  errors: number[];
  tokens: number[];
  /** In currency units (not micros). */
  cost: number[];
}

/**
 * Every day of `month` (YYYY-MM) up to today (or the month's last day), with the rows grouped
 * by day (`group` = YYYY-MM-DD) filled in and the days without usage at zero.
 */
export function dailySeries(month: string, rows: readonly UsageRow[], now = new Date()): DailySeries {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
  const current = now.getUTCFullYear() === y && now.getUTCMonth() + 1 === m;
  const upTo = current ? now.getUTCDate() : last;
  const byDay = new Map(rows.filter((r) => r.group).map((r) => [r.group!, r]));
  const out: DailySeries = { x: [], days: [], requests: [], errors: [], tokens: [], cost: [] };
  for (let d = 1; d <= Math.max(upTo, 1); d++) {
    const day = `${month}-${String(d).padStart(2, '0')}`;
    const r = byDay.get(day);
    out.x.push(Date.UTC(y, m - 1, d) / 1000);
    out.days.push(day);
    out.requests.push(r?.requests ?? 0);
    out.errors.push(r?.errors ?? 0);
    out.tokens.push(r?.total_tokens ?? 0);
    out.cost.push((r?.cost_micros ?? 0) / 1_000_000);
  }
  return out;
}

export function sumRows(rows: readonly UsageRow[]): Omit<UsageRow, 'group'> {
  return rows.reduce(
    (a, r) => ({
      requests: a.requests + r.requests,
      errors: a.errors + r.errors,
      prompt_tokens: a.prompt_tokens + r.prompt_tokens,
      completion_tokens: a.completion_tokens + r.completion_tokens,
      total_tokens: a.total_tokens + r.total_tokens,
      cost_micros: a.cost_micros + r.cost_micros,
    }),
    { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_micros: 0 },
  );
}
