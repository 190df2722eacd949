import { Counter, Gauge, type Registry } from 'prom-client';
import type { SiemSinks } from './sinks.js';

/**
 * SIEM metrics (label `sink`: the administrator's sink name, a bounded set):
 * - enclave_siem_backlog_events{sink}: audit entries not yet delivered (newest seq − cursor),
 *   read from the database at scrape time, so every process reports the same value;
 * - enclave_siem_delivered_total{sink}, enclave_siem_delivery_failures_total{sink}: counted by
 *   the process whose forwarder delivers (the worker role; `all` serves them on PORT, a separate
 *   worker on ENCLAVE_WORKER_METRICS_PORT). Every sink's series is exported from 0.
 */
export class SiemMetrics {
  readonly delivered: Counter<'sink'>;
  readonly failures: Counter<'sink'>;
  readonly backlog: Gauge<'sink'>;

  constructor(registry: Registry, sinks: () => SiemSinks) {
    this.delivered = new Counter({ name: 'enclave_siem_delivered_total', help: 'Audit events a SIEM sink acknowledged (a re-sent event counts again).', labelNames: ['sink'] as const, registers: [registry] });
    this.failures = new Counter({ name: 'enclave_siem_delivery_failures_total', help: 'Failed SIEM deliveries (batches), retried with backoff.', labelNames: ['sink'] as const, registers: [registry] });
    const self = this;
    this.backlog = new Gauge({
      aggregator: 'first',
      name: 'enclave_siem_backlog_events',
      help: 'Audit events not yet delivered to a SIEM sink (newest audit seq minus the sink cursor).',
      labelNames: ['sink'] as const,
      registers: [registry],
      // Async collect (prom-client awaits it): the backlog is read from the database at scrape time.
      async collect() {
        const list = await sinks().list();
        this.reset();
        for (const s of list) {
          this.labels(s.name).set(s.backlog);
          self.delivered.labels(s.name).inc(0);
          self.failures.labels(s.name).inc(0);
        }
      },
    });
  }
}
