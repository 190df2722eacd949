import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

/**
 * A real OpenID Provider (panva/oidc-provider) on 127.0.0.1 for tests, issuing
 * Keycloak-shaped claims: realm_access.roles, resource_access.<client>.roles, groups
 * (full paths), roles. Login is headless: /interaction/:uid logs in `nextLogin` at once and
 * consent is implied. Two steps, because the RP's URLs are known only after it listens:
 * `listenOidcProvider()` binds the port (the issuer), `configure()` builds the provider.
 */
export interface OpClient {
  readonly client_id: string;
  readonly client_secret: string;
  readonly redirect_uris: string[];
  readonly post_logout_redirect_uris?: string[];
  readonly backchannel_logout_uri?: string;
}

export interface OpUser {
  email: string;
  email_verified?: boolean;
  name?: string;
  groups?: string[];
  roles?: string[];
  realm_access?: { roles: string[] };
  resource_access?: Record<string, { roles: string[] }>;
  [claim: string]: unknown;
}

export class FakeOp {
  readonly users: Record<string, OpUser> = {};
  nextLogin = '';
  provider: any; // any: oidc-provider is untyped
  /** Back-channel logout deliveries the OP made (status per URL). */
  readonly backchannel: { url: string; status: number }[] = [];

  constructor(
    readonly server: http.Server,
    readonly issuer: string,
  ) {}

  async configure(clients: OpClient[]): Promise<void> {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: 'op-key-1', alg: 'RS256', use: 'sig' };
    const users = this.users;
    const self = this;
    const provider = new Provider(this.issuer, {
      jwks: { keys: [jwk as never] },
      clients: clients.map((c) => ({
        ...c,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        ...(c.backchannel_logout_uri ? { backchannel_logout_session_required: true } : {}),
      })),
      scopes: ['openid', 'email', 'profile'],
      claims: {
        openid: ['sub', 'groups', 'roles', 'realm_access', 'resource_access', 'tenant'],
        email: ['email', 'email_verified'],
        profile: ['name'],
      },
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      features: { devInteractions: { enabled: false }, backchannelLogout: { enabled: true }, rpInitiatedLogout: { enabled: true } },
      interactions: { url: (_ctx: unknown, i: { uid: string }) => `/interaction/${i.uid}` },
      ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
      // Test only: oidc-provider's default fetch refuses loopback (SSRF guard).
      fetch: async (url: URL | string, o: RequestInit) => {
        const res = await globalThis.fetch(url, { ...o, dispatcher: undefined } as RequestInit);
        self.backchannel.push({ url: String(url), status: res.status });
        return res;
      },
      findAccount: async (_ctx: unknown, sub: string) =>
        users[sub] ? { accountId: sub, claims: async () => ({ sub, ...structuredClone(users[sub]!) }) } : undefined,
      loadExistingGrant: async (ctx: any) => {
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId! });
        grant.addOIDCScope('openid email profile');
        await grant.save();
        return grant;
      },
    });
    provider.use(async (ctx: any, next: () => Promise<void>) => {
      if (!/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: this.nextLogin } }, { mergeWithLastSubmission: false });
      ctx.respond = false;
    });
    this.provider = provider;
    this.server.removeAllListeners('request');
    this.server.on('request', provider.callback());
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

export async function listenOidcProvider(): Promise<FakeOp> {
  const server = http.createServer((_req, res) => {
    res.statusCode = 503;
    res.end('not configured');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return new FakeOp(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}
