import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { request, type Dispatcher } from 'undici';
import type { Clock } from '../clock.js';
import { SIGNATURE_HEADER, signPayload, WEBHOOK_MAX_RESPONSE_BYTES } from '../metering/webhooks.js';
import { EgressRefused, guardedLookup, refusedIpHost, type EgressPolicy } from '../providers/egress.js';
import { guardedAgent } from '../providers/guarded-agent.js';
import { defaultSyslogHostname, octetFrame, syslogMessage, type SiemEvent } from './event.js';
import type { SyslogConfig, WebhookConfig } from './sinks.js';

/** Per delivery (one batch): connect, send, and the receiver's acknowledgement. */
export const DELIVERY_TIMEOUT_MS = 15_000;
export const WEBHOOK_EVENT = 'enclave.audit.batch';

/**
 * Syslog over TLS (RFC 5425), one connection per batch. TCP syslog has no acknowledgement in
 * the protocol, and a write that returned only means the bytes reached our kernel: a receiver
 * that died a moment ago would lose them silently. So the batch counts as delivered only when
 * the receiver has read it to the end: we send the frames, close our side (TLS close_notify +
 * FIN), and wait for the receiver to close its side — which a syslog server (and node's TLS
 * server) does once it has consumed the stream to EOF. A connection that breaks or times out
 * before that is a failed delivery and the batch is sent again (at-least-once).
 */
export async function sendSyslog(cfg: SyslogConfig, events: readonly SiemEvent[], egress: EgressPolicy, signal?: AbortSignal): Promise<void> {
  const refused = refusedIpHost(egress, cfg.host);
  if (refused) throw new EgressRefused(cfg.host, refused);
  const hostname = cfg.hostname ?? defaultSyslogHostname();
  const payload = Buffer.concat(events.map((e) => octetFrame(syslogMessage(e, hostname))));
  const ca = cfg.ca_file ? readFileSync(cfg.ca_file) : undefined;
  const cert = cfg.cert_file ? readFileSync(cfg.cert_file) : undefined;
  const key = cfg.key_file ? readFileSync(cfg.key_file) : undefined;
  const servername = cfg.server_name ?? (isIP(cfg.host) ? undefined : cfg.host);
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    let ended = false;
    const options: ConnectionOptions = {
      host: cfg.host,
      port: cfg.port,
      ...(servername ? { servername } : {}),
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      minVersion: 'TLSv1.2' as const,
      rejectUnauthorized: true,
      // node's LookupFunction overloads are narrower than the callback shape guardedLookup implements.
      lookup: guardedLookup(egress) as unknown as ConnectionOptions['lookup'],
    };
    const socket = tlsConnect(options);
    const done = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => done(new Error('syslog delivery aborted'));
    const timer = setTimeout(() => done(new Error(`syslog_timeout: the receiver did not confirm the batch within ${DELIVERY_TIMEOUT_MS} ms`)), DELIVERY_TIMEOUT_MS);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('secureConnect', () => {
      socket.end(payload);
    });
    socket.on('data', () => {
      /* receivers send nothing; drained so that 'end' can come */
    });
    socket.on('end', () => {
      ended = true;
    });
    socket.on('error', (e) => done(new Error(`syslog_unreachable: ${e.message}`)));
    socket.on('close', () => {
      // The receiver closed its side after our end: it read everything we sent.
      if (ended && socket.writableFinished) done();
      else done(new Error('syslog_unconfirmed: the connection closed before the receiver read the whole batch'));
    });
  });
}

const agents = new WeakMap<EgressPolicy, Dispatcher>();
function agentFor(policy: EgressPolicy): Dispatcher {
  let a = agents.get(policy);
  if (!a) {
    a = guardedAgent(policy, { connectTimeoutMs: 5_000, headersTimeoutMs: DELIVERY_TIMEOUT_MS, bodyTimeoutMs: DELIVERY_TIMEOUT_MS });
    agents.set(policy, a);
  }
  return a;
}

/**
 * HTTPS webhook: one POST per batch, `{"type":"enclave.audit.batch","sink":…,"events":[…]}`,
 * signed like the quota webhooks (server/metering/webhooks.ts):
 * `X-Enclave-Signature: t=<unix s>,v1=<hex hmac_sha256(secret, "<t>.<body>")>`. A 2xx answer
 * acknowledges the batch; anything else (3xx included: redirects are not followed), a timeout
 * or a refused address is a failed delivery.
 */
