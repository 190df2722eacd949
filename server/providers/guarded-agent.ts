import { Agent, buildConnector } from 'undici';
import { EgressRefused, guardedLookup, refusedIpHost, type EgressPolicy } from './egress.js';

/**
 * An undici dispatcher whose every new connection is checked against `policy`: an IP literal
 * before connecting (net.connect does not call `lookup` for those), a name after it resolves
 * — so DNS rebinding (a name that resolved to an allowed address when it was saved, and to a
 * refused one now) is refused at the connection that would use it.
 */
export function guardedAgent(policy: EgressPolicy, o: { connectTimeoutMs: number; headersTimeoutMs: number; bodyTimeoutMs: number }): Agent {
  const base = buildConnector({ timeout: o.connectTimeoutMs, lookup: guardedLookup(policy) });
  const connect: buildConnector.connector = (opts, cb) => {
    const why = refusedIpHost(policy, opts.hostname);
    if (why) cb(new EgressRefused(opts.hostname.replace(/^\[(.*)\]$/, '$1'), why), null);
    else base(opts, cb);
  };
  return new Agent({ connect, headersTimeout: o.headersTimeoutMs, bodyTimeout: o.bodyTimeoutMs, keepAliveTimeout: 4_000 });
}
