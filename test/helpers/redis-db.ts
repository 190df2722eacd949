import { connect } from 'node:net';
import { inject } from 'vitest';

/**
 * The shared test Redis's databases, split between vitest's workers. A module of its own, apart
 * from app.ts: the per-file setup (setup-file.ts) needs only this, and importing app.ts there
 * loaded the whole server graph into every test file's process, unit tests included (seconds
 * each on a loaded 2-core machine).
 */
let dbCounter = 0;
/** vitest.config.ts maxWorkers: test files running at the same time are in different workers. */
const WORKERS = 2;
const DBS_PER_WORKER = 31;

/**
 * A database of the shared test Redis for one app or server process. Databases 1–62 are
 * split between vitest's workers (VITEST_POOL_ID is unique among workers running at the same
 * time), so two files running at once never share one: one file's FLUSHDB, queue jobs or
 * counters cannot reach another's. A file runs in a process of its own; the pid spreads
 * consecutive files of one worker over its range. 0 and 63 are left for tests that pick
 * their own.
 */
export function testRedisUrl(): string {
  const pool = Math.max(1, Number(process.env.VITEST_POOL_ID ?? 1));
  const db = 1 + ((pool - 1) % WORKERS) * DBS_PER_WORKER + ((process.pid * 7 + dbCounter++) % DBS_PER_WORKER);
  return `${inject('redisUrl')}/${db}`;
}

/**
 * Empties this worker's range of databases (test/helpers/setup-file.ts, before each file):
 * a file must not inherit an earlier file's keys in the same database number — BullMQ job
 * schedulers (whose kept next run made a worker's first job minutes late), queues, counters.
 */
export async function flushWorkerDatabases(): Promise<void> {
  const pool = Math.max(1, Number(process.env.VITEST_POOL_ID ?? 1));
  const first = 1 + ((pool - 1) % WORKERS) * DBS_PER_WORKER;
  const commands: string[][] = [];
  for (let db = first; db < first + DBS_PER_WORKER; db++) commands.push(['SELECT', String(db)], ['FLUSHDB']);
  await redisCommands(inject('redisUrl'), commands);
}

/**
 * Sends `commands` to the Redis at `url` in one write (RESP) and waits for as many replies,
 * failing on an error reply. Plain node:net rather than ioredis: this runs before every test
 * file, most of which never load ioredis otherwise (importing it costs ≈0.15 s of CPU quiet,
 * ≈0.6 s on a loaded machine, per file). Replies to SELECT and FLUSHDB are simple strings
 * (`+OK`), so counting lines is parsing enough.
 */
function redisCommands(url: string, commands: readonly (readonly string[])[]): Promise<void> {
  const { hostname, port } = new URL(url);
  const wire = commands.map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('');
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const fail = (e: Error) => {
      socket.destroy();
      reject(new Error(`emptying the test Redis databases at ${url}: ${e.message}`));
    };
    socket.setTimeout(10_000, () => fail(new Error('no answer within 10 s')));
    socket.on('error', fail);
    let replies = '';
    socket.on('data', (d: Buffer) => {
      replies += d.toString('latin1');
      const lines = replies.split('\r\n').slice(0, -1);
      const bad = lines.find((l) => !l.startsWith('+'));
      if (bad !== undefined) fail(new Error(`Redis answered ${bad}`));
      else if (lines.length >= commands.length) {
        socket.setTimeout(0);
        socket.end();
        resolve();
      }
    });
    socket.write(wire);
  });
}
