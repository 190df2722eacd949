import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { api } from '../../api.js';
import { ErrorNote, Note, Spinner } from '../../components/ui.js';
import { tenantPath, useAction, useLoad } from './common.js';

/** GET /api/ui/metering (server/web/ui-routes.ts). */
interface MeteringView {
  tenant_id: string;
  timezone: string;
  alert_thresholds: number[];
  raw_retention_days: number | null;
  webhook_url: string | null;
  webhook_secret_set: boolean;
  can_write: boolean;
}
/** PUT /admin/api/tenants/:id/metering (server/metering/routes.ts). */
interface MeteringSaved {
  timezone: string;
  raw_retention_days: number | null;
  alert_thresholds: number[];
  webhook_url: string | null;
  webhook_secret?: string;
}

function timeZones(): string[] {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
}

/** "80, 100" → [80, 100]; null when something is not a whole percentage of 1–1000. */
function parseThresholds(v: string): number[] | null {
  const parts = v
    .split(/[,\s]+/)
    .map((s) => s.replace(/%$/, '').trim())
    .filter(Boolean);
  const out = parts.map(Number);
  if (out.some((n) => !Number.isInteger(n) || n < 1 || n > 1000) || out.length > 10) return null;
  return [...new Set(out)].sort((a, b) => a - b);
}

/**
 * The tenant's metering settings (owners/admins): the time zone its months and days are
 * counted in, the soft-limit alert thresholds, how long raw usage records are kept, and the
 * webhook that receives soft-limit alerts. The webhook's signing secret (`whsec_…`) is shown
 * once, when the server issues it (first URL, or Rotate); it is never readable again.
 */
