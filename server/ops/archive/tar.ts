import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';

/**
 * A minimal POSIX ustar writer and reader: regular files only, no links, no PAX. Enough
 * for backups and support bundles, and readable by `tar -tzf` once un-gzipped, so an
 * operator can look inside an unencrypted archive with standard tools.
 */

export interface TarEntry {
  /** Path inside the archive, '/'-separated, relative. */
  readonly name: string;
  /** Either a file on disk or bytes in memory. */
  readonly file?: string;
  readonly data?: Buffer;
  readonly size: number;
  readonly mode?: number;
  readonly mtime?: number;
}

export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
}

const BLOCK = 512;

export function safeEntryName(name: string): string {
  const n = name.replace(/\\/g, '/');
  if (!n || n.startsWith('/') || n.split('/').some((p) => p === '..' || p === '' || p === '.')) {
    throw new ArchiveError(`unsafe archive entry name ${JSON.stringify(name)}`);
  }
  return n;
}

function octal(value: number, width: number): string {
  const s = value.toString(8);
  if (s.length > width - 1) throw new ArchiveError(`value ${value} does not fit a tar header field`);
  return s.padStart(width - 1, '0') + '\0';
}

function header(e: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  let name = safeEntryName(e.name);
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    let split = -1;
    for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
      if (Buffer.byteLength(name.slice(0, i)) <= 155 && Buffer.byteLength(name.slice(i + 1)) <= 100) {
        split = i;
        break;
      }
    }
    if (split < 0) throw new ArchiveError(`archive entry name too long: ${e.name}`);
    prefix = name.slice(0, split);
    name = name.slice(split + 1);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? 0o600, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(e.size, 12), 124, 'ascii');
  h.write(octal(Math.floor((e.mtime ?? Date.now()) / 1000), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\u000000', 257, 'binary');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** Yields the archive bytes for `entries` (file contents streamed from disk). */
export async function* tarStream(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>, onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield header(e);
    let written = 0;
    if (e.data) {
      yield e.data;
      written = e.data.length;
      onBytes?.(e.data.length);
    } else if (e.file) {
      for await (const chunk of createReadStream(e.file, { highWaterMark: 1 << 20 })) {
        written += (chunk as Buffer).length;
        onBytes?.((chunk as Buffer).length);
        yield chunk as Buffer;
      }
    }
    if (written !== e.size) throw new ArchiveError(`${e.name} changed size while being archived (${e.size} -> ${written})`);
    const pad = (BLOCK - (e.size % BLOCK)) % BLOCK;
    if (pad) yield Buffer.alloc(pad, 0);
  }
  yield Buffer.alloc(BLOCK * 2, 0);
}

export interface ExtractedEntry {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  /** Where it was written (undefined when only hashed). */
  readonly path?: string;
}

function parseOctal(buf: Buffer, start: number, len: number): number {
  const s = buf.toString('ascii', start, start + len).replace(/\0.*$/s, '').trim();
  if (!/^[0-7]*$/.test(s)) throw new ArchiveError('corrupted tar header (bad number field)');
  return s ? parseInt(s, 8) : 0;
}

/**
 * A Writable that parses a tar stream, writing each regular file under `dir` (or, with
 * dir undefined, only hashing it) and recording name, size and SHA-256.
 */
export class TarExtractor extends Writable {
  readonly entries: ExtractedEntry[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private current: { name: string; size: number; left: number; pad: number; hash: ReturnType<typeof createHash>; fd?: number; path?: string } | undefined;
  private ended = false;
  /** Bytes of the names in memory kept for in-memory reads (small files such as manifest.json). */
  readonly memory = new Map<string, Buffer>();
  private memChunks: Buffer[] = [];

  constructor(
    private readonly dir: string | undefined,
    private readonly keepInMemory: (name: string) => boolean = (n) => n === 'manifest.json',
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.drain();
      cb();
    } catch (e) {
      this.closeCurrent();
      cb(e as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.current || !this.ended) {
      this.closeCurrent();
      cb(new ArchiveError('archive is truncated (tar stream ended early)'));
      return;
    }
    cb();
  }

  private closeCurrent(): void {
    if (this.current?.fd !== undefined) closeSync(this.current.fd);
    this.current = undefined;
  }

  private drain(): void {
    while (true) {
      if (this.ended) {
        this.buf = Buffer.alloc(0);
        return;
      }
      if (!this.current) {
        if (this.buf.length < BLOCK) return;
        const h = this.buf.subarray(0, BLOCK);
        this.buf = this.buf.subarray(BLOCK);
        if (h.every((b) => b === 0)) {
          this.ended = true;
          continue;
        }
        const stored = parseOctal(h, 148, 8);
        let sum = 0;
        for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
        if (sum !== stored) throw new ArchiveError('corrupted tar header (checksum mismatch)');
        const type = String.fromCharCode(h[156]!);
        if (type !== '0' && type !== '\0') throw new ArchiveError(`unsupported tar entry type ${JSON.stringify(type)}`);
        const name0 = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
        const prefix = h.toString('utf8', 345, 500).replace(/\0.*$/s, '');
        const name = safeEntryName(prefix ? `${prefix}/${name0}` : name0);
        const size = parseOctal(h, 124, 12);
        let fd: number | undefined;
        let out: string | undefined;
        if (this.dir) {
          out = path.join(this.dir, ...name.split('/'));
          mkdirSync(path.dirname(out), { recursive: true });
          fd = openSync(out, 'wx', 0o600);
        }
        this.memChunks = [];
        this.current = { name, size, left: size, pad: (BLOCK - (size % BLOCK)) % BLOCK, hash: createHash('sha256'), fd, path: out };
        continue;
      }
      const c = this.current;
      if (c.left > 0) {
        if (!this.buf.length) return;
        const take = this.buf.subarray(0, Math.min(c.left, this.buf.length));
        this.buf = this.buf.subarray(take.length);
        c.hash.update(take);
        if (c.fd !== undefined) writeSync(c.fd, take);
        if (this.keepInMemory(c.name)) this.memChunks.push(Buffer.from(take));
        c.left -= take.length;
        if (c.left > 0) return;
      }
      if (this.buf.length < c.pad) return;
      this.buf = this.buf.subarray(c.pad);
      if (c.fd !== undefined) closeSync(c.fd);
      if (this.keepInMemory(c.name)) this.memory.set(c.name, Buffer.concat(this.memChunks));
      this.entries.push({ name: c.name, size: c.size, sha256: c.hash.digest('hex'), ...(c.path ? { path: c.path } : {}) });
      this.current = undefined;
    }
  }
}
