import { useCallback, useEffect, useState } from 'react';
import { useSession } from '../../session.js';

/** Loads data, keeps the error, reloads on demand: every admin page's list. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps);
  const reload = useCallback(async () => {
    setLoading(true);
    try {
      setData(await run());
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  }, [run]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload };
}

export function useTenantId(): string | null {
  return useSession().session.tenant?.id ?? null;
}

export function tenantPath(tenantId: string, rest: string): string {
  return `/admin/api/tenants/${encodeURIComponent(tenantId)}${rest}`;
}
