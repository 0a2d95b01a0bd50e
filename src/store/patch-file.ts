// Reading one patch file (`star-repair eval --patch`, the extension's patch import): every way
// the file can be unusable — missing, not a regular file (a FIFO would block the read), too
// large to hold as JSON text, empty, not JSON, not a valid patch — becomes a PatchFileError that
// names the file and says what to do, instead of a bare "Unexpected end of JSON input".
import * as fs from 'node:fs';
import { InvalidPatchError, MAX_PATCH_PARAMS, patchFromJson, type Patch } from '../repair/patch';

/**
 * Largest patch file read: a patch holds at most MAX_PATCH_PARAMS delta values (45 MB of base64)
 * and as many row indices (≤ 8 digits each), so a bigger file is not a patch; 128 MiB leaves room
 * for pretty-printing. Refused unread.
 */
export const MAX_PATCH_FILE_BYTES = 128 * 1024 * 1024;

export type PatchFileProblem = 'missing' | 'unreadable' | 'not-a-file' | 'too-large' | 'empty' | 'not-json' | 'invalid';

/** A patch file cannot be used; `reason` says why, the message what to do. */
export class PatchFileError extends Error {
  constructor(readonly file: string, readonly reason: PatchFileProblem, detail: string) {
    super(`patch file ${file} ${detail}`);
    this.name = 'PatchFileError';
  }
}

const WRITTEN_BY = 'a patch file is the JSON written by `star-repair repair --out` or by Export Patch in the extension';

/** Why JSON.parse failed, in words: a cut-off file is the common case and deserves saying so. */
export function describeJsonError(message: string, text: string): string {
  const m = /at position (\d+)/.exec(message);
  const at = m ? Number(m[1]) : undefined;
  if (/Unexpected end of JSON input/i.test(message) || (at !== undefined && at >= text.trimEnd().length)) {
    return `it is cut off: it ends in the middle of the JSON after ${text.length} characters`;
  }
  if (at === undefined) return message;
  const before = text.slice(0, at).split('\n');
  return `${message}, line ${before.length} column ${before[before.length - 1]!.length + 1}`;
}

function readText(file: string): string {
  let fd: number;
  try {
    // Non-blocking open: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PatchFileError(file, 'missing', 'does not exist: check the path');
    if (code === 'EISDIR') throw new PatchFileError(file, 'not-a-file', 'is not a regular file but a directory: give the path of a patch .json file');
    throw new PatchFileError(file, 'unreadable', `cannot be opened (${(err as Error).message}): check its permissions`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new PatchFileError(file, 'not-a-file', 'is not a regular file but a directory: give the path of a patch .json file');
    if (!st.isFile()) throw new PatchFileError(file, 'not-a-file', `is not a regular file (a FIFO, socket or device): ${WRITTEN_BY}`);
    if (st.size > MAX_PATCH_FILE_BYTES) {
      throw new PatchFileError(file, 'too-large', `is ${Math.round(st.size / 2 ** 20)} MiB; patch files over ${MAX_PATCH_FILE_BYTES / 2 ** 20} MiB cannot hold a valid patch (one patch changes at most ${MAX_PATCH_PARAMS.toLocaleString('en-US')} values): make a smaller patch (repair with --select global or one-layer)`);
    }
    return fs.readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof PatchFileError) throw err;
    throw new PatchFileError(file, 'unreadable', `cannot be read (${(err as Error).message})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and validates a patch file. Throws PatchFileError for every kind of bad file. */
export function readPatchFile(file: string, hiddenSize?: number): Patch {
  const text = readText(file).replace(/^\ufeff/, '');
  if (text.trim() === '') throw new PatchFileError(file, 'empty', `is empty: it holds no patch (was it written completely?); ${WRITTEN_BY}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PatchFileError(file, 'not-json', `is not JSON (${describeJsonError((err as Error).message, text)}); ${WRITTEN_BY}`);
  }
  try {
    return patchFromJson(json, hiddenSize);
  } catch (err) {
    if (!(err instanceof InvalidPatchError)) throw err;
    throw new PatchFileError(file, 'invalid', `is not a valid patch: ${err.problems.join('; ')}`);
  }
}
