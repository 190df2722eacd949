import { createContext, useContext } from 'react';
import type { Session } from './api.js';

export interface SessionApi {
  session: Session;
  refresh(): Promise<void>;
  signOut(): Promise<void>;
  switchTenant(tenant: string): Promise<void>;
}

export const SessionContext = createContext<SessionApi | null>(null);

export function useSession(): SessionApi {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in page');
  return s;
}

/** Tenant admins (owner/admin) and platform administrators see the admin console. */
export function isAdmin(s: Session): boolean {
  return s.user.platform_admin || s.role === 'owner' || s.role === 'admin';
}
