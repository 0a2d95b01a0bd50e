// Loading and changing a store's JSON document (a header and one array of records) with recovery
// and with other processes writing the same file (docs/architecture-stores.md):
// - the file holds one record per line, so a damaged file is recovered record by record: the
//   readable records are kept, the damaged original is backed up once, and the live file is
//   rewritten with what was recovered (files of the previous, pretty-printed format too);
// - an unreadable or wrongly shaped file with nothing to recover is moved aside, starting empty;
// - SharedDocument.change() runs under the store's lock, re-reads the file when another process
//   changed it and applies the change to that fresh content (lock + merge on write), so no
//   process overwrites records it has not seen.
// Problems are reported as text, never thrown, except a newer format version (refused untouched).
import * as fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import {
  CorruptJsonError, backupOnce, moveAside, readJsonFile, removeStaleTempFiles, writeFileAtomic,
} from './atomic';
import { removeStaleLock, withFileLock, type LockOptions } from './lock';

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

/** The longest text one store file may hold: it is read and written as one string, and this is the longest string the runtime can make (V8: 2^29 − 24 characters on 64-bit Node). */
export const MAX_DOCUMENT_CHARS = bufferConstants.MAX_STRING_LENGTH;

/** How long a document may be and what to tell the user when a save would make it longer. */
export interface DocumentBound {
  maxChars: number;
  /** What the document is, starting a sentence ("the patch history of this model"). */
  what: string;
  /** What the user can do about it. */
  advice?: string;
}

const megabytes = (chars: number) => (chars / 1e6).toFixed(1);

