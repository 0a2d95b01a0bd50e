// A cross-process lock on one store file, so that two VS Code windows and the CLI can change the
// same store without losing each other's records (see docs/architecture-stores.md). The lock is
// a file `<store>.lock` created exclusively (O_EXCL) holding the holder's pid, host, a nonce and
// the time. A lock whose holder no longer runs (same host) is broken at once; one older than
// `staleMs` (another host, a reused pid, a frozen holder) is broken too. Waiting is synchronous
// (the stores are synchronous) and short: a holder only re-reads and rewrites one file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isProcessAlive } from './process-alive';

export interface LockInfo {
  pid: number;
  host: string;
  nonce: string;
  /** Date.now() when taken. */
  time: number;
}

export interface LockOptions {
  /** How long to wait for another holder before giving up (default 15 s). */
  timeoutMs?: number;
  /** Age after which a lock is broken even if its pid seems alive (default 30 s). */
  staleMs?: number;
  alive?: (pid: number) => boolean;
}

/** Another process held the store's lock for longer than the wait allows. */
export class StoreLockTimeoutError extends Error {
  constructor(readonly file: string, readonly lockFile: string, readonly holder: LockInfo | undefined, waitedMs: number) {
    super(`${file} is being changed by another process (${holder ? `pid ${holder.pid} on ${holder.host}` : 'unknown holder'}) ` +
      `and it did not finish within ${Math.round(waitedMs / 1000)} s: try again; if no other STAR Repair window or ` +
      `star-repair command is running, delete ${lockFile}`);
    this.name = 'StoreLockTimeoutError';
  }
}

/** A lock whose content cannot be read yet (it is being written) is broken after this long. */
const UNREADABLE_STALE_MS = 2_000;

/** The lock file's content, or undefined when it is not a lock record (empty, torn, garbage). */
export function parseLockInfo(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.nonce === 'string' && typeof v.time === 'number') {
      return { pid: v.pid, host: v.host, nonce: v.nonce, time: v.time };
    }
  } catch { /* not a lock record */ }
  return undefined;
}

/** Whether a lock may be broken: its holder is gone, or it is older than any real holder takes. */
export function isLockStale(
  info: LockInfo | undefined, ageMs: number, here: { host: string; alive: (pid: number) => boolean }, staleMs: number,
): boolean {
  if (info === undefined) return ageMs >= UNREADABLE_STALE_MS;
  if (ageMs >= staleMs) return true;
  return info.host === here.host && !here.alive(info.pid);
}

export function lockFileFor(target: string): string {
  return `${target}.lock`;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function readLock(lockFile: string): { text: string; ageMs: number } | undefined {
  try {
    const text = fs.readFileSync(lockFile, 'utf8');
    const ageMs = Date.now() - Math.floor(fs.statSync(lockFile).mtimeMs);
    return { text, ageMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Creates the lock with its content in one step: the record is written to a private temp file
 * (named like the store's temp files, so a killed process's one is cleaned up) and hard-linked to
 * the lock name, which fails if the lock exists. A lock is so never seen empty. Where hard links
 * are not supported, an exclusive create followed by the write is used.
 */
function tryCreate(lockFile: string, info: LockInfo): boolean {
  const dir = path.dirname(lockFile);
  const temp = path.join(dir, `.${path.basename(lockFile).replace(/\.lock$/, '')}.${process.pid}.${randomBytes(6).toString('hex')}.lock.tmp`);
  fs.writeFileSync(temp, JSON.stringify(info), { mode: 0o600 });
  try {
    fs.linkSync(temp, lockFile);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
  let fd: number;
  try {
    fd = fs.openSync(lockFile, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fs.writeSync(fd, JSON.stringify(info));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/**
 * Removes a stale lock whose content was `observed`. It is first renamed to a private name, so
 * that of two processes breaking it at once only one removes it; if what was renamed is not the
 * lock that was judged stale (a holder took the lock in between), it is put back.
 */
function breakLock(lockFile: string, observed: string): void {
  const aside = `${lockFile}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(lockFile, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    if (fs.readFileSync(aside, 'utf8') !== observed) {
      try { fs.linkSync(aside, lockFile); } catch { /* a newer holder exists: it owns the lock now */ }
    }
  } finally {
    fs.rmSync(aside, { force: true });
  }
}

function release(lockFile: string, nonce: string): void {
  // Only our own lock: if it was broken as stale (this process was frozen), leave the new one.
  const current = readLock(lockFile);
  if (current && parseLockInfo(current.text)?.nonce === nonce) fs.rmSync(lockFile, { force: true });
}

/** Removes the lock of `target` when its holder is gone (housekeeping on open; never a live lock). */
export function removeStaleLock(target: string, options: LockOptions = {}): void {
  const lockFile = lockFileFor(target);
  try {
    const current = readLock(lockFile);
    if (current === undefined) return;
    const here = { host: os.hostname(), alive: options.alive ?? isProcessAlive };
    if (isLockStale(parseLockInfo(current.text), current.ageMs, here, options.staleMs ?? 30_000)) breakLock(lockFile, current.text);
  } catch { /* best effort: the next writer breaks it anyway */ }
}

/** Runs `fn` while holding the lock of `target` (creating its directory if needed). */
export function withFileLock<T>(target: string, fn: () => T, options: LockOptions = {}): T {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const staleMs = options.staleMs ?? 30_000;
  const here = { host: os.hostname(), alive: options.alive ?? isProcessAlive };
  const lockFile = lockFileFor(target);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const info: LockInfo = { pid: process.pid, host: here.host, nonce: randomBytes(8).toString('hex'), time: Date.now() };
  const started = Date.now();
  let pause = 1;
  while (!tryCreate(lockFile, { ...info, time: Date.now() })) {
    const current = readLock(lockFile);
    if (current === undefined) continue; // released meanwhile
    const holder = parseLockInfo(current.text);
    if (isLockStale(holder, current.ageMs, here, staleMs)) {
      breakLock(lockFile, current.text);
      continue;
    }
    const waited = Date.now() - started;
    if (waited >= timeoutMs) throw new StoreLockTimeoutError(target, lockFile, holder, waited);
    sleepSync(pause + Math.random() * pause);
    pause = Math.min(pause * 2, 50);
  }
  try {
    return fn();
  } finally {
    release(lockFile, info.nonce);
  }
}
