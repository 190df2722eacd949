import { useId } from 'react';
import { htmlPattern } from './html-pattern.js';
import { KIND_SPECS, type KindField, type ProviderKind } from '../../../../server/providers/kinds.js';

export { KIND_SPECS, PROVIDER_KIND_NAMES, type ProviderKind } from '../../../../server/providers/kinds.js';

/** The values of a kind's own fields in the add form (strings; booleans as 'true'/''). */
export type KindValues = Record<string, string>;

/**
 * The fields a provider kind declares (server/providers/kinds.ts): settings as inputs,
 * secrets as password inputs (or a text area for a JSON key), stored encrypted and never shown again.
 */
export function KindFields({ kind, values, onChange }: { kind: ProviderKind; values: KindValues; onChange: (key: string, v: string) => void }) {
  const fields = KIND_SPECS[kind].fields;
  if (!fields.length) return null;
  return (
    <div className="form-row kind-fields" role="group" aria-label={`${KIND_SPECS[kind].label} settings`}>
      {fields.map((f) => (
        <Field key={f.key} f={f} value={values[f.key] ?? ''} set={(v) => onChange(f.key, v)} />
      ))}
    </div>
  );
}

/** The CLI-flavoured help line (server/providers/kinds.ts) as a form hint. */
function hintOf(f: KindField): string {
  const h = f.help.replace(/^file holding /, '').replace(/ \(- = stdin\)/, '').replace(/--base-url/g, 'a Base URL');
  return f.secret ? `${h} · stored encrypted, never shown again` : h;
}

/** One field: the hint is the input's description, not part of its name (screen readers, getByLabel). */
function Field({ f, value, set }: { f: KindField; value: string; set: (v: string) => void }) {
  const id = useId();
  const hint = (
    <small id={`${id}-hint`} className="muted">
      {hintOf(f)}
    </small>
  );
  if (f.type === 'boolean') {
    return (
      <div className="field">
        <label className="check" htmlFor={id}>
          {input(f, id, value, set)}
          {f.label}
        </label>
        {hint}
      </div>
    );
  }
  return (
    <div className="field">
      <label htmlFor={id}>
        {f.label}
        {f.secret ? ' (secret)' : ''}
      </label>
      {input(f, id, value, set)}
      {hint}
    </div>
  );
}

function input(f: KindField, id: string, value: string, set: (v: string) => void) {
  const hint = `${id}-hint`;
  if (f.type === 'boolean') return <input id={id} aria-describedby={hint} type="checkbox" checked={value === 'true'} onChange={(e) => set(e.target.checked ? 'true' : '')} />;
  if (f.multiline) return <textarea id={id} aria-describedby={hint} required={f.required} rows={4} autoComplete="off" spellCheck={false} value={value} onChange={(e) => set(e.target.value)} />;
  return (
    <input
      id={id}
      aria-describedby={hint}
      type={f.secret ? 'password' : f.type === 'url' ? 'url' : 'text'}
      autoComplete="off"
      required={f.required}
      pattern={f.pattern ? htmlPattern(f.pattern) : undefined}
      title={f.patternHint}
      placeholder={f.placeholder}
      value={value}
      onChange={(e) => set(e.target.value)}
    />
  );
}

/** The API body's settings and credentials from the form's values (empty fields left out). */
export function kindBody(kind: ProviderKind, values: KindValues): { settings?: Record<string, string | boolean>; credentials?: Record<string, string> } {
  const settings: Record<string, string | boolean> = {};
  const credentials: Record<string, string> = {};
  for (const f of KIND_SPECS[kind].fields) {
    const v = values[f.key];
    if (!v) continue;
    if (f.secret) credentials[f.key] = v;
    else settings[f.key] = f.type === 'boolean' ? true : v;
  }
  return { ...(Object.keys(settings).length ? { settings } : {}), ...(Object.keys(credentials).length ? { credentials } : {}) };
}
