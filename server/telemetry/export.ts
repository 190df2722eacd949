import type { Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { BatchSpanProcessor, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Config } from '../config/settings.js';

/**
 * Export that never holds up a call: a finished span is pushed onto a bounded queue (the SDK's
 * BatchSpanProcessor) and the call goes on; batches leave every OTEL_BSP_SCHEDULE_DELAY ms (or
 * when 512 are waiting) over OTLP/HTTP. When the collector is slow or down the queue fills and
 * further spans are dropped — counted, never waited for:
 *
 * - `enclave_otel_spans_exported_total`: spans the collector accepted;
 * - `enclave_otel_spans_dropped_total{reason}`: `queue_full` (OTEL_BSP_MAX_QUEUE_SIZE spans were
 *   already waiting or being sent) or `export_failed` (the collector refused the batch or could
 *   not be reached, after the exporter's own retries within OTEL_EXPORTER_OTLP_TIMEOUT).
 *
 * The bound is enforced here, in front of the SDK's queue, counting queued plus in-flight
 * spans (the SDK drops silently past its own bound; this way every drop is counted).
 */
export function boundedExport(config: Config, url: string, o: { log: Logger; registry: Registry }): { processor: SpanProcessor } {
  const exported = new Counter({ name: 'enclave_otel_spans_exported_total', help: 'Trace spans the OpenTelemetry collector accepted.', registers: [o.registry] });
  const dropped = new Counter({
    name: 'enclave_otel_spans_dropped_total',
    help: 'Trace spans dropped instead of waiting: queue_full (the export queue was full) or export_failed (the collector refused or was unreachable).',
    labelNames: ['reason'] as const,
    registers: [o.registry],
  });
  const full = dropped.labels('queue_full');
  const failed = dropped.labels('export_failed');
  const headers = parseHeaders(config.otelHeaders);
  const options = { url, timeoutMillis: config.otelTimeout, ...(headers ? { headers } : {}) };
  const inner: SpanExporter = config.otelProtocol === 'http/json' ? new JsonExporter(options) : new ProtoExporter(options);
  let pending = 0;
  let lastWarn = 0;
  const counting: SpanExporter = {
    export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
      inner.export(spans, (r) => {
        pending -= spans.length;
        if (r.code === ExportResultCode.SUCCESS) exported.inc(spans.length);
        else {
          failed.inc(spans.length);
          const now = Date.now();
          if (now - lastWarn > 60_000) {
            lastWarn = now;
            o.log.warn({ endpoint: withoutCredentials(url), spans: spans.length, err: r.error?.message }, 'OpenTelemetry: the collector did not take a batch of spans; they are dropped (enclave_otel_spans_dropped_total)');
          }
        }
        done(r);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
  const max = config.otelBspMaxQueueSize;
  const batch = new BatchSpanProcessor({ exporter: counting, maxQueueSize: max, maxExportBatchSize: Math.min(512, max), scheduledDelayMillis: config.otelBspScheduleDelay });
  const processor: SpanProcessor = {
    onStart(_span: Span, _parent: Context): void {},
    onEnd(span: ReadableSpan): void {
      if ((span.spanContext().traceFlags & 1) === 0) return; // recorded, not sampled: never exported
      if (pending >= max) {
        full.inc();
        return;
      }
      pending++;
      batch.onEnd(span);
    },
    forceFlush: () => batch.forceFlush(),
    shutdown: () => batch.shutdown(),
  };
  return { processor };
}

/** OTEL_EXPORTER_OTLP_HEADERS: `k=v,k2=v2`, values URL-decoded (the OpenTelemetry format). */
export function parseHeaders(raw: string | undefined): Record<string, string> | undefined {
  if (!raw) return undefined;
  const out: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    const i = pair.indexOf('=');
    if (i <= 0) continue;
    const key = pair.slice(0, i).trim().toLowerCase();
    let value = pair.slice(i + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // Not URL-encoded after all: used as written.
    }
    if (key) out[key] = value;
  }
  return out;
}

/** A URL for the log: user:password@ (if someone put credentials there) left out. */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '[unparseable URL]';
  }
}
