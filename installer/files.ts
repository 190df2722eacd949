import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { GID, UID, type Owner } from './layout.js';

export interface FileChange {
  readonly path: string;
  readonly action: 'created' | 'updated' | 'kept';
}

export interface WriteOptions {
  readonly mode: number;
  readonly owner?: Owner;
  /** chown to the owner's uid (only possible as root). */
  readonly chown: boolean;
}

/**
 * Writes a file only when its content differs (atomic: temp file + rename), then applies mode
 * and owner. Re-running with the same content changes nothing, not even the mtime.
 */
export function writeIfChanged(file: string, content: string | Buffer, opts: WriteOptions): FileChange {
  mkdirSync(path.dirname(file), { recursive: true });
  const next = typeof content === 'string' ? Buffer.from(content) : content;
  let action: FileChange['action'] = 'created';
  if (existsSync(file)) {
    action = readFileSync(file).equals(next) ? 'kept' : 'updated';
  }
  if (action !== 'kept') {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, next, { mode: opts.mode });
    chmodSync(tmp, opts.mode);
    renameSync(tmp, file);
  }
  applyMode(file, opts);
  return { path: file, action };
}

/** Sets mode and owner only when they differ (so the ctime of an unchanged file stays). */
export function applyMode(file: string, opts: WriteOptions): void {
  const st = statSync(file);
  if ((st.mode & 0o7777) !== opts.mode) chmodSync(file, opts.mode);
  if (opts.chown && opts.owner) {
    const uid = UID[opts.owner];
    const gid = GID[opts.owner];
    if (st.uid !== uid || st.gid !== gid) chownSync(file, uid, gid);
  }
}

export function ensureDir(dir: string, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
  if ((statSync(dir).mode & 0o7777) !== mode) chmodSync(dir, mode);
}

/** Copies a shipped file or directory tree, writing only files whose content differs. */
export function syncTree(from: string, to: string, transform?: (to: string, content: Buffer) => Buffer): FileChange[] {
  const st = statSync(from);
  if (st.isFile()) {
    const content = readFileSync(from);
    return [writeIfChanged(to, transform ? transform(to, content) : content, { mode: 0o644, chown: false })];
  }
  const out: FileChange[] = [];
  ensureDir(to, 0o755);
  for (const name of readdirSync(from).sort()) {
    out.push(...syncTree(path.join(from, name), path.join(to, name), transform));
  }
  return out;
}

export { cpSync };
