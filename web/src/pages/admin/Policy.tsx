import { useEffect, useState, type FormEvent } from 'react';
import { api } from '../../api.js';
import { boundaryLabel, ErrorNote, Note, PageTitle, Spinner } from '../../components/ui.js';
import { CLASS_LABEL, DETECTOR_LABEL, useAction, useLoad } from './common.js';

type Matrix = Record<string, string[]>;
type Rules = Record<string, Record<string, string>>;

interface PolicyView {
  classifications: string[];
  boundaries: string[];
  detectors: string[];
  actions: string[];
  tenant_default: string;
  effective: { boundaries: Matrix; content: Rules; default_classification: string };
  input: Record<string, unknown> & { content?: Record<string, unknown> };
  can_write: boolean;
}

const ACTION_LABEL: Record<string, string> = { allow: 'Allow', redact: 'Redact', route_local: 'Keep local', block: 'Block' };

/**
 * The tenant's data-boundary policy: which boundaries each classification may use, and what
 * each content detector does per classification. Read from GET /api/ui/policy (defaults
 * filled in), saved whole through PUT /admin/api/gateway/policy (regions, key floors and
 * national-ID patterns in the stored policy are kept as they are).
 */
export function PolicyPage() {
  const view = useLoad(() => api<PolicyView>('/api/ui/policy'), []);
  const [matrix, setMatrix] = useState<Matrix>({});
  const [rules, setRules] = useState<Rules>({});
  const [def, setDef] = useState('internal');
  const [dirty, setDirty] = useState(false);
  const act = useAction();

  useEffect(() => {
    const v = view.data;
    if (!v) return;
    setMatrix(v.effective.boundaries);
    setRules(v.effective.content);
    setDef(v.effective.default_classification);
    setDirty(false);
  }, [view.data]);

  const v = view.data;
  const readOnly = !v?.can_write;

  const toggle = (c: string, b: string, on: boolean) => {
    setMatrix((m) => ({ ...m, [c]: on ? [...(m[c] ?? []).filter((x) => x !== b), b] : (m[c] ?? []).filter((x) => x !== b) }));
    setDirty(true);
  };
  const setRule = (c: string, d: string, a: string) => {
    setRules((r) => ({ ...r, [c]: { ...r[c], [d]: a } }));
    setDirty(true);
  };

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (!v) return;
    await act.run('save', async () => {
      const order = (bs: string[]) => v.boundaries.filter((b) => bs.includes(b));
      const body = {
        ...v.input,
        boundaries: Object.fromEntries(v.classifications.map((c) => [c, order(matrix[c] ?? [])])),
        content: { ...(v.input.content ?? {}), actions: rules },
        defaultClassification: def,
      };
      await api('/admin/api/gateway/policy', { method: 'PUT', body });
      await view.reload();
      return 'Policy saved. It applies to new requests at once.';
    });
  };

  return (
    <section className="page">
      <PageTitle>Data-boundary policy</PageTitle>
      <p className="muted">
        Which kind of model each data classification may reach, and what happens to personal or secret data found in a request. Local models run on your own infrastructure; cloud models
        are operated by a provider (private: under contract in an agreed region; public: a general cloud service).
      </p>
      <ErrorNote error={view.error} title="Could not load the policy." />
      {view.loading && !v ? <Spinner /> : null}
      {v ? (
        <form className="form" onSubmit={save} aria-label="Data-boundary policy">
          {readOnly ? <Note kind="warn">You can read this policy; changing it needs the settings permission.</Note> : null}
          <div className="card table-wrap" tabIndex={0}>
            <table className="table matrix">
              <caption>Where each classification may go</caption>
              <thead>
                <tr>
                  <th scope="col">Classification</th>
                  {v.boundaries.map((b) => (
                    <th scope="col" key={b}>
                      {boundaryLabel(b)}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {v.classifications.map((c) => (
                  <tr key={c}>
                    <th scope="row">{CLASS_LABEL[c] ?? c}</th>
                    {v.boundaries.map((b) => {
                      const on = (matrix[c] ?? []).includes(b);
                      return (
                        <td key={b} className="matrix-cell">
                          <label className="check">
                            <input type="checkbox" checked={on} disabled={readOnly} onChange={(e) => toggle(c, b, e.target.checked)} />
                            <span className="sr-only">
                              {CLASS_LABEL[c] ?? c} data may go to {boundaryLabel(b)} models
                            </span>
                            <span aria-hidden="true" className={on ? 'ok' : 'muted'}>
                              {on ? 'Allowed' : 'No'}
                            </span>
                          </label>
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
            {v.classifications.some((c) => (matrix[c] ?? []).length === 0) ? (
              <p className="hint" role="status">
                A classification with no boundary ticked cannot be sent to any model.
              </p>
            ) : null}
          </div>

          <div className="card table-wrap" tabIndex={0}>
            <table className="table matrix">
              <caption>Content rules: what each detector does, per classification</caption>
              <thead>
                <tr>
                  <th scope="col">Detector</th>
                  {v.classifications.map((c) => (
                    <th scope="col" key={c}>
                      {CLASS_LABEL[c] ?? c}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {v.detectors.map((d) => (
                  <tr key={d}>
                    <th scope="row">{DETECTOR_LABEL[d] ?? d}</th>
                    {v.classifications.map((c) => (
                      <td key={c}>
                        <select
                          aria-label={`${DETECTOR_LABEL[d] ?? d} in ${CLASS_LABEL[c] ?? c} data`}
                          value={rules[c]?.[d] ?? 'allow'}
                          disabled={readOnly}
                          className={`action-${rules[c]?.[d] ?? 'allow'}`}
                          onChange={(e) => setRule(c, d, e.target.value)}
                        >
                          {v.actions.map((a) => (
                            <option key={a} value={a}>
                              {ACTION_LABEL[a] ?? a}
                            </option>
                          ))}
                        </select>
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="hint">
              Redact replaces the match with a placeholder before a cloud model sees it (local models get the original). Keep local sends the request only to Local models. Block refuses
              the request.
            </p>
          </div>

          <div className="form-row">
            <label className="field">
              <span>Default classification (when a request names none)</span>
              <select
                value={def}
                disabled={readOnly}
                onChange={(e) => {
                  setDef(e.target.value);
                  setDirty(true);
                }}
              >
                {v.classifications.map((c) => (
                  <option key={c} value={c}>
                    {CLASS_LABEL[c] ?? c}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {!readOnly ? (
            <div className="button-row">
              <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
                {act.busy ? <Spinner label="Saving…" /> : 'Save policy'}
              </button>
              <button
                className="btn"
                type="button"
                disabled={!dirty || !!act.busy}
                onClick={() => {
                  setMatrix(v.effective.boundaries);
                  setRules(v.effective.content);
                  setDef(v.effective.default_classification);
                  setDirty(false);
                }}
              >
                Undo changes
              </button>
            </div>
          ) : null}
          <ErrorNote error={act.error} title="The policy was not saved." />
          {act.done ? <Note kind="ok">{act.done}</Note> : null}
        </form>
      ) : null}
    </section>
  );
}
