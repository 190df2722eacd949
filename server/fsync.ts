import { closeSync, fsyncSync, openSync } from 'node:fs';

/** fsync a file or directory by path (after a rename, the directory makes the new name durable). */
export function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(p, 'r');
    fsyncSync(fd);
  } catch {
    /* directories cannot be fsynced on every platform; best effort */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
