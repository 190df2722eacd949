import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueServerCert } from '../../installer/tls.js';
import { unrestricted } from '../../server/access/entitlements.js';
import { createServices, type Services } from '../../server/app.js';
import type { SiemEvent } from '../../server/siem/event.js';
import { lockKey } from '../../server/siem/forwarder.js';
import { SyslogReceiver } from '../fakes/syslog-receiver.js';
import { testConfig } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The forwarder as the worker role runs it (server/jobs/runtime.ts): two real worker processes
 * on one data dir and Redis, one syslog-over-TLS sink. Exactly one of them delivers (the Redis
 * lock names it): every audit entry arrives once, in order. When that worker stops (SIGTERM,
 * graceful: it releases the lock), the other one takes over and nothing is lost.
 */
let s: Services;
let rx: SyslogReceiver;
let env: Record<string, string>;
let dataDir: string;
const started: ServerProcess[] = [];

beforeAll(async () => {
  const ca = createCa('siem worker CA');
  const leaf = issueServerCert(ca, ['127.0.0.1']);
  rx = await new SyslogReceiver({ key: leaf.keyPem, cert: leaf.certPem }).start(0);
  // The receiver is on loopback: allowed here on purpose.
  const config = testConfig({ ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' });
  dataDir = config.dataDir;
  const caFile = path.join(dataDir, 'siem-ca.pem');
  writeFileSync(caFile, ca.certPem);
  env = { ENCLAVE_DATA_DIR: dataDir, REDIS_URL: config.redisUrl!, ENCLAVE_MASTER_KEY: config.masterKey!, ENCLAVE_TENANT_PROVIDER_NETWORKS: '127.0.0.0/8' };
  // This process writes audit entries into the shared database while the workers run.
  s = await createServices(config, { log: pino({ level: 'silent' }), passwordLogN: 10, entitlements: unrestricted });
  await s.siem.sinks.add(sys(s), { name: 'soc', kind: 'syslog', config: { host: '127.0.0.1', port: rx.port, ca_file: caFile } });
});

afterAll(async () => {
  for (const p of started) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited();
  }
  await s?.close();
  await rx?.kill();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function worker(): Promise<ServerProcess> {
  const w = await spawnServer({ role: 'worker', env });
  started.push(w);
  return w;
}

const seqs = (): number[] => rx.events<SiemEvent>().map((e) => e.seq);
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('SIEM forwarder in worker processes', { timeout: 120_000 }, () => {
  it('two workers: one delivers, each entry once and in order; the other takes over when it stops', async () => {
    const [a, b] = await Promise.all([worker(), worker()]);
    await seedTenant(s, 'mike', ['owner', 'member']);
    let head = await s.siem.sinks.headSeq();
    await waitFor(() => seqs().length, { what: `${head} entries at the receiver`, until: (n) => n >= head });
    const holder = await s.redis.get(lockKey((await s.siem.sinks.get('soc')).id));
    const holderProc = [a!, b!].find((p) => holder?.includes(`_${p.child.pid}_`));
    expect(holderProc, `lock holder ${holder}`).toBeDefined();
    holderProc!.child.kill('SIGTERM');
    expect((await holderProc!.exited()).code).toBe(0);
    await seedTenant(s, 'november', ['owner']);
    head = await s.siem.sinks.headSeq();
    await waitFor(() => seqs().length, { what: `${head} entries after the takeover`, until: (n) => n >= head });
    const other = await s.redis.get(lockKey((await s.siem.sinks.get('soc')).id));
    expect(other).not.toBe(holder);
    // Each entry exactly once (a graceful handover), in order.
    expect(seqs()).toEqual(upTo(head));
    expect(rx.errors).toEqual([]);
  });
});
