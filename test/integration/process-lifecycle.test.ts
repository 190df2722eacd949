import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pingTcp } from '../../server/redis/ping.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const started: ServerProcess[] = [];
afterEach(() => {
  for (const p of started.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
});

async function server(opts: Parameters<typeof spawnServer>[0] = {}): Promise<ServerProcess> {
  const p = await spawnServer(opts);
  started.push(p);
  return p;
}

/** Opens a raw connection and sends a request whose body is only half there. */
function halfRequest(port: number): Promise<{ socket: net.Socket; response: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{"pad": "');
      let data = '';
      const response = new Promise<string>((done) => {
        socket.on('data', (d) => (data += d.toString()));
        socket.on('close', () => done(data));
      });
      resolve({ socket, response });
    });
    socket.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('process lifecycle', () => {
  it('SIGTERM lets an in-flight request finish, refuses new connections, exits 0', async () => {
    const p = await server();
    const { socket, response } = await halfRequest(p.port);
    await sleep(100);
    p.child.kill('SIGTERM');
    await sleep(300);
    expect(p.child.exitCode).toBeNull(); // still draining
    expect(await pingTcp('127.0.0.1', p.port, 300)).toBe(false); // not accepting
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
    await sleep(100);
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
    const end = Date.now() + 30_000;
    while (!p.logs.some((l) => l.msg === 'started embedded redis-server') && Date.now() < end) await sleep(5);
    const state = JSON.parse(readFileSync(path.join(p.dataDir, 'redis', 'state.json'), 'utf8')) as { port: number };
    p.child.kill('SIGTERM'); // before "enclave ready"
    expect((await p.exited()).code).toBe(0);
    expect(p.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(await pingTcp('127.0.0.1', state.port)).toBe(false);
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
