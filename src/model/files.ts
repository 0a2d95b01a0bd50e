// Opening and reading the files of a model folder safely: only regular files are opened (a FIFO,
// a device such as /dev/zero, or a socket is refused before it can block or stream forever), and
// JSON files are read up to a size limit (docs/limits.md).
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { ModelError, type ModelErrorCode } from './errors';

const MiB = 1024 * 1024;

/** Largest config.json read (real ones are a few KiB). */
export const CONFIG_JSON_LIMIT = 1 * MiB;
/** Largest tokenizer.json read (Gemma's 256k-token vocabulary is about 34 MB). */
export const TOKENIZER_JSON_LIMIT = 64 * MiB;
/** Largest tokenizer_config.json or model.safetensors.index.json read (real ones are well under 1 MiB). */
export const SIDE_JSON_LIMIT = 16 * MiB;

// A FIFO opened without O_NONBLOCK waits for a writer; with it, open returns at once and fstat
// tells what it is. Windows has no such flag (and no FIFOs in the file system).
const O_NONBLOCK = (constants as Record<string, number | undefined>)['O_NONBLOCK'] ?? 0;

/** What a non-regular file is, in words. */
export function fileKind(s: Stats): string {
  if (s.isFIFO()) return 'a named pipe (FIFO)';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSocket()) return 'a socket';
  if (s.isDirectory()) return 'a folder';
  return 'not a regular file';
}

function notRegular(file: string, s: Stats, what: string, code: ModelErrorCode): ModelError {
  return new ModelError(code, `${file} is ${fileKind(s)}, not a regular file; ${what} must be a regular file — replace it (or the link to it) with the real file from the model's download`, file);
}

/**
 * Opens `file` read-only if it is a regular file (following links), else throws a ModelError with
 * `code`. Errors of the file system itself (ENOENT, EACCES, ...) are thrown as they are.
 */
export function openRegularFile(file: string, what: string, code: ModelErrorCode): { fd: number; size: number } {
  const before = statSync(file);
  if (!before.isFile()) throw notRegular(file, before, what, code);
  const fd = openSync(file, constants.O_RDONLY | O_NONBLOCK);
  try {
    // Checked again on the open file: it may have been swapped for a FIFO since the stat.
    const s = fstatSync(fd);
    if (!s.isFile()) throw notRegular(file, s, what, code);
    return { fd, size: s.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function tooLarge(file: string, what: string, limit: number, code: ModelErrorCode): ModelError {
  return new ModelError(
    code,
    `${file} is larger than ${limit} bytes, the most read for ${what} (docs/limits.md); a real ${what} is far smaller — restore it from the model's download`,
    file,
  );
}

/**
 * The bytes of a regular file of at most `limit` bytes. Reads until end of file rather than
 * trusting the size (files in /proc report 0), and never more than `limit` + 1 bytes.
 */
export function readRegularFile(file: string, what: string, limit: number, code: ModelErrorCode): Buffer {
  const { fd, size } = openRegularFile(file, what, code);
  try {
    if (size > limit) throw tooLarge(file, what, limit, code);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(Math.max(size - total, 0) + 1, 1 * MiB, limit + 1 - total));
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      chunks.push(buf.subarray(0, got));
      total += got;
      if (total > limit) throw tooLarge(file, what, limit, code);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