/** A save would make the file longer than it may be (DocumentBound); nothing was saved. */
export class DocumentTooLargeError extends Error {
  constructor(readonly chars: number, readonly limit: number, bound: Pick<DocumentBound, 'what' | 'advice'>) {
    super(`${bound.what} would take ${megabytes(chars)} MB, more than the ${megabytes(limit)} MB one store file can hold ` +
      `(it is read and written whole); nothing was saved${bound.advice ? `: ${bound.advice}` : ''}`);
    this.name = 'DocumentTooLargeError';
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

/** How a store's document is laid out: enough to write it and to recover it record by record. */
export interface DocumentFormat<T> {
  /** Name of the array of records ("failures", "entries"). */
  key: string;
  /** The header of this store's documents (version, modelFingerprint), written on every save. */
  header: Record<string, unknown>;
  parse: (raw: unknown) => ParsedDocument<T>;
  empty: () => T;
  /** The records of a value, as JSON values, in order. */
  records: (value: T) => unknown[];
  /** The bound a save is held to (default: MAX_DOCUMENT_CHARS, "the store file"). */
  bound?: Partial<DocumentBound>;
}

const DEFAULT_BOUND: DocumentBound = { maxChars: MAX_DOCUMENT_CHARS, what: 'the store file' };

function boundOf(format: { bound?: Partial<DocumentBound> }): DocumentBound {
  return { ...DEFAULT_BOUND, ...format.bound };
}

// ---------------------------------------------------------------------------------------
// The file format: `{<header>,"<key>":[` on the first line, then one record per line.
// ---------------------------------------------------------------------------------------

/** The document as text: still one JSON value, with every record on a line of its own. Measured before it is joined: longer than `bound` throws DocumentTooLargeError. */
export function serializeDocument(header: Record<string, unknown>, key: string, records: readonly unknown[], bound: DocumentBound = DEFAULT_BOUND): string {
  const head = `${JSON.stringify({ ...header, [key]: [] }).slice(0, -2)}\n`; // drops the `]}` of `[]}`
  const lines = records.map((r) => JSON.stringify(r));
  const tail = `${records.length ? '\n' : ''}]}\n`;
  const chars = head.length + lines.reduce((n, l) => n + l.length, 0) + 2 * Math.max(0, lines.length - 1) + tail.length;
  if (chars > bound.maxChars) throw new DocumentTooLargeError(chars, bound.maxChars, bound);
  return `${head}${lines.join(',\n')}${tail}`;
}

export interface RecoveredRecords {
  /** The header fields, when the header could be read. */
  header: Record<string, unknown> | undefined;
  records: unknown[];
  /** Record-sized pieces of text that could not be read. */
  unreadable: number;
}

function parseRecord(text: string): unknown {
  try {
    const v = JSON.parse(text.replace(/,\s*$/, '')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function parseHeader(text: string, key: string): Record<string, unknown> | undefined {
  const h = parseRecord(text) as Record<string, unknown> | undefined;
  if (h === undefined) return undefined;
  delete h[key];
  return h;
}

/**
 * Reads what can be read of a damaged document, record by record. Understands this module's
 * format (one record per line) and the previous one (JSON.stringify(doc, null, 1): a record
 * spans the lines from `  {` to `  }`).
 */
export function recoverRecords(text: string, key: string): RecoveredRecords {
  const lines = text.split('\n');
  const compact = recoverLines(lines, key);
  if (!lines.includes('  {')) return compact;
  const pretty = recoverPretty(lines, key);
  return pretty.records.length > compact.records.length ? pretty : compact;
}

function recoverPretty(lines: string[], key: string): RecoveredRecords {
  const records: unknown[] = [];
  let unreadable = 0;
  const keyLine = lines.findIndex((l) => l.startsWith(` ${JSON.stringify(key)}:`));
  const header = keyLine > 0 ? parseHeader(`${lines.slice(0, keyLine).join('\n').replace(/,\s*$/, '')}}`, key) : undefined;
  let chunk: string[] | null = null;
  for (const line of lines) {
    if (line === '  {') chunk = [line];
    else if (chunk) {
      chunk.push(line);
      if (/^ {2}\},?$/.test(line)) {
        const r = parseRecord(chunk.join('\n'));
        if (r === undefined) unreadable++;
        else records.push(r);
        chunk = null;
      }
    }
  }
  if (chunk) unreadable++;
  return { header, records, unreadable };
}

function recoverLines(lines: string[], key: string): RecoveredRecords {
  const records: unknown[] = [];
  let unreadable = 0;
  let header: Record<string, unknown> | undefined;
  const headerLine = new RegExp(`^(\\{.*)${JSON.stringify(key).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\[$`);
  // The header is normally line 0, but damage can move lines: look at every line.
  for (const line of lines) {
    if (line.trim() === '' || line === ']}' || line === '  {') continue;
    const h = headerLine.exec(line);
    const asHeader = h ? parseHeader(`${h[1]!.replace(/,$/, '')}}`, key) : undefined;
    if (asHeader) {
      header ??= asHeader;
      continue;
    }
    const r = parseRecord(line);
    // A whole document on one line is not a record.
    if (r === undefined || key in (r as Record<string, unknown>)) unreadable++;
    else records.push(r);
  }
  return { header, records, unreadable };
}

// ---------------------------------------------------------------------------------------
// Loading with recovery
// ---------------------------------------------------------------------------------------

type Plan<T> =
  | { kind: 'clean'; loaded: LoadedDocument<T> }
  /** Nothing usable: move the file aside and start empty. */
  | { kind: 'move-aside'; value: T; problem: (aside: string) => string }
  /** Some records usable: back the file up once and rewrite it with them. */
  | { kind: 'rewrite'; value: T; problems: (aside: string) => string[] };

/**
 * Record-by-record recovery of a document that is not JSON or whose header is damaged. The store's
 * own header is used (the file name, not a damaged header, says which model it belongs to); only a
 * readable version number is taken from the file, so a newer format is still refused.
 */
function planRecovery<T>(file: string, why: string, parse: (raw: unknown) => ParsedDocument<T>, format: DocumentFormat<T>): Plan<T> | undefined {
  const text = fs.readFileSync(file, 'utf8').replace(/^\ufeff/, '');
  const found = recoverRecords(text, format.key);
  const version = found.header?.version;
  let parsed: ParsedDocument<T>;
  try {
    parsed = parse({ ...format.header, ...(typeof version === 'number' ? { version } : {}), [format.key]: found.records });
  } catch (e) {
    if (!(e instanceof InvalidDocumentError)) throw e;
    return undefined;
  }
  const kept = format.records(parsed.value).length;
  if (kept === 0) return undefined;
  return {
    kind: 'rewrite',
    value: parsed.value,
    problems: (aside) => [
      `${why}: recovered ${kept} record(s), ${found.unreadable} unreadable; the damaged original is kept as ${aside}`,
      ...parsed.dropped.map((d) => `${file}: ${d} (dropped; the original file is kept as ${aside})`),
    ],
  };
}

function planLoad<T>(file: string, parse: (raw: unknown) => ParsedDocument<T>, empty: () => T, format?: DocumentFormat<T>): Plan<T> {
  let raw: unknown;
  try {
    raw = readJsonFile(file);
  } catch (err) {
    if (!(err instanceof CorruptJsonError)) throw err;
    const why = err.message.replace(/; move it aside.*$/, '');
    return (format && planRecovery(file, why, parse, format)) ??
      { kind: 'move-aside', value: empty(), problem: (aside) => `${why}: moved to ${aside}, starting empty` };
  }
  if (raw === undefined) return { kind: 'clean', loaded: { value: empty(), problems: [], existed: false } };
  let parsed: ParsedDocument<T>;
  try {
    parsed = parse(raw);
  } catch (err) {
    if (!(err instanceof InvalidDocumentError)) throw err;
    const why = `${file}: ${err.message}`;
    return (format && planRecovery(file, why, parse, format)) ??
      { kind: 'move-aside', value: empty(), problem: (aside) => `${why}: moved to ${aside}, starting empty` };
  }
  if (parsed.dropped.length === 0) return { kind: 'clean', loaded: { value: parsed.value, problems: [], existed: true } };
  return {
    kind: 'rewrite',
    value: parsed.value,
    problems: (aside) => parsed.dropped.map((d) => `${file}: ${d} (dropped; the original file is kept as ${aside})`),
  };
}

/** Carries out a plan; the caller holds the store's lock when `format` (and so a rewrite) is given. */
function carryOut<T>(file: string, plan: Plan<T>, now: Date, format?: DocumentFormat<T>): LoadedDocument<T> {
  switch (plan.kind) {
    case 'clean':
      return plan.loaded;
    case 'move-aside': {
      const aside = moveAside(file, now);
      return { value: plan.value, problems: [plan.problem(aside)], asidePath: aside, existed: true };
    }
    case 'rewrite': {
      const aside = backupOnce(file, now);
      if (format) {
        // The damaged original is safe in the backup; the live file gets what was recovered, so
        // reopening is clean and makes no further copy.
        writeFileAtomic(file, serializeDocument(format.header, format.key, format.records(plan.value), boundOf(format)));
      }
      return { value: plan.value, problems: plan.problems(aside), asidePath: aside, existed: true };
    }
  }
}

/**
 * Reads `file` and parses it with `parse`. `parse` throws InvalidDocumentError for a
 * wrong shape and UnsupportedStoreVersionError for a newer format (which propagates).
 * With `format`, a damaged file is recovered record by record and rewritten under the lock.
 */
export function loadDocument<T>(
  file: string,
  parse: (raw: unknown) => ParsedDocument<T>,
  empty: () => T,
  now: () => Date = () => new Date(),
  format?: DocumentFormat<T>,
  lock: LockOptions = {},
): LoadedDocument<T> {
  removeStaleTempFiles(file);
  removeStaleLock(file, lock);
  const plan = planLoad(file, parse, empty, format);
  if (plan.kind === 'clean') return plan.loaded;
  if (!format) return carryOut(file, plan, now());
  // Repairs happen under the lock, on the file as it is then (another process may have fixed it).
  return withFileLock(file, () => carryOut(file, planLoad(file, parse, empty, format), now(), format), lock);
}

// ---------------------------------------------------------------------------------------
// A document shared with other processes
// ---------------------------------------------------------------------------------------

/** The `rev` token in the header line (the first bytes of the file), if there is one. */
function revisionOf(file: string): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(1024);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return /"rev":"([0-9a-f]{1,64})"/.exec(head.subarray(0, n).toString('latin1').split('\n', 1)[0]!)?.[1] ?? '-';
  } catch {
    return '-';
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Identifies one version of the file. Stat alone cannot: on ext4 a file replaced twice by rename
 * gets its old inode number back and mtime/ctime move in clock ticks (about 4 ms), so another
 * writer's add + remove of equal length can leave the same stat. Every save therefore writes a
 * random `rev` token into the header line, and the signature includes it.
 */
function signatureOf(file: string): string {
  try {
    const st = fs.statSync(file, { bigint: true });
    if (!st.isFile()) return `not-a-file:${st.ino}:${st.mtimeNs}`;
    return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${revisionOf(file)}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    return `error:${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/**
 * One store document as this process last read or wrote it. Changes go through change(), which
 * takes the lock, brings the value up to date with the file, applies the change and saves.
 */
export class SharedDocument<T> {
  /** Problems found while loading, and while re-reading a file changed by someone else. */
  readonly problems: string[];
  private current: T;
  private signature: string;
  private changes = 0;

  private constructor(
    readonly file: string,
    private readonly format: DocumentFormat<T>,
    loaded: LoadedDocument<T>,
    signature: string,
    private readonly now: () => Date,
    private readonly lock: LockOptions,
  ) {
    this.current = loaded.value;
    this.problems = [...loaded.problems];
    this.signature = signature;
  }

  static open<T>(file: string, format: DocumentFormat<T>, now: () => Date = () => new Date(), lock: LockOptions = {}): SharedDocument<T> {
    // The signature is taken before reading: a change in between is seen as a change later.
    const before = signatureOf(file);
    const loaded = loadDocument(file, format.parse, format.empty, now, format, lock);
    const signature = loaded.problems.length > 0 ? signatureOf(file) : before;
    return new SharedDocument(file, format, loaded, signature, now, lock);
  }

  get value(): T {
    return this.current;
  }

  /** Counts the times the value changed (saved here or re-read after another process saved). */
  get revision(): number {
    return this.changes;
  }

  /** Re-reads the file when another process changed it; true when it had changed. */
  refresh(): boolean {
    if (signatureOf(this.file) === this.signature) return false;
    return withFileLock(this.file, () => this.sync(), this.lock);
  }

  /**
   * Under the lock: the latest content (re-read if another process saved since), then
   * `change(latest)`; when it returns a `next` value, that is saved atomically (disk first,
   * memory second). A change that throws (e.g. the record was removed by another process) or
   * returns no `next` saves nothing.
   */
  change<R>(change: (latest: T) => { next?: T; result: R }): R {
    return withFileLock(this.file, () => {
      this.sync();
      const { next, result } = change(this.current);
      if (next !== undefined) {
        const header = { ...this.format.header, rev: randomBytes(8).toString('hex') };
        writeFileAtomic(this.file, serializeDocument(header, this.format.key, this.format.records(next), boundOf(this.format)));
        this.current = next;
        this.signature = signatureOf(this.file);
        this.changes++;
      }
      return result;
    }, this.lock);
  }

  /** Caller holds the lock. */
  private sync(): boolean {
    removeStaleTempFiles(this.file);
    const signature = signatureOf(this.file);
    if (signature === this.signature) return false;
    const plan = planLoad(this.file, this.format.parse, this.format.empty, this.format);
    const loaded = carryOut(this.file, plan, this.now(), this.format);
    this.problems.push(...loaded.problems);
    this.current = loaded.value;
    this.signature = signatureOf(this.file);
    this.changes++;
    return true;
  }
}
