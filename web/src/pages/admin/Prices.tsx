import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api } from '../../api.js';
import { ErrorNote, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useAction, useLoad } from './common.js';

/** GET /admin/api/prices (server/metering/prices.ts priceJson): integer micro-units per million tokens. */
interface Price {
  model: string;
  deployment_id: string | null;
  version: number;
  input_micros_per_mtok: number;
  output_micros_per_mtok: number;
  request_micros: number;
  currency: string;
  source: 'bundled' | 'admin' | string;
  created_at: string;
}
interface Provider {
  id: string;
  name: string;
  models: { name: string; type: string }[];
}

/** Micro-units → a currency amount, with as many decimals as it needs (at least 2). */
export function formatMoney(micros: number, currency: string): string {
  const n = micros / 1_000_000;
  return `${n.toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 6 })} ${currency}`;
}

/** A decimal amount typed by the admin → micro-units (null when not a non-negative number). */
function toMicros(v: string): number | null {
  const t = v.trim();
  if (!t) return null;
  const n = Number(t);
  return Number.isFinite(n) && n >= 0 ? Math.round(n * 1_000_000) : null;
}

const emptyForm = { model: '', deployment_id: '', input: '', output: '', request: '', currency: 'USD' };

/**
 * Prices (platform administrators): what metering charges per model, optionally per
 * deployment. Setting a price adds a new version; usage records keep the version they were
 * costed with, so past costs do not change. The prices API is platform-only (tenant admins
 * see costs in their usage reports, not the price list).
 */
