import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeMessage, EventStreamError, readEventStream } from '../../server/providers/bedrock/event-stream.js';
import { encodeMessage } from '../fakes/fake-bedrock.js';

/**
 * The AWS event-stream framing: a message split at every byte decodes the same; both CRCs
 * are checked; header types of the spec decode; a cut-off stream is an error.
 */
async function* pieces(b: Buffer, at: number[]): AsyncGenerator<Buffer> {
  let from = 0;
  for (const i of [...at, b.length]) {
    yield b.subarray(from, i);
    from = i;
  }
}
async function all(src: AsyncIterable<Buffer>) {
  const out = [];
  for await (const m of readEventStream(src)) out.push({ headers: m.headers, payload: m.payload.toString('utf8') });
  return out;
}

const ev = (type: string, body: unknown): Buffer =>
  encodeMessage({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));

describe('AWS event-stream decoder', () => {
  const a = ev('messageStart', { role: 'assistant' });
  const b = ev('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'héllo' } });
  const both = Buffer.concat([a, b]);
  const expected = [
    { headers: { ':event-type': 'messageStart', ':content-type': 'application/json', ':message-type': 'event' }, payload: '{"role":"assistant"}' },
    { headers: { ':event-type': 'contentBlockDelta', ':content-type': 'application/json', ':message-type': 'event' }, payload: '{"contentBlockIndex":0,"delta":{"text":"héllo"}}' },
  ];

  it('decodes two messages split at every byte boundary (and in three pieces)', async () => {
    for (let i = 1; i < both.length; i++) expect(await all(pieces(both, [i])), `split at ${i}`).toEqual(expected);
    expect(await all(pieces(both, [3, a.length + 5]))).toEqual(expected);
  });

  it('a corrupted payload byte fails the message CRC', async () => {
    const bad = Buffer.from(both);
    bad[a.length - 6]! ^= 0x01; // inside the first message's payload
    await expect(all(pieces(bad, []))).rejects.toThrow(/message CRC mismatch/);
  });

  it('a corrupted length fails the prelude CRC before the length is trusted', async () => {
    const bad = Buffer.from(both);
    bad.writeUInt32BE(0x7fffffff, 0);
    await expect(all(pieces(bad, [20]))).rejects.toThrow(/prelude CRC mismatch/);
  });

  it('a wrong message CRC field is refused', () => {
    const bad = Buffer.from(a);
    bad.writeUInt32BE((bad.readUInt32BE(bad.length - 4) + 1) >>> 0, bad.length - 4);
    expect(() => decodeMessage(bad)).toThrow(EventStreamError);
  });

  it('a stream cut inside a message is an error, not a short answer', async () => {
    await expect(all(pieces(both.subarray(0, both.length - 3), [10]))).rejects.toThrow(/ended inside a message/);
  });

  it('an impossible length with a valid prelude CRC is refused', async () => {
    const p = Buffer.alloc(16);
    p.writeUInt32BE(8, 0); // shorter than a prelude and a CRC
    p.writeUInt32BE(0, 4);
    p.writeUInt32BE(crc32(p.subarray(0, 8)), 8);
    await expect(all(pieces(p, []))).rejects.toThrow(/length 8 is invalid/);
  });

  it('decodes every header value type of the spec', () => {
    const h: Buffer[] = [];
    const name = (n: string, type: number): Buffer => Buffer.concat([Buffer.from([n.length]), Buffer.from(n), Buffer.from([type])]);
    h.push(name('t', 0), name('f', 1));
    h.push(name('b', 2), Buffer.from([0xff]));
    const s16 = Buffer.alloc(2);
    s16.writeInt16BE(-2);
    h.push(name('s', 3), s16);
    const i32 = Buffer.alloc(4);
    i32.writeInt32BE(123456);
    h.push(name('i', 4), i32);
    const i64 = Buffer.alloc(8);
    i64.writeBigInt64BE(2n ** 40n);
    h.push(name('l', 5), i64);
    h.push(name('y', 6), Buffer.from([0, 2, 9, 8]));
    h.push(name('str', 7), Buffer.from([0, 2]), Buffer.from('ok'));
    const ts = Buffer.alloc(8);
    ts.writeBigInt64BE(1_700_000_000_000n);
    h.push(name('ts', 8), ts);
    h.push(name('u', 9), Buffer.alloc(16, 7));
    const headers = Buffer.concat(h);
    const payload = Buffer.from('{}');
    const total = 12 + headers.length + payload.length + 4;
    const m = Buffer.alloc(total);
    m.writeUInt32BE(total, 0);
    m.writeUInt32BE(headers.length, 4);
    m.writeUInt32BE(crc32(m.subarray(0, 8)), 8);
    headers.copy(m, 12);
    payload.copy(m, 12 + headers.length);
    m.writeUInt32BE(crc32(m.subarray(0, total - 4)), total - 4);
    const d = decodeMessage(m);
    expect(d.headers).toEqual({ t: true, f: false, b: -1, s: -2, i: 123456, l: 2n ** 40n, y: Buffer.from([9, 8]), str: 'ok', ts: new Date(1_700_000_000_000), u: Buffer.alloc(16, 7) });
    expect(d.payload.toString()).toBe('{}');
  });

  it('a header that runs past the header block is refused', () => {
    const headers = Buffer.from([5, 0x61]); // name length 5, one byte of name
    const total = 12 + headers.length + 4;
    const m = Buffer.alloc(total);
    m.writeUInt32BE(total, 0);
    m.writeUInt32BE(headers.length, 4);
    m.writeUInt32BE(crc32(m.subarray(0, 8)), 8);
    headers.copy(m, 12);
    m.writeUInt32BE(crc32(m.subarray(0, total - 4)), total - 4);
    expect(() => decodeMessage(m)).toThrow(/runs past/);
  });
});
