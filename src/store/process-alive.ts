// Whether a process id names a running process on this machine: how the stores tell a lock or a
// temp file of a live writer from one a killed writer left behind.

/** True when `pid` runs (or exists under another user); false when no such process exists. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else. Anything but ESRCH counts as alive (never
    // remove what might be in use).
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
