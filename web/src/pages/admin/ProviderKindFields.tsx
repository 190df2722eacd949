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
    <div className="form-row" aria-label={`${KIND_SPECS[kind].label} settings`}>
      {fields.map((f) => (
        <label key={f.key} className="field">
          <span>
            {f.label}
            {f.secret ? ' (stored encrypted, never shown again)' : ''}
          </span>
          {input(f, values[f.key] ?? '', (v) => onChange(f.key, v))}
          <small className="muted">{f.help.replace(/^file holding /, '').replace(/ \(- = stdin\)/, '')}</small>
        </label>
      ))}
    </div>
  );
}

function input(f: KindField, value: string, set: (v: string) => void) {
  if (f.type === 'boolean') return <input type="checkbox" checked={value === 'true'} onChange={(e) => set(e.target.checked ? 'true' : '')} />;
  if (f.multiline) return <textarea required={f.required} rows={4} autoComplete="off" spellCheck={false} value={value} onChange={(e) => set(e.target.value)} />;
  return (
    <input
      type={f.secret ? 'password' : f.type === 'url' ? 'url' : 'text'}
      autoComplete="off"
      required={f.required}
      pattern={f.pattern}
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
