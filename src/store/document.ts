// Loading a store's JSON document with recovery: a damaged file never stops the
// extension and never loses data. An unparseable or wrongly shaped file is moved
// aside and the store starts empty; a file with some bad entries keeps the good
// ones and a copy of the original is kept aside. Both are reported as problems.
import { CorruptJsonError, copyAside, moveAside, readJsonFile, removeStaleTempFiles } from './atomic';

/** The document was written by a newer version of the extension: refuse rather than destroy it. */
export class UnsupportedStoreVersionError extends Error {
  constructor(readonly file: string, readonly version: unknown, readonly supported: number) {
    super(`${file} has format version ${String(version)}, this version of STAR Repair reads up to ${supported}: ` +
      'update the extension (the file was left untouched)');
    this.name = 'UnsupportedStoreVersionError';
  }
}

/** The document's top level is not what the store expects (thrown by a store's parser). */
export class InvalidDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDocumentError';
  }
}

/** What a store's parser returns: the usable value and a message per dropped entry. */
export interface ParsedDocument<T> {
  value: T;
  dropped: string[];
}

export interface LoadedDocument<T> {
  value: T;
  /** Human-readable problems found while loading (empty when the file was clean or absent). */
  problems: string[];
  /** Where the damaged original was moved or copied, if it was. */
  asidePath?: string;
  /** False when the file did not exist yet. */
  existed: boolean;
}

/**
 * Reads `file` and parses it with `parse`. `parse` throws InvalidDocumentError for a
 * wrong shape and UnsupportedStoreVersionError for a newer format (which propagates).
 */
export function loadDocument<T>(
  file: string,
  parse: (raw: unknown) => ParsedDocument<T>,
  empty: () => T,
  now: () => Date = () => new Date(),
): LoadedDocument<T> {
  removeStaleTempFiles(file);
  let raw: unknown;
  try {
    raw = readJsonFile(file);
  } catch (err) {
    if (!(err instanceof CorruptJsonError)) throw err;
    const aside = moveAside(file, now());
    return {
      value: empty(),
      problems: [`${err.message.replace(/; move it aside.*$/, '')}: moved to ${aside}, starting empty`],
      asidePath: aside,
      existed: true,
    };
  }
  if (raw === undefined) return { value: empty(), problems: [], existed: false };
  let parsed: ParsedDocument<T>;
  try {
    parsed = parse(raw);
  } catch (err) {
    if (!(err instanceof InvalidDocumentError)) throw err;
    const aside = moveAside(file, now());
    return {
      value: empty(),
      problems: [`${file}: ${err.message}: moved to ${aside}, starting empty`],
      asidePath: aside,
      existed: true,
    };
  }
  if (parsed.dropped.length === 0) return { value: parsed.value, problems: [], existed: true };
  const aside = copyAside(file, now());
  return {
    value: parsed.value,
    problems: parsed.dropped.map((d) => `${file}: ${d} (dropped; the original file is kept as ${aside})`),
    asidePath: aside,
    existed: true,
  };
}
