import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../../api.js';
import { ErrorNote, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useLoad } from './common.js';
import { MeteringSettings } from './MeteringSettings.js';

/** Tenant settings the console edits: chat retention and usage metering (time zone, alerts, retention, webhook). */
export function SettingsPage() {
  const current = useLoad(() => api<{ days: number | null }>('/api/chat/retention'), []);
  const [days, setDays] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  useEffect(() => {
    if (current.data) setDays(current.data.days === null ? '' : String(current.data.days));
  }, [current.data]);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const n = days.trim() ? Number(days) : null;
      const r = await api<{ days: number | null }>('/api/chat/retention', { method: 'PUT', body: { days: n } });
      setDone(r.days === null ? 'Conversations are kept until their owners delete them.' : `Conversations not used for ${r.days} days are deleted daily.`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="page">
      <PageTitle>Settings</PageTitle>
      <h2>Chat retention</h2>
      <ErrorNote error={current.error} />
      {current.loading && !current.data ? <Spinner /> : null}
      <form className="form form-row card" onSubmit={save} aria-label="Chat retention">
        <label className="field">
          <span>Delete conversations not used for (days; empty = keep)</span>
          <input type="number" min={1} max={3650} inputMode="numeric" value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
        <button className="btn btn-primary" type="submit" disabled={busy}>
          {busy ? <Spinner label="Saving…" /> : 'Save retention'}
        </button>
      </form>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      <MeteringSettings />
    </section>
  );
}
