import { trace, type Context, type Span } from '@opentelemetry/api';
import type { ActiveSpan } from './active.js';

/** The active-span record of `span` under `parent`: what its children and an upstream request need. */
export function activeRecord(parent: Context, span: Span): ActiveSpan {
  const sc = span.spanContext();
  return {
    context: trace.setSpan(parent, span),
    traceparent: `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`,
  };
}
