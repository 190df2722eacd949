/**
 * Whether a process with this pid exists on this host. EPERM means it exists but belongs to
 * another user: that counts as alive, so a lock or pid file it holds is never taken for stale
 * (signalling it would fail anyway). One definition for every pid/lock file in the data dir.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
