import type { Command } from 'commander';
import pino from 'pino';
import { systemClock } from '../../server/clock.js';
import { resolveMasterKey } from '../../server/config/master-key.js';
import { egressPolicy } from '../../server/providers/egress.js';
import { toEvent } from '../../server/siem/event.js';
import { sendTo } from '../../server/siem/forwarder.js';
import { SiemSinks, SINK_KINDS, type SinkKind } from '../../server/siem/sinks.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';
import { readStdin, withIdentity, type CliIdentity } from './admin.js';

/**
 * `enclave siem sinks add|list|remove|enable|disable|test`: where the audit log is streamed
 * (docs/siem.md). Platform configuration on the database directly, audited as system:cli; the
 * worker's forwarder picks changes up at its next poll (≤ 1 s).
 */
function withSinks<T>(fn: (sinks: SiemSinks, c: CliIdentity) => Promise<T> | T): Promise<T> {
  return withIdentity((c) => {
    const config = cliConfig();
    const master = resolveMasterKey(config, pino({ level: 'silent' }));
    return fn(new SiemSinks(c.store, master.box, systemClock, c.identity.audit, egressPolicy(config.tenantProviderNetworks)), c);
  });
}

interface AddOpts {
  name: string;
  kind: string;
  host?: string;
  port?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  hostname?: string;
  url?: string;
  tokenStdin?: boolean;
  from?: string;
  json?: boolean;
}

