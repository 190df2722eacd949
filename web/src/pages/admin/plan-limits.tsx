
import { formatCost, formatNumber } from '../../components/ui.js';

export interface Plan {
  name: string;
  description: string;
  capabilities: string[];
  limits: Partial<Record<LimitName, number>>;
  allowed_models: string[] | null;
}
export interface TenantLimits {
  plan: Plan;
  timezone: string;
  overrides: { subject_type: 'user' | 'key'; subject_id: string; limits: Partial<Record<LimitName, number>>; updated_at: number }[];
}
export interface Tenant {
  id: string;
  slug: string;
  name: string;
  plan: string | null;
}

export type LimitName = 'monthly_tokens' | 'monthly_cost_micros' | 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests' | 'max_keys' | 'max_active_jobs';
export const LIMITS: { name: LimitName; label: string; cost?: boolean }[] = [
  { name: 'monthly_tokens', label: 'Tokens per month' },
  { name: 'monthly_cost_micros', label: 'Cost per month ($)', cost: true },
  { name: 'requests_per_minute', label: 'Requests per minute' },
  { name: 'tokens_per_minute', label: 'Tokens per minute' },
  { name: 'concurrent_requests', label: 'Concurrent requests' },
  { name: 'max_keys', label: 'API keys' },
  { name: 'max_active_jobs', label: 'Active batch jobs' },
];
export const CAPABILITIES: { name: string; label: string }[] = [
  { name: 'cloud_providers', label: 'Cloud providers' },
  { name: 'batch_api', label: 'Batch API' },
  { name: 'content_logging', label: 'Content logging' },
  { name: 'self_service_keys', label: 'Self-service API keys' },
  { name: 'custom_providers', label: 'Custom providers' },
];

export function limitText(l: Partial<Record<LimitName, number>>): string {
  const parts = LIMITS.filter((x) => typeof l[x.name] === 'number').map((x) => `${x.label}: ${x.cost ? formatCost(l[x.name]) : formatNumber(l[x.name])}`);
  return parts.length ? parts.join(' · ') : 'No limits';
}

/** Form values (strings; empty = no limit) ↔ the API's limits (cost in micro-units). */
export type LimitForm = Record<LimitName, string>;
export const emptyLimits = (): LimitForm => Object.fromEntries(LIMITS.map((l) => [l.name, ''])) as LimitForm;
export function toForm(l: Partial<Record<LimitName, number>>): LimitForm {
  const f = emptyLimits();
  for (const x of LIMITS) {
    const v = l[x.name];
    if (typeof v === 'number') f[x.name] = x.cost ? String(v / 1_000_000) : String(v);
  }
  return f;
}
export function fromForm(f: LimitForm): Partial<Record<LimitName, number | null>> {
  const out: Partial<Record<LimitName, number | null>> = {};
  for (const x of LIMITS) {
    const s = f[x.name].trim();
    out[x.name] = s === '' ? null : x.cost ? Math.round(Number(s) * 1_000_000) : Math.round(Number(s));
  }
  return out;
}

export function LimitFields({ value, onChange, idPrefix }: { value: LimitForm; onChange: (f: LimitForm) => void; idPrefix: string }) {
  return (
    <fieldset className="scopes limit-fields">
      <legend>Limits (empty = no limit)</legend>
      <div className="form-row">
        {LIMITS.map((l) => (
          <label className="field" key={l.name} htmlFor={`${idPrefix}-${l.name}`}>
            <span>{l.label}</span>
            <input
              id={`${idPrefix}-${l.name}`}
              type="number"
              min={0}
              step={l.cost ? 0.01 : 1}
              inputMode={l.cost ? 'decimal' : 'numeric'}
              value={value[l.name]}
              onChange={(e) => onChange({ ...value, [l.name]: e.target.value })}
            />
          </label>
        ))}
      </div>
    </fieldset>
  );
}
