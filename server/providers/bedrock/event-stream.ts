import { crc32 } from 'node:zlib';

/**
 * The AWS event-stream binary framing (application/vnd.amazon.eventstream), as Bedrock's
 * ConverseStream sends it. One message:
 *
 *   total length (u32 BE) · headers length (u32 BE) · prelude CRC32 (of the 8 bytes before)
 *   headers: name length (u8) · name (UTF-8) · value type (u8) · value
 *   payload (total − headers − 16 bytes)
 *   message CRC32 (of every byte before it)
 *
 * Both CRCs are checked: a frame that fails either is corruption, not something to skip
 * (the stream fails with a clear error). Chunk boundaries can fall anywhere.
 */
export type HeaderValue = string | number | boolean | bigint | Buffer | Date;

export interface EventMessage {
  readonly headers: Readonly<Record<string, HeaderValue>>;
  readonly payload: Buffer;
}

export class EventStreamError extends Error {
  override readonly name = 'EventStreamError';
}

const PRELUDE = 12;
/** The service's own limit on a message (16 MB); a larger length is a corrupt prelude. */
const MAX_MESSAGE = 16 * 1024 * 1024;

function parseHeaders(b: Buffer): Record<string, HeaderValue> {
  const out: Record<string, HeaderValue> = {};
  let i = 0;
  while (i < b.length) {
    const nameLen = b.readUInt8(i);
    i += 1;
    if (nameLen === 0 || i + nameLen + 1 > b.length) throw new EventStreamError('event-stream header name runs past the headers');
    const name = b.toString('utf8', i, i + nameLen);
    i += nameLen;
    const type = b.readUInt8(i);
    i += 1;
    const need = (n: number): void => {
      if (i + n > b.length) throw new EventStreamError(`event-stream header ${name} runs past the headers`);
    };
    switch (type) {
      case 0:
        out[name] = true;
        break;
      case 1:
        out[name] = false;
        break;
      case 2:
        need(1);
        out[name] = b.readInt8(i);
        i += 1;
        break;
      case 3:
        need(2);
        out[name] = b.readInt16BE(i);
        i += 2;
        break;
      case 4:
        need(4);
        out[name] = b.readInt32BE(i);
        i += 4;
        break;
      case 5:
        need(8);
        out[name] = b.readBigInt64BE(i);
        i += 8;
        break;
      case 6:
      case 7: {
        need(2);
        const len = b.readUInt16BE(i);
        i += 2;
        need(len);
        out[name] = type === 7 ? b.toString('utf8', i, i + len) : Buffer.from(b.subarray(i, i + len));
        i += len;
        break;
      }
      case 8:
        need(8);
        out[name] = new Date(Number(b.readBigInt64BE(i)));
        i += 8;
        break;
      case 9:
        need(16);
        out[name] = Buffer.from(b.subarray(i, i + 16));
        i += 16;
        break;
      default:
        throw new EventStreamError(`event-stream header ${name} has unknown type ${type}`);
    }
  }
  return out;
}

/** Decodes one whole message (exactly `total` bytes). */
export function decodeMessage(m: Buffer): EventMessage {
  const total = m.readUInt32BE(0);
  const headersLen = m.readUInt32BE(4);
  if (m.readUInt32BE(8) !== crc32(m.subarray(0, 8))) throw new EventStreamError('event-stream prelude CRC mismatch');
  if (m.readUInt32BE(total - 4) !== crc32(m.subarray(0, total - 4))) throw new EventStreamError('event-stream message CRC mismatch');
  const headers = parseHeaders(m.subarray(PRELUDE, PRELUDE + headersLen));
  return { headers, payload: m.subarray(PRELUDE + headersLen, total - 4) };
}

/** Messages from a byte stream, one at a time as each completes. */
export async function* readEventStream(src: AsyncIterable<Buffer>): AsyncGenerator<EventMessage> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of src) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= PRELUDE) {
      const total = buf.readUInt32BE(0);
      const headersLen = buf.readUInt32BE(4);
      // Check the prelude before trusting its lengths (a corrupt length would make us wait forever).
      if (buf.readUInt32BE(8) !== crc32(buf.subarray(0, 8))) throw new EventStreamError('event-stream prelude CRC mismatch');
      if (total < PRELUDE + 4 || total > MAX_MESSAGE || headersLen > total - PRELUDE - 4) throw new EventStreamError(`event-stream message length ${total} is invalid`);
      if (buf.length < total) break;
      yield decodeMessage(buf.subarray(0, total));
      buf = buf.subarray(total);
    }
  }
  if (buf.length) throw new EventStreamError('event-stream ended inside a message');
}
