import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';

/**
 * A deliberately broken issuer (node:http + jose) on 127.0.0.1 for the negative catalogue:
 * discovery, JWKS, an authorize endpoint that answers at once with a code, and a token
 * endpoint that returns the ID token the current test asks for. It checks PKCE (S256) and
 * the client's Basic credentials like a real OP, unless told to break something.
 *
 *   rogue.mutate = (claims) => ({ ...claims, iss: 'https://evil' })   // claim tampering
 *   rogue.sign = 'none' | 'HS256' | 'foreign'                          // header/key tampering
 *   rogue.discoveryIssuer = 'http://localhost:…'                       // discovery mix-up
 *   rogue.breakPkce = true                                             // verifier mismatch
 */
export type Sign = 'RS256' | 'none' | 'HS256' | 'foreign';

interface CodeRecord {
  readonly nonce: string | undefined;
  readonly challenge: string;
  readonly redirectUri: string;
  readonly clientId: string;
}

export class RogueIssuer {
  mutate: (c: JWTPayload) => JWTPayload = (c) => c;
  sign: Sign = 'RS256';
  discoveryIssuer: string | undefined;
  breakPkce = false;
  /** Extra query parameters the authorize endpoint adds to the redirect (e.g. a forged state or iss). */
  extraParams: Record<string, string> = {};
  subject = 'rogue-user-1';
  email = 'mallory@rogue.test';
  claims: JWTPayload = {};
  readonly codes = new Map<string, CodeRecord>();
  private key!: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  private foreignKey!: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  private jwk!: object;

  /** The address the server really listens on (differs from `issuer` when a public name is simulated). */
  readonly address: string;

  constructor(
    private readonly server: http.Server,
    readonly issuer: string,
    private readonly clientSecret: string,
    address?: string,
  ) {
    this.address = address ?? issuer;
  }

  reset(): void {
    this.mutate = (c) => c;
    this.sign = 'RS256';
    this.discoveryIssuer = undefined;
    this.breakPkce = false;
    this.extraParams = {};
    this.claims = {};
  }

  async init(): Promise<void> {
    const a = await generateKeyPair('RS256', { extractable: true });
    const b = await generateKeyPair('RS256', { extractable: true });
    this.key = a.privateKey;
    this.foreignKey = b.privateKey;
    this.jwk = { ...(await exportJWK(a.publicKey)), kid: 'rogue-1', alg: 'RS256', use: 'sig' };
    this.server.on('request', (req, res) => void this.handle(req, res));
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.address);
    const prefix = new URL(this.issuer).pathname.replace(/\/$/, '');
    if (prefix && url.pathname.startsWith(prefix)) url.pathname = url.pathname.slice(prefix.length) || '/';
    if (url.pathname === '/.well-known/openid-configuration') {
      return this.json(res, 200, {
        issuer: this.discoveryIssuer ?? this.issuer,
        authorization_endpoint: `${this.issuer}/authorize`,
        token_endpoint: `${this.issuer}/token`,
        jwks_uri: `${this.issuer}/jwks`,
        end_session_endpoint: `${this.issuer}/logout`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic'],
      });
    }
    if (url.pathname === '/jwks') return this.json(res, 200, { keys: [this.jwk] });
    if (url.pathname === '/authorize') {
      const p = url.searchParams;
      const code = randomBytes(16).toString('base64url');
      this.codes.set(code, { nonce: p.get('nonce') ?? undefined, challenge: p.get('code_challenge') ?? '', redirectUri: p.get('redirect_uri') ?? '', clientId: p.get('client_id') ?? '' });
      const back = new URL(p.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', p.get('state') ?? '');
      for (const [k, v] of Object.entries(this.extraParams)) back.searchParams.set(k, v);
      res.writeHead(302, { location: back.href });
      return void res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const p = new URLSearchParams(body);
      const rec = this.codes.get(p.get('code') ?? '');
      this.codes.delete(p.get('code') ?? '');
      const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      const secret = decodeURIComponent(basic.slice(basic.indexOf(':') + 1));
      if (secret !== this.clientSecret) return this.json(res, 401, { error: 'invalid_client' });
      if (!rec) return this.json(res, 400, { error: 'invalid_grant', error_description: 'unknown code' });
      const challenge = createHash('sha256').update(p.get('code_verifier') ?? '').digest('base64url');
      if (this.breakPkce || challenge !== rec.challenge) return this.json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
      const now = Math.floor(Date.now() / 1000);
      const claims = this.mutate({
        iss: this.issuer,
        sub: this.subject,
        aud: rec.clientId,
        iat: now,
        exp: now + 300,
        ...(rec.nonce ? { nonce: rec.nonce } : {}),
        email: this.email,
        email_verified: true,
        ...this.claims,
      });
      return this.json(res, 200, { access_token: randomBytes(16).toString('base64url'), token_type: 'Bearer', expires_in: 300, id_token: await this.idToken(claims) });
    }
    res.writeHead(404);
    res.end();
  }

  async idToken(claims: JWTPayload): Promise<string> {
    if (this.sign === 'none') {
      const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
    }
    if (this.sign === 'HS256') {
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'rogue-1' }).sign(new TextEncoder().encode(this.clientSecret));
    }
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'rogue-1' }).sign(this.sign === 'foreign' ? this.foreignKey : this.key);
  }

  /** A logout token signed by this issuer (or tampered the same way as ID tokens). */
  async logoutToken(claims: JWTPayload, typ = 'logout+jwt'): Promise<string> {
    const c = this.mutate(claims);
    if (this.sign !== 'RS256') return this.idToken(c);
    return new SignJWT(c).setProtectedHeader({ alg: 'RS256', kid: 'rogue-1', typ }).sign(this.key);
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

/** `publicIssuer`: the issuer the IdP names itself (e.g. https://sso.public.test/realms/x) while listening on 127.0.0.1. */
export async function startRogueIssuer(clientSecret: string, host = '127.0.0.1', publicIssuer?: string): Promise<RogueIssuer> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, host, r));
  const address = `http://${host}:${(server.address() as AddressInfo).port}`;
  const rogue = new RogueIssuer(server, publicIssuer ?? address, clientSecret, address);
  await rogue.init();
  return rogue;
}