export async function sendWebhook(
  cfg: WebhookConfig,
  sink: { id: string; name: string },
  secret: string,
  events: readonly SiemEvent[],
  egress: EgressPolicy,
  clock: Clock,
  signal?: AbortSignal,
): Promise<void> {
  const body = JSON.stringify({ type: WEBHOOK_EVENT, sink: sink.name, events });
  const timeout = AbortSignal.timeout(DELIVERY_TIMEOUT_MS);
  let status: number;
  try {
    const res = await request(cfg.url, {
      method: 'POST',
      dispatcher: agentFor(egress),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Enclave-SIEM/1',
        'x-enclave-event': WEBHOOK_EVENT,
        // Stable per batch: a re-sent batch starting at the same seq carries the same first seq.
        'x-enclave-delivery': `${sink.id}:${events[0]?.seq ?? 0}-${events.at(-1)?.seq ?? 0}`,
        [SIGNATURE_HEADER]: signPayload(secret, body, clock.now() / 1000),
      },
      body,
    });
    status = res.statusCode;
    await res.body.dump({ limit: WEBHOOK_MAX_RESPONSE_BYTES }).catch(() => {});
  } catch (e) {
    throw new Error(`webhook_unreachable: ${(e as Error).message}`);
  }
  if (status < 200 || status >= 300) throw new Error(`webhook_rejected: the receiver answered HTTP ${status}`);
}

const attr = (key: string, v: string | number | null): { key: string; value: Record<string, string> } | undefined =>
  v === null ? undefined : { key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } };

/**
 * OTLP/HTTP logs, JSON encoding (the OpenTelemetry protocol's `ExportLogsServiceRequest`): one
 * log record per audit entry, body = the event JSON, attributes `enclave.audit.*` (seq, id,
 * hash, prev_hash, action, outcome, tenant), severity INFO (WARN for denied). Times are
 * nanoseconds as decimal strings (OTLP JSON's int64 encoding). A 2xx answer acknowledges the
 * batch; records a collector rejects as malformed (partialSuccess) are not sent again — they
 * would be rejected again — and are logged by the caller.
 */
export function otlpLogsBody(events: readonly SiemEvent[]): string {
  return JSON.stringify({
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'enclave' } }] },
        scopeLogs: [
          {
            scope: { name: 'enclave.audit' },
            logRecords: events.map((e) => ({
              timeUnixNano: `${e.at}000000`,
              severityNumber: e.outcome === 'denied' ? 13 : 9,
              severityText: e.outcome === 'denied' ? 'WARN' : 'INFO',
              body: { stringValue: JSON.stringify(e) },
              attributes: [
                attr('enclave.audit.seq', e.seq),
                attr('enclave.audit.id', e.id),
                attr('enclave.audit.hash', e.hash),
                attr('enclave.audit.prev_hash', e.prev_hash),
                attr('enclave.audit.action', e.action),
                attr('enclave.audit.outcome', e.outcome),
                attr('enclave.tenant.id', e.tenant_ref),
              ].filter((a) => a !== undefined),
            })),
          },
        ],
      },
    ],
  });
}

export async function sendOtlp(url: string, token: string | undefined, events: readonly SiemEvent[], egress: EgressPolicy, signal?: AbortSignal): Promise<{ rejected: number }> {
  const body = otlpLogsBody(events);
  const timeout = AbortSignal.timeout(DELIVERY_TIMEOUT_MS);
  let status: number;
  let text = '';
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agentFor(egress),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      headers: { 'content-type': 'application/json', 'user-agent': 'Enclave-SIEM/1', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body,
    });
    status = res.statusCode;
    if (status >= 200 && status < 300) {
      const buf = Buffer.from(await res.body.arrayBuffer());
      text = buf.subarray(0, WEBHOOK_MAX_RESPONSE_BYTES).toString('utf8');
    } else await res.body.dump({ limit: WEBHOOK_MAX_RESPONSE_BYTES }).catch(() => {});
  } catch (e) {
    throw new Error(`otlp_unreachable: ${(e as Error).message}`);
  }
  if (status < 200 || status >= 300) throw new Error(`otlp_rejected: the collector answered HTTP ${status}`);
  try {
    const r = JSON.parse(text || '{}') as { partialSuccess?: { rejectedLogRecords?: string | number } };
    return { rejected: Number(r.partialSuccess?.rejectedLogRecords ?? 0) || 0 };
  } catch {
    return { rejected: 0 };
  }
}