function configOf(o: AddOpts): Record<string, unknown> {
  if (o.kind === 'webhook' || o.kind === 'otlp') {
    if (!o.url) throw new CliError(`a ${o.kind} sink needs --url https://…`, 2);
    for (const k of ['host', 'port', 'caFile', 'certFile', 'keyFile', 'serverName', 'hostname'] as const) if (o[k] !== undefined) throw new CliError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for syslog sinks`, 2);
    return { url: o.url };
  }
  if (o.url) throw new CliError('--url is for webhook sinks (syslog takes --host and --port)', 2);
  if (!o.host) throw new CliError('a syslog sink needs --host (and --port, default 6514)', 2);
  const port = o.port === undefined ? undefined : Number(o.port);
  if (port !== undefined && !Number.isInteger(port)) throw new CliError('--port must be an integer', 2);
  return {
    host: o.host,
    ...(port !== undefined ? { port } : {}),
    ...(o.caFile ? { ca_file: o.caFile } : {}),
    ...(o.certFile ? { cert_file: o.certFile } : {}),
    ...(o.keyFile ? { key_file: o.keyFile } : {}),
    ...(o.serverName ? { server_name: o.serverName } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
  };
}

export function registerSiem(program: Command): void {
  const siem = program.command('siem').description('stream the audit log to SIEMs (Splunk, Elastic, Sentinel): syslog over TLS or signed HTTPS webhooks');
  const sinks = siem.command('sinks').description('where the audit log is streamed (at-least-once, in order; docs/siem.md)');
  sinks
    .command('add')
    .description('add a sink; a webhook sink prints its signing secret once')
    .requiredOption('--name <name>', 'sink name (lower case; the metrics label)')
    .requiredOption('--kind <kind>', `${SINK_KINDS.join(' or ')}`)
    .option('--host <host>', 'syslog: receiver host')
    .option('--port <port>', 'syslog: receiver port (default 6514)')
    .option('--ca-file <pem>', "syslog: CA that signed the receiver's certificate (default: the system CAs)")
    .option('--cert-file <pem>', 'syslog: client certificate (mutual TLS, with --key-file)')
    .option('--key-file <pem>', 'syslog: client key (mutual TLS)')
    .option('--server-name <name>', "syslog: name in the receiver's certificate when it is not --host")
    .option('--hostname <name>', 'syslog: HOSTNAME field of the messages (default: this host)')
    .option('--url <url>', 'webhook: https:// URL the batches are POSTed to; otlp: the collector\'s OTLP/HTTP logs URL (…/v1/logs)')
    .option('--token-stdin', 'otlp: read a bearer token for the collector from standard input (stored encrypted)')
    .option('--from <where>', 'start: the whole audit log (default); now: only entries from now on', 'start')
    .option('--json', 'print JSON (a webhook secret in `secret`)')
    .action((o: AddOpts) =>
      withSinks(async (s, c) => {
        if (!(SINK_KINDS as readonly string[]).includes(o.kind)) throw new CliError(`--kind must be ${SINK_KINDS.join(' or ')}`, 2);
        if (o.from !== 'start' && o.from !== 'now') throw new CliError('--from must be start or now', 2);
        if (o.tokenStdin && o.kind !== 'otlp') throw new CliError('--token-stdin is for otlp sinks', 2);
        const token = o.tokenStdin ? await readStdin() : undefined;
        const r = await s.add(c.ctx, { name: o.name, kind: o.kind as SinkKind, config: configOf(o), from: o.from, ...(token !== undefined ? { token } : {}) });
        if (o.json) return printJson({ ...r.sink, ...(r.secret ? { secret: r.secret } : {}) });
        process.stdout.write(`added SIEM sink ${r.sink.name} (${r.sink.id}), ${r.sink.backlog} audit entries to deliver\n`);
        if (r.secret) process.stdout.write(`signing secret (X-Enclave-Signature, HMAC-SHA256), shown only this once:\n${r.secret}\n`);
      }),
    );
  sinks
    .command('list')
    .description('sinks with their backlog, cursor and last error')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) =>
      withSinks(async (s) => {
        const rows = await s.list();
        if (o.json) printJson(rows);
        else printTable(rows, ['name', 'kind', 'enabled', 'backlog', 'cursor_seq', 'failures', 'last_success_at', 'last_error']);
      }),
    );
  sinks
    .command('remove <name>')
    .description('remove a sink (its undelivered backlog is not sent)')
    .option('--json', 'print JSON')
    .action((name: string, o: { json?: boolean }) =>
      withSinks(async (s, c) => {
        const v = await s.remove(c.ctx, name);
        if (o.json) printJson(v);
        else process.stdout.write(`removed SIEM sink ${v.name} (${v.backlog} entries were not delivered)\n`);
      }),
    );
  for (const [cmd, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    sinks
      .command(`${cmd} <name>`)
      .description(enabled ? 'resume delivery (also clears the backoff); the backlog is sent' : 'pause delivery; the audit log keeps the backlog')
      .option('--json', 'print JSON')
      .action((name: string, o: { json?: boolean }) =>
        withSinks(async (s, c) => {
          const v = await s.setEnabled(c.ctx, name, enabled);
          if (o.json) printJson(v);
          else process.stdout.write(`${v.name}: ${enabled ? 'enabled' : 'disabled'} (backlog ${v.backlog})\n`);
        }),
      );
  }
  sinks
    .command('test <name>')
    .description('send the newest audit entry to the sink now (outside its cursor; receivers de-duplicate by id) and report the result')
    .option('--json', 'print JSON')
    .action((name: string, o: { json?: boolean }) =>
      withSinks(async (s, c) => {
        const sink = await s.get(name);
        const newest = (await c.identity.audit.list({ limit: 1 }))[0];
        if (!newest) throw new CliError('the audit log is empty: nothing to send', 1);
        const config = cliConfig();
        let error: string | null = null;
        try {
          await sendTo({ sinks: s, egress: egressPolicy(config.tenantProviderNetworks), clock: systemClock }, sink, [toEvent(newest)]);
        } catch (e) {
          error = (e as Error).message;
        }
        await s.recordTest(c.ctx, sink, error);
        if (o.json) printJson({ name: sink.name, ok: error === null, seq: newest.seq, ...(error ? { error } : {}) });
        else if (!error) process.stdout.write(`${sink.name}: delivered audit entry ${newest.seq} (${newest.id})\n`);
        if (error) throw new CliError(`${sink.name}: delivery failed: ${error}`, 1);
      }),
    );
}
