import { hostname } from 'node:os';
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/settings.js';
import { AppError, toAppError } from '../errors.js';
import { APP_VERSION } from '../paths.js';
import { attach, withActive } from './active.js';
import { activeRecord as active } from './span-context.js';
import { callTrace } from './call-trace.js';
import { boundedExport, withoutCredentials } from './export.js';
import type { JobInfo, Telemetry } from './index.js';

/**
 * The OpenTelemetry SDK behind Telemetry (loaded only when a collector is configured): one
 * TracerProvider per process (not registered as the global one: several apps may share a test
 * process, and nothing else here reads the global), a sampler from OTEL_TRACES_SAMPLER, the
 * W3C propagator for the client's `traceparent`, and the bounded batch export (./export.ts).
 * Context moves through ./active.ts (an AsyncLocalStorage of our own), so no context manager
 * is installed either.
 */
export function createTelemetry(config: Config, url: string, o: { log: Logger; registry: Registry }): Telemetry {
  const exported = boundedExport(config, url, o);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': config.otelServiceName,
      'service.version': APP_VERSION,
      'service.instance.id': `${hostname()}:${process.pid}`,
    }),
    sampler: samplerOf(config.otelSampler, config.otelSamplerArg),
    // A cap on any attribute value (a client-chosen model name, say) and on attributes per span.
    spanLimits: { attributeValueLengthLimit: 256, attributeCountLimit: 64 },
    spanProcessors: [exported.processor],
  });
  const tracer = provider.getTracer('enclave', APP_VERSION);
  const detach = attach();
  const propagator = new W3CTraceContextPropagator();
  o.log.info({ endpoint: withoutCredentials(url), protocol: config.otelProtocol, sampler: config.otelSampler }, 'OpenTelemetry: exporting traces');
  return {
    http: (ctx, req, res, route, fn) => {
      const method = req.method ?? 'GET';
      const parent = propagator.extract(ROOT_CONTEXT, req.headers, headerGetter);
      const attributes: Attributes = { 'http.request.method': method, 'http.route': route, 'url.scheme': 'http', 'enclave.request_id': ctx.requestId };
      const span = tracer.startSpan(`${method} ${route}`, { kind: SpanKind.SERVER, attributes }, parent);
      const done = (status: number): void => {
        // Known once the request is authenticated (a refused one has none).
        if (ctx.tenant) span.setAttribute('enclave.tenant.id', ctx.tenant.id);
        span.setAttribute('http.response.status_code', status);
        if (status >= 500) {
          span.setAttribute('error.type', String(status));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      };
      return withActive(active(parent, span), fn).then(
        (v) => {
          done(res.statusCode);
          return v;
        },
        (e: unknown) => {
          // The handler answers its own errors; one that escapes is answered by the caller with its status.
          done(toAppError(e).status);
          throw e;
        },
      );
    },
    call: (ctx, call) => callTrace(tracer, ctx, call),
    job: (job, fn) => runJob(tracer, job, fn),
    shutdown: async () => {
      detach();
      // The last spans leave now; a collector that does not answer costs at most 2 s here.
      await Promise.race([provider.shutdown().catch(() => undefined), new Promise<void>((r) => setTimeout(r, 2000).unref())]);
    },
  };
}

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (h) => Object.keys(h),
  get: (h, key) => h[key],
};

/**
 * A worker job as a consumer span (messaging conventions: `process <lane>`); the gateway calls
 * of a batch's lines and an ingestion's embeddings are its children.
 */
async function runJob<T>(tracer: Tracer, job: JobInfo, fn: () => Promise<T>): Promise<T> {
  const attributes: Attributes = {
    'messaging.system': 'bullmq',
    'messaging.operation.type': 'process',
    'messaging.destination.name': job.lane,
    'messaging.message.id': job.id,
    'enclave.job.name': job.name,
    'enclave.job.attempt': job.attempt,
  };
  if (job.tenantId) attributes['enclave.tenant.id'] = job.tenantId;
  const span = tracer.startSpan(`process ${job.lane}`, { kind: SpanKind.CONSUMER, attributes }, ROOT_CONTEXT);
  try {
    return await withActive(active(ROOT_CONTEXT, span), fn);
  } catch (e) {
    if ((e as Error)?.name === 'DelayedError') {
      // defer(): back in the queue to run later, not a failure.
      span.setAttribute('enclave.job.deferred', true);
      throw e;
    }
    // The kind of failure only: a job's error message can quote what it was processing.
    span.setAttribute('error.type', e instanceof AppError ? e.code : e instanceof Error ? e.name : 'error');
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw e;
  } finally {
    span.end();
  }
}

/** OTEL_TRACES_SAMPLER (+ _ARG) as the SDK's samplers, as the OpenTelemetry specification defines them. */
export function samplerOf(name: Config['otelSampler'], arg: number | undefined): Sampler {
  const ratio = arg ?? 1;
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}
