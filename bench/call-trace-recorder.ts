/**
 * Cost of a call trace (issue 25), in isolation from the noisy end-to-end bench: the recorder
 * calls one AI call makes on the call path (begin, classification, candidates, plan, admission,
 * one attempt, end) and, separately, what the batched writer does per call off the call path
 * (the row and its JSON document). No database, no network: CPU time per call on this machine.
 *
 *   node --import tsx bench/call-trace-recorder.ts [--n 200000]
 */
import { performance } from 'node:perf_hooks';
import { CallTrace } from '../server/traces/recorder.js';
import { toRowForBench } from '../server/traces/service.js';
import type { Candidate, Deployment } from '../server/routing/catalogue.js';
import type { TenantPolicy } from '../server/routing/policy.js';
import type { UsageRow } from '../server/db/repos/usage.js';
import type { RequestContext } from '../server/context.js';
import type { Reservation } from '../server/metering/admission.js';

const n = (() => {
  const i = process.argv.indexOf('--n');
  return i > 0 ? Number(process.argv[i + 1]) : 200_000;
})();

const dep = (name: string): Deployment => ({ id: `prv_${name}`, name, boundary: 'private' }) as unknown as Deployment;
const cands: Candidate[] = [{ deployment: dep('a'), model: 'm', type: 'chat', priority: 1, weight: 1 }, { deployment: dep('b'), model: 'm', type: 'chat', priority: 2, weight: 1 }];
const policy = { keyFloors: {}, defaultClassification: undefined } as unknown as TenantPolicy;
const ctx = { principal: { kind: 'api_key', id: 'key_1', keyId: 'key_1' } } as unknown as RequestContext;
const reservation = { store: 'lease', levels: [{ level: 'tenant', id: 't', rpm: 600, tpm: -1, conc: -1, mtok: 1_000_000, mcost: -1 }], stats: [{ rpmRemaining: 599, rpmResetMs: 0, tpmRemaining: -1, tpmResetMs: 0, inFlight: -1, monthTokens: 10, monthCost: -1 }] } as unknown as Reservation;
const row = { id: 'use_1', tenantId: 'ten_1', requestId: 'req_1', userId: null, keyId: 'key_1', workflow: null, endpoint: 'chat', api: 'chat', alias: 'm', deploymentId: 'prv_a', provider: 'openai', model: 'm', boundary: 'private', classification: 'internal', policy: '{}', promptTokens: 12, completionTokens: 30, tokensEstimated: false, costMicros: 40, latencyMs: 12, ttftMs: null, stream: false, attempts: 1, status: 'ok', httpStatus: 200, errorCode: null, createdAt: Date.now() } as UsageRow;
const body = { model: 'm', messages: [{ role: 'user', content: 'hello' }], temperature: 0.2, max_tokens: 100 };

function onPath(): CallTrace {
  const t = new CallTrace(performance.now());
  t.classified(ctx, policy, { classification: 'internal', clamped: false });
  t.candidates(cands, cands, () => 'policy');
  t.plannedWith(cands);
  t.admitted(reservation);
  t.tryStart(cands[0]!.deployment, 'm');
  t.tryEnd();
  t.end();
  return t;
}

for (let i = 0; i < 20_000; i++) toRowForBench({ trace: onPath(), row, stream: false, policy: {}, redacted: undefined, body });
let t0 = performance.now();
let c0 = process.cpuUsage();
const traces: CallTrace[] = new Array(n);
for (let i = 0; i < n; i++) traces[i] = onPath();
let c1 = process.cpuUsage(c0);
const pathUs = ((c1.user + c1.system) / n).toFixed(2);
const pathWall = (((performance.now() - t0) * 1000) / n).toFixed(2);
t0 = performance.now();
c0 = process.cpuUsage();
let bytes = 0;
for (let i = 0; i < n; i++) bytes += toRowForBench({ trace: traces[i]!, row, stream: false, policy: {}, redacted: undefined, body }).trace.length;
c1 = process.cpuUsage(c0);
console.log(`call path (recorder calls of one call): ${pathUs} µs CPU per call (${pathWall} µs wall), n=${n}`);
console.log(`off the call path (row + JSON document): ${((c1.user + c1.system) / n).toFixed(2)} µs CPU per call (${(((performance.now() - t0) * 1000) / n).toFixed(2)} µs wall), document ${Math.round(bytes / n)} bytes`);
