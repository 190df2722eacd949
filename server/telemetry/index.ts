import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from '../config/settings.js';
import type { RequestContext } from '../context.js';
import type { CallState, GatewayCall } from '../gateway/call.js';
import type { ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse } from '../providers/index.js';
import type { Deployment } from '../routing/catalogue.js';

/**
 * OpenTelemetry traces (issue 25): a span for each /v1 HTTP request, for each gateway call and
 * its stages (plan, admission, attempt), for each upstream try (whose context goes upstream as
 * `traceparent`) and for each worker job, with the GenAI semantic conventions plus `enclave.*`
 * attributes — never prompts, completions or keys (docs/observability.md).
 *
 * This file is all the rest of the server sees, and it imports nothing from OpenTelemetry:
 * with no collector configured startTelemetry() returns undefined, the SDK is never loaded,
 * and each hot-path site is one `if (telemetry)` / `st.otel?.` check. With one configured
 * the SDK (./sdk.ts) is imported once at start.
 */
export interface Telemetry {
  /** Runs a request (authentication, body, handler) inside its server span; the client's `traceparent` is the parent. */
  http<T>(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, route: string, fn: () => Promise<T>): Promise<T>;
  /** The spans of one gateway call (parent: the active request or job span). */
  call(ctx: RequestContext, call: GatewayCall): OtelCall;
  /** Runs a worker job inside its span (the gateway calls it makes are its children). */
  job<T>(job: JobInfo, fn: () => Promise<T>): Promise<T>;
  /** Exports what is queued (bounded in time: a dead collector does not hold up shutdown). */
  shutdown(): Promise<void>;
}

export interface JobInfo {
  readonly lane: string;
  readonly name: string;
  readonly id: string;
  readonly tenantId: string | undefined;
  readonly attempt: number;
}

/** One gateway call's spans, held in its CallState (`st.otel`). */
export interface OtelCall {
  /** The pipeline moved on to the next stage (plan is the first): ends the previous stage's span. */
  stage(name: 'admission' | 'attempt'): void;
  /** One upstream try inside its client span; the span is active (→ `traceparent`) while `fn` sends. */
  upstream<T>(deployment: Deployment, model: string, fn: () => Promise<T>): Promise<T>;
  /** A whole answer arrived (response model, finish reasons). */
  answer(body: ChatCompletion | CreateEmbeddingResponse): void;
  /** A streamed chunk went to the face (response model, finish reasons). */
  chunk(c: ChatCompletionChunk): void;
  /** The call is over (its usage record is made): final attributes, every open span ended. */
  end(st: CallState): void;
}

/** Where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
export function tracesUrl(config: Pick<Config, 'otelEndpoint' | 'otelTracesEndpoint' | 'otelSdkDisabled'>): string | undefined {
  if (config.otelSdkDisabled) return undefined;
  if (config.otelTracesEndpoint) return config.otelTracesEndpoint;
  if (!config.otelEndpoint) return undefined;
  return `${config.otelEndpoint.replace(/\/+$/, '')}/v1/traces`;
}

/** Tracing for this process, or undefined (nothing loaded, nothing exported) when no collector is configured. */
export async function startTelemetry(config: Config, o: { log: Logger; registry: Registry }): Promise<Telemetry | undefined> {
  const url = tracesUrl(config);
  if (!url) return undefined;
  const { createTelemetry } = await import('./sdk.js');
  return createTelemetry(config, url, o);
}
