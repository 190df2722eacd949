import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pingTcp } from '../../server/redis/ping.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tempDir } from '../helpers/app.js';
import { startPrivateRedis } from '../helpers/redis.js';
import path from 'node:path';
import { pidAlive } from '../../server/ops/pid-alive.js';

const started: ServerProcess[] = [];
afterEach(() => {
  for (const p of started.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
});

async function server(opts: Parameters<typeof spawnServer>[0] = {}): Promise<ServerProcess> {
  const p = await spawnServer(opts);
  started.push(p);
  return p;
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/**
 * Opens a raw connection and sends a request whose body is only half there. Resolves once the
 * server has parsed the request (it answered `Expect: 100-continue`), so the request is in
 * flight however slow the machine; `response` is what follows the 100 Continue.
 */
function halfRequest(port: number): Promise<{ socket: net.Socket; response: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 21\r\nExpect: 100-continue\r\n\r\n');
      let data = '';
      let inFlight = false;
      const response = new Promise<string>((done) => {
        socket.on('data', (d) => {
          data += d.toString();
          if (!inFlight && data.startsWith(CONTINUE)) {
            inFlight = true;
            data = data.slice(CONTINUE.length);
            socket.write('{"pad": "', () => resolve({ socket, response }));
          }
        });
        socket.on('close', () => (inFlight ? done(data) : reject(new Error(`closed before 100 Continue: ${data}`))));
      });
    });
    socket.on('error', reject);
  });
}


describe('process lifecycle', () => {
  it('SIGTERM lets an in-flight request finish, refuses new connections, exits 0', async () => {
    const p = await server();
    const { socket, response } = await halfRequest(p.port);
    p.child.kill('SIGTERM');
    await waitFor(() => pingTcp('127.0.0.1', p.port, 300), { until: (up) => !up, what: 'the server no longer accepting connections' });
    expect(p.child.exitCode).toBeNull(); // still draining
    socket.write('0123456789"}');
    const text = await response;
    expect(text).toMatch(/^HTTP\/1\.1 404/);
    expect(text).toContain('"code":"route_not_found"');
    expect(text.toLowerCase()).toContain('connection: close');
    expect(await p.exited()).toEqual({ code: 0, signal: null });
    expect(p.logs.some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('closes requests still open at the shutdown deadline and still exits 0', async () => {
    const p = await server({ env: { ENCLAVE_SHUTDOWN_TIMEOUT_MS: '400' } });
    const { response } = await halfRequest(p.port);
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    await response; // the server closed the socket
    expect(await p.exited()).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(p.logs.some((l) => String(l.msg).includes('shutdown deadline'))).toBe(true);
  });

  it('embedded mode starts redis-server in the data dir and stops it on shutdown', async () => {
    const p = await server({ env: { REDIS_URL: undefined }, role: 'all' });
    const ready = await fetch(`${p.url}/readyz`);
    expect(ready.status).toBe(200);
    const state = JSON.parse(readFileSync(path.join(p.dataDir, 'redis', 'state.json'), 'utf8')) as { port: number };
    expect(await pingTcp('127.0.0.1', state.port)).toBe(true);
    p.child.kill('SIGTERM');
    expect((await p.exited()).code).toBe(0);
    expect(await pingTcp('127.0.0.1', state.port)).toBe(false);
  });

  it('SIGTERM during start-up (after the embedded redis-server started) still stops cleanly: exit 0, no redis left behind', async () => {
    const p = await server({ env: { REDIS_URL: undefined }, role: 'all', waitReady: false });
    await waitFor(() => p.logs.some((l) => l.msg === 'started embedded redis-server'), { timeout: 30_000, interval: 5, what: 'the embedded redis-server started' });
    const state = JSON.parse(readFileSync(path.join(p.dataDir, 'redis', 'state.json'), 'utf8')) as { port: number };
    p.child.kill('SIGTERM'); // before "enclave ready"
    expect((await p.exited()).code).toBe(0);
    expect(p.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(await pingTcp('127.0.0.1', state.port)).toBe(false);
  });

  it('a SIGKILLed Enclave does not leave its embedded redis-server behind (the watchdog stops it)', async () => {
    const p = await server({ env: { REDIS_URL: undefined }, role: 'all' });
    const state = JSON.parse(readFileSync(path.join(p.dataDir, 'redis', 'state.json'), 'utf8')) as { pid: number; owner: number };
    expect(state.owner).toBe(p.child.pid);
    expect(pidAlive(state.pid)).toBe(true);
    p.child.kill('SIGKILL');
    await p.exited();
    await waitFor(() => pidAlive(state.pid), { until: (up) => !up, what: `redis-server ${state.pid} gone after its owner was killed` });
  });

  it('the next start stops a stale embedded redis-server that is ours and whose owner is gone', async () => {
    const dataDir = tempDir();
    const dir = path.join(dataDir, 'redis');
    mkdirSync(dir, { recursive: true });
    // A leftover as an older Enclave (no watchdog) left it: running in our redis dir, its owner dead.
    const stale = await startPrivateRedis({ args: ['--dir', dir] });
    const gone = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => gone.once('exit', r));
    writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ port: stale.port, pid: stale.child!.pid, owner: gone.pid }));
    try {
      const p = await server({ env: { REDIS_URL: undefined, ENCLAVE_DATA_DIR: dataDir }, role: 'all' });
      expect(p.logs.some((l) => String(l.msg).startsWith('stopping an embedded redis-server left behind'))).toBe(true);
      expect(stale.child!.exitCode !== null || stale.child!.signalCode !== null).toBe(true);
      const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as { pid: number; owner: number };
      expect(state).toMatchObject({ owner: p.child.pid });
      expect(state.pid).not.toBe(stale.child!.pid);
      expect((await fetch(`${p.url}/readyz`)).status).toBe(200);
      p.child.kill('SIGTERM');
      expect((await p.exited()).code).toBe(0);
    } finally {
      await stale.close();
    }
  });

  it('without REDIS_URL and without redis-server: exits with one line naming both fixes', async () => {
    const p = await server({ env: { REDIS_URL: undefined, ENCLAVE_REDIS_SERVER_BIN: '/nonexistent/redis-server' }, waitReady: false });
    const { code } = await p.exited();
    expect(code).toBe(2);
    const lines = p.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^enclave: Redis is required: set REDIS_URL=.*install redis-server/);
  });

  it('an invalid setting refuses start-up with one line and exit code 2', async () => {
    const p = await server({ env: { PORT: 'not-a-port' }, waitReady: false });
    expect((await p.exited()).code).toBe(2);
    expect(p.stderr().trim()).toMatch(/^enclave: invalid PORT: .*; set it to a number between 0 and 65535$/);
  });

  it('a wrong master key for an existing database refuses start-up and says why', async () => {
    const first = await server();
    first.child.kill('SIGTERM');
    await first.exited();
    const second = await server({ env: { ENCLAVE_DATA_DIR: first.dataDir }, waitReady: false });
    expect((await second.exited()).code).toBe(2);
    expect(second.stderr()).toMatch(/master key does not decrypt this database's secrets .*ENCLAVE_PREVIOUS_MASTER_KEYS/);
  });
});
