import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { APP_VERSION } from '../paths.js';

/** Seconds buckets for HTTP handling of non-AI routes (sub-millisecond to seconds). */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * One registry per process (per Services instance, so tests can build several), with every
 * instrument defined here. Names: `enclave_` prefix, base units, `_total` counters. Labels
 * are bounded: route templates, methods, status classes — never ids, e-mails or content.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly buildInfo = new Gauge({
    name: 'enclave_build_info',
    help: 'Build information; always 1.',
    labelNames: ['version', 'node_version'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'enclave_http_requests_total',
    help: 'HTTP requests handled, by route template, method and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'enclave_http_request_duration_seconds',
    help: 'Time to handle an HTTP request (until the response is finished), by route template.',
    labelNames: ['route', 'method'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.buildInfo.labels(APP_VERSION, process.versions.node).set(1);
  }

  observeHttp(route: string, method: string, status: number, seconds: number): void {
    this.httpRequests.labels(route, method, statusClass(status)).inc();
    this.httpDuration.labels(route, method).observe(seconds);
  }
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