export function MeteringSettings() {
  const current = useLoad(() => api<MeteringView>('/api/ui/metering'), []);
  const zones = useMemo(timeZones, []);
  const [form, setForm] = useState({ timezone: 'UTC', thresholds: '80, 100', retention: '', webhook: '' });
  const [secret, setSecret] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const [secretSet, setSecretSet] = useState(false);
  const action = useAction();
  const d = current.data;
  useEffect(() => {
    if (!d) return;
    setForm({ timezone: d.timezone, thresholds: d.alert_thresholds.join(', '), retention: d.raw_retention_days === null ? '' : String(d.raw_retention_days), webhook: d.webhook_url ?? '' });
    setSecretSet(d.webhook_secret_set);
  }, [d]);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const readOnly = d ? !d.can_write : true;

  const put = (body: Record<string, unknown>, what: string) =>
    action.run(what, async () => {
      const r = await api<MeteringSaved>(tenantPath(d!.tenant_id, '/metering'), { method: 'PUT', body });
      setForm({ timezone: r.timezone, thresholds: r.alert_thresholds.join(', '), retention: r.raw_retention_days === null ? '' : String(r.raw_retention_days), webhook: r.webhook_url ?? '' });
      setCopied(false);
      setSecret(r.webhook_secret ?? null);
      setSecretSet(!!r.webhook_url && (secretSet || !!r.webhook_secret));
      if (r.webhook_secret) return what === 'rotate' ? 'A new signing secret was issued; the old one no longer verifies.' : 'Metering settings saved. A signing secret was issued for the webhook.';
      return 'Metering settings saved.';
    });

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const thresholds = parseThresholds(form.thresholds);
    if (!thresholds) {
      action.setError(new Error('Alert thresholds: up to 10 whole percentages between 1 and 1000, separated by commas (e.g. 80, 100).'));
      return;
    }
    const retention = form.retention.trim() ? Number(form.retention) : null;
    if (retention !== null && (!Number.isInteger(retention) || retention < 1)) {
      action.setError(new Error('Raw usage retention: a whole number of days (1 or more), or empty to keep records.'));
      return;
    }
    await put({ timezone: form.timezone.trim(), alert_thresholds: thresholds, raw_retention_days: retention, webhook_url: form.webhook.trim() || null }, 'save');
  };
  const rotate = async () => {
    if (!confirm('Issue a new signing secret? The current one stops verifying at once; update your receiver with the new secret.')) return;
    await put({ rotate_webhook_secret: true }, 'rotate');
  };

  return (
    <>
      <h2>Usage metering</h2>
      <ErrorNote error={current.error} title="Could not load the metering settings." />
      {current.loading && !d ? <Spinner /> : null}
      {d ? (
        <form className="form card" onSubmit={save} aria-label="Usage metering settings">
          {readOnly ? <Note>Only owners and administrators can change these settings.</Note> : null}
          <div className="form-row">
            <label className="field">
              <span>Time zone</span>
              <input required list="metering-zones" value={form.timezone} onChange={set('timezone')} disabled={readOnly} autoComplete="off" aria-describedby="metering-tz-hint" />
            </label>
            <datalist id="metering-zones">
              {zones.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
            <label className="field">
              <span>Alert thresholds (% of monthly limits)</span>
              <input value={form.thresholds} onChange={set('thresholds')} disabled={readOnly} inputMode="numeric" aria-describedby="metering-thresholds-hint" />
            </label>
            <label className="field">
              <span>Keep raw usage records for (days)</span>
              <input type="number" min={1} max={36500} inputMode="numeric" value={form.retention} onChange={set('retention')} disabled={readOnly} aria-describedby="metering-retention-hint" />
            </label>
          </div>
          <p id="metering-tz-hint" className="hint">
            An IANA time zone such as Europe/Berlin: monthly quotas reset and daily reports are cut at midnight there.
          </p>
          <p id="metering-thresholds-hint" className="hint">
            Admins get a banner (and the webhook a call) when the organisation crosses each percentage, e.g. 80, 100.
          </p>
          <p id="metering-retention-hint" className="hint">
            Empty keeps raw records; daily and monthly totals are always kept.
          </p>
          <div className="form-row">
            <label className="field">
              <span>Webhook URL for usage alerts</span>
              <input type="url" maxLength={2000} placeholder="https://hooks.example.com/enclave" value={form.webhook} onChange={set('webhook')} disabled={readOnly} aria-describedby="metering-webhook-hint" />
            </label>
          </div>
          <p id="metering-webhook-hint" className="hint">
            Signed with a secret (<code>whsec_…</code>) shown once when issued. {secretSet ? 'A signing secret is set.' : 'No signing secret yet: saving a URL issues one.'} Empty removes the webhook and its secret.
          </p>
          {readOnly ? null : (
            <div className="form-row">
              <button className="btn btn-primary" type="submit" disabled={!!action.busy}>
                {action.busy === 'save' ? <Spinner label="Saving…" /> : 'Save metering settings'}
              </button>
              {d.webhook_url || secretSet ? (
                <button type="button" className="btn" disabled={!!action.busy || !secretSet} onClick={() => void rotate()}>
                  {action.busy === 'rotate' ? <Spinner label="Rotating…" /> : 'Rotate signing secret'}
                </button>
              ) : null}
            </div>
          )}
        </form>
      ) : null}
      <ErrorNote error={action.error} />
      {action.done ? <Note kind="ok">{action.done}</Note> : null}
      {secret ? (
        <div className="note note-warn secret" role="alert" data-testid="webhook-secret-note">
          <p className="secret-warning">
            <strong>Copy the webhook signing secret now: it is shown only once.</strong> Enclave keeps it encrypted and cannot show it again; rotate it to get a new one.
          </p>
          <code className="secret-value" data-testid="webhook-secret">
            {secret}
          </code>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              void navigator.clipboard.writeText(secret).then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy secret'}
          </button>{' '}
          <button type="button" className="btn btn-small btn-ghost" onClick={() => setSecret(null)}>
            I have stored it
          </button>
        </div>
      ) : null}
    </>
  );
}
