import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { Store } from '../db/store.js';
import type { EgressPolicy } from '../providers/egress.js';
import { SiemForwarder, type ForwarderOptions } from './forwarder.js';
import { SiemMetrics } from './metrics.js';
import { SiemSinks } from './sinks.js';

/**
 * Audit streaming to SIEMs (issue 25): the sinks (configuration, CLI and admin API), their
 * metrics, and the forwarder the worker role starts (server/jobs/runtime.ts).
 */
export interface Siem {
  readonly sinks: SiemSinks;
  readonly metrics: SiemMetrics;
  /** A forwarder over this process's services (not started). */
  forwarder(opts?: ForwarderOptions): SiemForwarder;
  /** Starts this process's forwarder (the worker role); once. */
  startForwarder(opts?: ForwarderOptions): SiemForwarder;
  /** Stops the forwarders this object made. */
  stop(): Promise<void>;
}

export function createSiem(o: { store: Store; box: SecretBox | undefined; clock: Clock; log: Logger; audit: AuditLog; egress: EgressPolicy; redis: Redis; registry: Registry }): Siem {
  const sinks = new SiemSinks(o.store, o.box, o.clock, o.audit, o.egress);
  const metrics = new SiemMetrics(o.registry, () => sinks);
  const made: SiemForwarder[] = [];
  let main: SiemForwarder | undefined;
  const forwarder = (opts?: ForwarderOptions): SiemForwarder => {
    const f = new SiemForwarder({ store: o.store, sinks, redis: o.redis, clock: o.clock, log: o.log.child({ component: 'siem' }), egress: o.egress, metrics }, opts);
    made.push(f);
    return f;
  };
  return {
    sinks,
    metrics,
    forwarder,
    startForwarder: (opts) => (main ??= forwarder(opts).start()),
    stop: async () => {
      await Promise.all(made.map((f) => f.stop()));
    },
  };
}
