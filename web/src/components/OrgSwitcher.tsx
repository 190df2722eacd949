import { useEffect, useState } from 'react';
import { api, type ListPage } from '../api.js';
import { useSession } from '../session.js';

interface Org {
  id: string;
  slug: string;
  name: string;
  status: string;
}

/**
 * The organisations the signed-in user may work in: their memberships, and for platform
 * administrators every tenant (they may enter any). Loaded once per session.
 */
export function useOrganisations(): Org[] {
  const { session } = useSession();
  const [all, setAll] = useState<Org[] | null>(null);
  const platform = session.user.platform_admin;
  useEffect(() => {
    if (!platform) return;
    api<ListPage<Org>>('/admin/api/tenants?limit=200')
      .then((r) => setAll(r.data))
      .catch(() => setAll(null));
  }, [platform]);
  const mine: Org[] = session.tenants.map((t) => ({ id: t.id, slug: t.slug, name: t.name, status: t.status }));
  if (!all) return mine;
  const seen = new Set(mine.map((t) => t.id));
  return [...mine, ...all.filter((t) => !seen.has(t.id))];
}

/** A select that switches the session's organisation; shown when there is more than one to choose (or none chosen). */
export function OrgSwitcher({ id, label = 'Organisation', onError, showAlways = false }: { id: string; label?: string; onError: (e: unknown) => void; showAlways?: boolean }) {
  const { session, switchTenant } = useSession();
  const orgs = useOrganisations();
  if (!showAlways && orgs.length <= 1 && session.tenant) return <span className="muted org-name">{orgs[0]?.name || session.tenant.slug}</span>;
  if (orgs.length === 0) return <span className="muted small">No organisations yet</span>;
  return (
    <span className="inline-field org-switcher">
      <label htmlFor={id}>{label}</label>
      <select
        id={id}
        value={session.tenant?.slug ?? ''}
        onChange={(e) => {
          onError(null);
          if (e.target.value) switchTenant(e.target.value).catch(onError);
        }}
      >
        {session.tenant ? null : <option value="">Choose…</option>}
        {orgs.map((t) => (
          <option key={t.id} value={t.slug} disabled={t.status !== 'active'}>
            {t.name || t.slug}
            {t.status !== 'active' ? ' (suspended)' : ''}
          </option>
        ))}
      </select>
    </span>
  );
}
