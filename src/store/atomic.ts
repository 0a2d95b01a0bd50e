// Crash-safe file writes and JSON reads for every store (failures, patches).
// A write goes to a temp file in the same directory, is fsynced, renamed over the
// target and the directory is fsynced: a crash at any point leaves either the old
// or the new version on disk, never a torn file. Temp names carry the writer's pid, so
// the temp file of a writer that no longer runs is removed at once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { isProcessAlive } from './process-alive';

const TEMP_SUFFIX = '.tmp';

/** Name of a fresh temp file next to `target` (same directory, so rename is atomic). */
function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
}

/** True when `name` is a temp file that writeFileAtomic made for `target`'s basename. */
function isTempFor(name: string, targetBase: string): boolean {
  return name.startsWith(`.${targetBase}.`) && name.endsWith(TEMP_SUFFIX);
}

/** The pid in a temp file name `.<base>.<pid>.<random>[.lock].tmp`, or undefined when there is none. */
export function tempWriterPid(name: string, targetBase: string): number | undefined {
  const m = /^(\d{1,10})\.[0-9a-f]+(\.lock)?$/.exec(name.slice(targetBase.length + 2, -TEMP_SUFFIX.length));
  return m ? Number(m[1]) : undefined;
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (err) {
    // Windows cannot open or fsync a directory; there rename is already durable
    // enough (NTFS journals metadata), so only unexpected errors are raised.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'EBADF') throw err;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Replaces `target` with `data` atomically. Creates the parent directory if needed.
 * On any error the temp file is removed and the previous content of `target` is intact.
 */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const dir = path.dirname(target);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o600);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let written = 0;
    while (written < bytes.length) {
      written += fs.writeSync(fd, bytes, written, bytes.length - written);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing; report the first error */ }
    }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    throw err;
  }
  fsyncDirectory(dir);
}

/** Writes `value` as pretty JSON (trailing newline) atomically. */
export function writeJsonFileAtomic(target: string, value: unknown): void {
  writeFileAtomic(target, JSON.stringify(value, null, 1) + '\n');
}

/** The file's text could not be parsed as JSON. */
export class CorruptJsonError extends Error {
  constructor(readonly file: string, readonly reason: unknown) {
    super(`${file} is not valid JSON (${reason instanceof Error ? reason.message : String(reason)}); ` +
      'move it aside or delete it to start again');
    this.name = 'CorruptJsonError';
  }
}

/**
 * Reads and parses a JSON file. Returns `undefined` when the file does not exist;
 * throws CorruptJsonError when it exists but is not JSON, other I/O errors as is.
 */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CorruptJsonError(file, err);
  }
}

/**
 * Removes temp files left next to `target` by writers that died mid-write: at once when
 * the pid in the name no longer runs, else once older than `minAgeMs` (the pid may have
 * been reused), so a write in progress in another process is never disturbed. Returns
 * the removed paths.
 */
export function removeStaleTempFiles(
  target: string, minAgeMs = 60_000, now = Date.now(), alive: (pid: number) => boolean = isProcessAlive,
): string[] {
  const dir = path.dirname(target);
  const base = path.basename(target);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!isTempFor(name, base)) continue;
    const full = path.join(dir, name);
    const pid = tempWriterPid(name, base);
    try {
      // Whole milliseconds on both sides: Date.now() has no fraction, mtimeMs does.
      if ((pid !== undefined && !alive(pid)) || now - Math.floor(fs.statSync(full).mtimeMs) >= minAgeMs) {
        fs.rmSync(full, { force: true });
        removed.push(full);
      }
    } catch { /* vanished meanwhile: fine */ }
  }
  return removed;
}

/**
 * Moves a damaged file aside as `<file>.corrupt-<time>` so nothing in it is lost,
 * and returns the new path.
 */
export function moveAside(file: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  let dest = `${file}.corrupt-${stamp}`;
  for (let i = 1; fs.existsSync(dest); i++) dest = `${file}.corrupt-${stamp}-${i}`;
  fs.renameSync(file, dest);
  fsyncDirectory(path.dirname(file));
  return dest;
}

/** Copies a file aside as `<file>.corrupt-<time>` (used when part of it is still usable). */
export function copyAside(file: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  let dest = `${file}.corrupt-${stamp}`;
  for (let i = 1; fs.existsSync(dest); i++) dest = `${file}.corrupt-${stamp}-${i}`;
  fs.copyFileSync(file, dest, fs.constants.COPYFILE_EXCL);
  // Durable before the caller replaces the damaged original with what could be recovered.
  const fd = fs.openSync(dest, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fsyncDirectory(path.dirname(file));
  return dest;
}

function sameBytes(a: string, b: string): boolean {
  const digest = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  return fs.statSync(a).size === fs.statSync(b).size && digest(a) === digest(b);
}

/**
 * Keeps one backup of a damaged file: returns an existing `<file>.corrupt-*` with the same
 * bytes, else copies it aside (copyAside). Reopening a store whose damaged file could not be
 * rewritten so never piles up copies.
 */
export function backupOnce(file: string, now: Date = new Date()): string {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.corrupt-`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const existing = path.join(dir, name);
    try {
      if (sameBytes(existing, file)) return existing;
    } catch { /* vanished or unreadable: not a usable backup */ }
  }
  return copyAside(file, now);
}