export function PricesPage() {
  const list = useLoad(() => api<{ data: Price[] }>('/admin/api/prices'), []);
  const providers = useLoad(() => api<{ data: Provider[] }>('/admin/api/providers'), []);
  const [form, setForm] = useState(emptyForm);
  const [history, setHistory] = useState<{ model: string; rows: Price[] } | null>(null);
  const action = useAction();
  const hist = useAction();

  const depName = (id: string | null) => (id ? (providers.data?.data.find((p) => p.id === id)?.name ?? id) : 'Any deployment');
  const models = [...new Set([...(providers.data?.data.flatMap((p) => p.models.map((m) => m.name)) ?? []), ...(list.data?.data.map((p) => p.model) ?? [])])].sort();
  const rows = [...(list.data?.data ?? [])].sort((a, b) => a.model.localeCompare(b.model) || (a.deployment_id ?? '').localeCompare(b.deployment_id ?? ''));
  const set = (k: keyof typeof emptyForm) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const input = toMicros(form.input);
    const output = toMicros(form.output);
    const request = form.request.trim() ? toMicros(form.request) : 0;
    if (input === null || output === null || request === null) {
      action.setError(new Error('Prices must be numbers of zero or more (e.g. 2.5).'));
      return;
    }
    const ok = await action.run('save', async () => {
      const p = await api<Price>('/admin/api/prices', {
        method: 'PUT',
        body: {
          model: form.model.trim(),
          ...(form.deployment_id ? { deployment_id: form.deployment_id } : {}),
          input_micros_per_mtok: input,
          output_micros_per_mtok: output,
          request_micros: request,
          currency: form.currency.trim().toUpperCase(),
        },
      });
      return `Price of ${p.model} (${depName(p.deployment_id)}) saved as version ${p.version}. New calls are costed with it.`;
    });
    if (ok) {
      setForm((f) => ({ ...emptyForm, currency: f.currency }));
      await list.reload();
    }
  };

  const edit = (p: Price) => {
    setForm({
      model: p.model,
      deployment_id: p.deployment_id ?? '',
      input: String(p.input_micros_per_mtok / 1_000_000),
      output: String(p.output_micros_per_mtok / 1_000_000),
      request: p.request_micros ? String(p.request_micros / 1_000_000) : '',
      currency: p.currency,
    });
    document.getElementById('price-model')?.focus();
  };

  const showHistory = (model: string) =>
    void hist.run('history', async () => {
      const r = await api<{ data: Price[] }>(`/admin/api/prices/${encodeURIComponent(model)}/history`);
      setHistory({ model, rows: [...r.data].reverse() });
    });

  return (
    <section className="page">
      <PageTitle>Prices</PageTitle>
      <p className="muted">
        What metering charges per model (and optionally per deployment), per million tokens plus an optional fee per request. A change adds a new version: usage already recorded keeps
        the price it was costed with. Models without a price cost nothing (local models, usually).
      </p>

      <form className="form card" onSubmit={save} aria-label="Set a price">
        <h2 className="card-title">Set a price</h2>
        <div className="form-row">
          <label className="field">
            <span>Model</span>
            <input id="price-model" required maxLength={200} list="price-models" value={form.model} onChange={set('model')} autoComplete="off" />
          </label>
          <datalist id="price-models">
            {models.map((m) => (
              <option key={m} value={m} />
            ))}
          </datalist>
          <label className="field">
            <span>Deployment</span>
            <select value={form.deployment_id} onChange={set('deployment_id')}>
              <option value="">Any deployment</option>
              {providers.data?.data.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Currency</span>
            <input required pattern="[A-Za-z]{3}" maxLength={3} value={form.currency} onChange={set('currency')} title="Three letters, e.g. USD or EUR" />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Input per 1M tokens</span>
            <input required type="number" min={0} step="any" inputMode="decimal" value={form.input} onChange={set('input')} />
          </label>
          <label className="field">
            <span>Output per 1M tokens</span>
            <input required type="number" min={0} step="any" inputMode="decimal" value={form.output} onChange={set('output')} />
          </label>
          <label className="field">
            <span>Fee per request (optional)</span>
            <input type="number" min={0} step="any" inputMode="decimal" value={form.request} onChange={set('request')} />
          </label>
        </div>
        <button className="btn btn-primary" type="submit" disabled={!!action.busy}>
          {action.busy ? <Spinner label="Saving…" /> : 'Save price'}
        </button>
      </form>
      <ErrorNote error={action.error} />
      {action.done ? <Note kind="ok">{action.done}</Note> : null}

      <ErrorNote error={list.error} title="Could not load prices." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Current prices"
          rows={rows}
          rowKey={(p) => `${p.model}|${p.deployment_id ?? ''}`}
          search={(p) => `${p.model} ${depName(p.deployment_id)} ${p.currency}`}
          empty="No prices yet: every call costs nothing."
          pageSize={100}
          columns={[
            { key: 'model', header: 'Model', cell: (p) => <code>{p.model}</code>, sort: (p) => p.model },
            { key: 'deployment', header: 'Deployment', cell: (p) => depName(p.deployment_id), sort: (p) => depName(p.deployment_id) },
            { key: 'in', header: 'Input / 1M tokens', cell: (p) => formatMoney(p.input_micros_per_mtok, p.currency), sort: (p) => p.input_micros_per_mtok, num: true },
            { key: 'out', header: 'Output / 1M tokens', cell: (p) => formatMoney(p.output_micros_per_mtok, p.currency), sort: (p) => p.output_micros_per_mtok, num: true },
            { key: 'req', header: 'Per request', cell: (p) => (p.request_micros ? formatMoney(p.request_micros, p.currency) : '—'), sort: (p) => p.request_micros, num: true },
            {
              key: 'version',
              header: 'Version',
              cell: (p) => (
                <>
                  v{p.version} <span className={`tag tag-${p.source}`}>{p.source === 'bundled' ? 'bundled' : 'set by admin'}</span>
                </>
              ),
            },
            { key: 'since', header: 'Since', cell: (p) => new Date(p.created_at).toLocaleString(), sort: (p) => p.created_at, className: 'small' },
          ]}
          actions={(p) => (
            <>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => edit(p)} aria-label={`Edit the price of ${p.model} (${depName(p.deployment_id)})`}>
                Edit
              </button>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => showHistory(p.model)} aria-label={`Price history of ${p.model}`}>
                History
              </button>
            </>
          )}
        />
      ) : null}

      <ErrorNote error={hist.error} title="Could not load the history." />
      {history ? (
        <>
          <h2 className="section-title">Price history of {history.model}</h2>
          <DataTable
            caption={`Price history of ${history.model}`}
            rows={history.rows}
            rowKey={(p) => `${p.version}|${p.deployment_id ?? ''}`}
            empty="No history."
            columns={[
              { key: 'version', header: 'Version', cell: (p) => `v${p.version}`, sort: (p) => p.version },
              { key: 'deployment', header: 'Deployment', cell: (p) => depName(p.deployment_id) },
              { key: 'in', header: 'Input / 1M', cell: (p) => formatMoney(p.input_micros_per_mtok, p.currency), num: true },
              { key: 'out', header: 'Output / 1M', cell: (p) => formatMoney(p.output_micros_per_mtok, p.currency), num: true },
              { key: 'req', header: 'Per request', cell: (p) => (p.request_micros ? formatMoney(p.request_micros, p.currency) : '—'), num: true },
              { key: 'since', header: 'Since', cell: (p) => new Date(p.created_at).toLocaleString(), sort: (p) => p.created_at, className: 'small' },
            ]}
          />
        </>
      ) : null}
    </section>
  );
}
