import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where tenant-private provider deployments may connect. A tenant administrator chooses the
 * base URL of the tenant's own deployments, and the appliance then sends requests there from
 * inside the perimeter: without a rule, that is a way to reach the appliance's own
 * loopback services (metrics, an embedded Redis) or a cloud metadata endpoint, and to read
 * their answers back through `test` (server-side request forgery).
 *
 * - Without ENCLAVE_TENANT_PROVIDER_NETWORKS: any address except loopback, link-local
 *   (169.254.0.0/16 holds the cloud metadata endpoints), unspecified and multicast.
 *   Private ranges stay open: a department's own Ollama on the LAN is the point.
 * - With it: only addresses inside the listed networks (the platform administrator's
 *   explicit choice, which may include loopback).
 *
 * Checked twice: when the base URL is set (IP literals and `localhost`, so the tenant
 * administrator hears at once) and on every new connection, after name resolution, so a
 * name that resolves (or later re-resolves) to a refused address is refused too.
 * Platform deployments are not restricted: platform administrators own the perimeter.
 *
 * The same rule governs every other address a tenant administrator chooses and the appliance
 * then calls: the soft-limit webhook (server/metering/webhooks.ts) uses `guardedAgent`
 * (./guarded-agent.ts: undici stays out of this module, which the config loads for every
 * CLI command).
 */
export interface EgressPolicy {
  /** Why a connection to this IP address is refused, or null when it is allowed. */
  refusal(ip: string): string | null;
}

const SETTING = 'ENCLAVE_TENANT_PROVIDER_NETWORKS';

/** Loopback, link-local, unspecified, multicast and broadcast, v4 and v6. */
const ALWAYS_REFUSED: readonly [string, number, 'ipv4' | 'ipv6', string][] = [
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['255.255.255.255', 32, 'ipv4', 'broadcast'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

/** Parses "10.0.0.0/8, 192.168.1.20, fd00::/8" (a bare address is one host). Throws on a bad entry. */
export function parseNetworks(list: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' }[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [address = '', bits] = entry.split('/');
      const v = isIP(address);
      if (!v) throw new Error(`"${entry}" is not an IP address or CIDR network`);
      const max = v === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) throw new Error(`"${entry}" has a bad prefix length`);
      return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
    });
}

/**
 * An IPv4-mapped IPv6 address (::ffff:127.0.0.1, or its hex form ::ffff:7f00:1 as URLs
 * normalise it) is the IPv4 address for this purpose: it reaches the same socket.
 */
function unmap(ip: string): { ip: string; family: 'ipv4' | 'ipv6' } {
  if (isIP(ip) === 4) return { ip, family: 'ipv4' };
  const m = /^(?:0{0,4}:){0,5}(?::|0{0,4}:)?ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(ip);
  if (m) {
    if (m[1]) return { ip: m[1], family: 'ipv4' };
    const hi = parseInt(m[2]!, 16);
    const lo = parseInt(m[3]!, 16);
    return { ip: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  return { ip, family: 'ipv6' };
}

export function egressPolicy(networks: string | undefined): EgressPolicy {
  const list = networks?.trim() ? parseNetworks(networks) : [];
  if (list.length) {
    const allowed = new BlockList();
    for (const n of list) allowed.addSubnet(n.address, n.prefix, n.family);
    return {
      refusal(raw) {
        const { ip, family } = unmap(raw);
        return allowed.check(ip, family) ? null : `${raw} is outside ${SETTING}`;
      },
    };
  }
  const refused = ALWAYS_REFUSED.map(([address, prefix, family, why]) => {
    const b = new BlockList();
    b.addSubnet(address, prefix, family);
    return { b, why };
  });
  return {
    refusal(raw) {
      const { ip, family } = unmap(raw);
      for (const r of refused) if (r.b.check(ip, family)) return `${raw} is ${r.why}, which tenant-private deployments may not reach (a platform administrator can allow networks with ${SETTING})`;
      return null;
    },
  };
}

/** Why the policy refuses a host that is an IP literal (bracketed IPv6 too); null for names (checked once resolved) and allowed addresses. */
export function refusedIpHost(policy: EgressPolicy, host: string): string | null {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(h) ? policy.refusal(h) : null;
}

/**
 * The check when a base URL is set: an IP literal or `localhost` that the policy refuses
 * (other names are checked when they resolve, at connection time). Returns the reason, or null.
 */
export function refusedBaseUrl(policy: EgressPolicy, baseUrl: string): string | null {
  let host: string;
  try {
    host = new URL(baseUrl).hostname;
  } catch {
    return null; // the URL schema reports it
  }
  if (/^localhost\.?$/i.test(host) || /\.localhost\.?$/i.test(host)) return policy.refusal('127.0.0.1');
  return refusedIpHost(policy, host);
}

/** A connection the policy refused: `host` as the caller named it, `why` the policy's reason. */
export class EgressRefused extends Error {
  readonly code = 'ENCLAVE_EGRESS_REFUSED';
  override readonly name = 'EgressRefused';
  constructor(host: string, why: string) {
    super(`refused to connect to ${host}: ${why}`);
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect that resolves as usual, then refuses when any address the
 * name resolves to is refused (not only the first: the connection may try the others).
 */
export function guardedLookup(policy: EgressPolicy) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      for (const a of addresses) {
        const why = policy.refusal(a.address);
        if (why) return callback(new EgressRefused(hostname, why), []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
