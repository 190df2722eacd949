import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fsyncPath } from '../../fsync.js';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { ArchiveError, TarExtractor, tarStream, type ExtractedEntry, type TarEntry } from '../archive/tar.js';
import { type ContentKey, AUTH_FAILED, BackupCryptoError, describeEncryption, isEnvelope, openEnvelope, sealer, type EncryptTo, type EnvelopeContent, type EnvelopeHeader, type Keyring, type Sealer } from './envelope.js';


/**
 * Writes entries as tar.gz (optionally inside the encryption envelope) to a temporary name
 * beside `finalFile`, fsyncs it, renames it into place and fsyncs the directory. A crash
 * at any point leaves no file at the final name. Returns size and SHA-256 of the file.
 */
export async function writeArchive(
  finalFile: string,
  entries: readonly TarEntry[],
  opts: { encrypt?: EncryptTo; content?: EnvelopeContent; onProgress?: (done: number, total: number) => void; /** A sealer made by the caller (it needed the MAC key first); wins over encrypt. */ sealer?: Sealer } = {},
): Promise<{ size: number; sha256: string; contentKey?: ContentKey }> {
  const tmp = path.join(path.dirname(finalFile), `.${path.basename(finalFile)}.tmp-${process.pid}`);
  const total = entries.reduce((n, e) => n + e.size, 0);
  let done = 0;
  const fileHash = createHash('sha256');
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      fileHash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  rmSync(tmp, { force: true }); // a leftover of an earlier process that had our pid
  try {
    const seal = opts.sealer ?? (opts.encrypt ? sealer(opts.content ?? 'backup', opts.encrypt) : undefined);
    if (seal) {
      writeFileSync(tmp, seal.prefix, { mode: 0o600, flag: 'wx' });
      fileHash.update(seal.prefix);
      size += seal.prefix.length;
    }
    const progress = (n: number): void => {
      done += n;
      opts.onProgress?.(done, total);
    };
    const out = createWriteStream(tmp, { flags: seal ? 'a' : 'wx', mode: 0o600 });
    const stages: NodeJS.ReadWriteStream[] = [createGzip({ level: 6 })];
    if (seal) stages.push(seal.cipher);
    await pipeline(Readable.from(tarStream(entries, progress)), ...(stages as [NodeJS.ReadWriteStream]), counter, out);
    if (seal) {
      const tag = seal.cipher.getAuthTag();
      writeFileSync(tmp, tag, { flag: 'a' });
      fileHash.update(tag);
      size += tag.length;
    }
    fsyncPath(tmp);
    renameSync(tmp, finalFile);
    fsyncPath(path.dirname(finalFile));
    return { size, sha256: fileHash.digest('hex'), ...(seal ? { contentKey: seal.contentKey } : {}) };
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export interface ReadResult {
  readonly entries: readonly ExtractedEntry[];
  readonly memory: ReadonlyMap<string, Buffer>;
  readonly encryption: string;
  readonly header?: EnvelopeHeader;
  /** Passphrase archives: the manifest MAC key. */
  readonly macKey?: Buffer;
}

/**
 * Decrypts (when needed), un-gzips and un-tars an archive into `dir` (or only hashes it
 * when dir is undefined). Throws BackupCryptoError / ArchiveError with a clear reason.
 */
export async function readArchive(file: string, keys: Keyring, dir: string | undefined, opts: { keepInMemory?: (name: string) => boolean } = {}): Promise<ReadResult> {
  const extractor = new TarExtractor(dir, opts.keepInMemory ?? ((n) => n === 'manifest.json' || n === 'manifest.sig'));
  let encryption = 'none';
  let header: EnvelopeHeader | undefined;
  let macKey: Buffer | undefined;
  const stages: NodeJS.ReadWriteStream[] = [];
  let source: Readable;
  if (isEnvelope(file)) {
    const env = openEnvelope(file, keys, 'backup');
    header = env.header;
    macKey = env.macKey;
    encryption = describeEncryption(env.header);
    source = createReadStream(file, { start: env.bodyStart, end: env.bodyEnd });
    stages.push(env.decipher);
  } else {
    source = createReadStream(file);
  }
  stages.push(createGunzip());
  try {
    await pipeline(source, ...(stages as [NodeJS.ReadWriteStream]), extractor);
  } catch (e) {
    const msg = (e as Error).message;
    if (e instanceof ArchiveError || e instanceof BackupCryptoError) throw e;
    if (/unable to authenticate|Unsupported state/i.test(msg)) throw new BackupCryptoError(AUTH_FAILED);
    if ((e as NodeJS.ErrnoException).code?.startsWith('Z_') || /incorrect header check|invalid|unexpected end/i.test(msg)) {
      throw new ArchiveError(`archive is damaged (${msg}): it is not a complete backup file`);
    }
    throw e;
  }
  return { entries: extractor.entries, memory: extractor.memory, encryption, ...(header ? { header } : {}), ...(macKey ? { macKey } : {}) };
}
