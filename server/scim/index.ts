import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import { ScimRepo } from '../db/repos/scim.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import type { Identity } from '../identity/index.js';
import { ScimService } from './service.js';
import { ScimTokens } from './tokens.js';

/** SCIM 2.0 provisioning (issue 24): per-tenant tokens and the Users/Groups service. Built by the server and by the CLI. */
export interface Scim {
  readonly tokens: ScimTokens;
  readonly service: ScimService;
}

export function createScim(o: { store: Store; tenantStore: TenantStore; identity: Identity; clock: Clock; entitlements: () => Entitlements }): Scim {
  const repo = new ScimRepo(o.store, o.tenantStore);
  return {
    tokens: new ScimTokens({ repo, audit: o.identity.audit, clock: o.clock, entitlements: o.entitlements }),
    service: new ScimService({ repo, identity: o.identity, clock: o.clock }),
  };
}
