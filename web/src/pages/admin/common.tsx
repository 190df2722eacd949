import { useCallback, useEffect, useState } from 'react';
import { ErrorNote, Note } from '../../components/ui.js';
import { useSession } from '../../session.js';

/** Loads data, keeps the error, reloads on demand: every admin page's list. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
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

/**
 * The admin API path of one tenant. A missing id is refused here, before any request: the
 * console must never call /admin/api/tenants/null/… (the server would audit a denial).
 */
export function tenantPath(tenantId: string | null | undefined, rest: string): string {
  if (!tenantId || tenantId === 'null' || tenantId === 'undefined') throw new Error('Choose an organisation first.');
  return `/admin/api/tenants/${encodeURIComponent(tenantId)}${rest}`;
}

/** One action at a time with progress, the API's error and a success note: every admin form. */
export function useAction() {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const run = useCallback(async (label: string, fn: () => Promise<string | void>): Promise<boolean> => {
    setBusy(label);
    setError(null);
    setDone(null);
    try {
      const msg = await fn();
      if (msg) setDone(msg);
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(null);
    }
  }, []);
  return { busy, error, done, run, setError, setDone };
}

/** What the last useAction() run ended with: the API's error, or its success message. */
export function ActionStatus({ act }: { act: { error: unknown; done: string | null } }) {
  return (
    <>
      <ErrorNote error={act.error} />
      {act.done ? <Note kind="ok">{act.done}</Note> : null}
    </>
  );
}

export const CLASS_LABEL: Record<string, string> = { public: 'Public', internal: 'Internal', confidential: 'Confidential', restricted: 'Restricted' };
export const DETECTOR_LABEL: Record<string, string> = {
  email: 'E-mail addresses',
  phone: 'Phone numbers',
  iban: 'IBANs',
  card: 'Payment card numbers',
  national_id: 'National ID numbers',
  secret: 'Secrets and API keys',
};
