// FailureStore: the captured and imported failures of one model, persisted as one
// JSON file per model fingerprint (one record per line), written atomically on every change.
// Several processes (two VS Code windows, the CLI) may share it: every change runs under the
// store's lock on the latest file content (SharedDocument, docs/architecture-stores.md), so
// no process drops another's records or undoes its status changes and deletes. A damaged
// file keeps its readable records (one backup of the original) and is reported in `problems`.
import { createFailure, validateFailure, InvalidFailureError, type Failure, type FailureLimits, type NewFailureInput } from './failure';
import { InvalidDocumentError, SharedDocument, UnsupportedStoreVersionError, type ParsedDocument } from '../store/document';
import { storeFileFor } from '../store/fingerprint-file';

const FORMAT_VERSION = 1;

/** The id is not in the store. */
export class UnknownFailureError extends Error {
  constructor(readonly id: string) {
    super(`no failure with id ${id} in the store: it may have been removed; refresh the list`);
    this.name = 'UnknownFailureError';
  }
}

/** A failure with that id is already stored. */
export class DuplicateFailureError extends Error {
  constructor(readonly id: string) {
    super(`a failure with id ${id} is already stored: use update() to change it`);
    this.name = 'DuplicateFailureError';
  }
}

/** Fields update() may change; identity, provenance and creation time stay fixed. */
export type FailureChanges = Partial<Pick<Failure, 'status' | 'group' | 'desired' | 'prompt' | 'rejected' | 'languageId'>>;

export interface FailureStoreOptions {
  limits?: Partial<FailureLimits>;
  now?: () => Date;
}

export interface FailureFilter {
  status?: Failure['status'] | readonly Failure['status'][];
  source?: Failure['source'];
  uri?: string;
  group?: string;
}

function parseDocument(file: string, fingerprint: string, limits: Partial<FailureLimits>) {
  return (raw: unknown): ParsedDocument<Failure[]> => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new InvalidDocumentError('expected a JSON object with "version" and "failures"');
    }
    const doc = raw as Record<string, unknown>;
    if (typeof doc.version !== 'number') throw new InvalidDocumentError('missing numeric "version"');
    if (doc.version > FORMAT_VERSION) throw new UnsupportedStoreVersionError(file, doc.version, FORMAT_VERSION);
    if (doc.modelFingerprint !== fingerprint) {
      throw new InvalidDocumentError(`"modelFingerprint" is ${JSON.stringify(doc.modelFingerprint)}, expected ${fingerprint}`);
    }
    if (!Array.isArray(doc.failures)) throw new InvalidDocumentError('"failures" must be an array');
    const value: Failure[] = [];
    const dropped: string[] = [];
    const ids = new Set<string>();
    doc.failures.forEach((entry: unknown, i: number) => {
      try {
        const f = validateFailure(entry, limits);
        if (ids.has(f.id)) {
          dropped.push(`failure #${i} repeats id ${f.id}`);
          return;
        }
        ids.add(f.id);
        value.push(f);
      } catch (err) {
        if (!(err instanceof InvalidFailureError)) throw err;
        dropped.push(`failure #${i}: ${err.problems.join('; ')}`);
      }
    });
    return { value, dropped };
  };
}

export class FailureStore {
  private readonly listeners = new Set<(failures: readonly Failure[]) => void>();

  private constructor(
    readonly file: string,
    readonly modelFingerprint: string,
    private readonly doc: SharedDocument<Failure[]>,
    private readonly options: FailureStoreOptions,
  ) {}

  /**
   * Opens (or creates on first write) the store of `modelFingerprint` in `dir`.
   * Never throws for a damaged file: see `problems`. Throws UnsupportedStoreVersionError
   * for a file from a newer extension and InvalidFingerprintError for a bad key.
   */
  static open(dir: string, modelFingerprint: string, options: FailureStoreOptions = {}): FailureStore {
    const file = storeFileFor(dir, 'failures', modelFingerprint);
    const doc = SharedDocument.open(file, {
      key: 'failures',
      header: { version: FORMAT_VERSION, modelFingerprint },
      parse: parseDocument(file, modelFingerprint, options.limits ?? {}),
      empty: () => [],
      records: (failures) => failures,
      bound: { what: 'the failure list of this model' },
    }, options.now);
    return new FailureStore(file, modelFingerprint, doc, options);
  }

  /** What went wrong while loading or re-reading (damaged file recovered, entries dropped). */
  get problems(): readonly string[] {
    return this.doc.problems;
  }

  private get failures(): readonly Failure[] {
    return this.doc.value;
  }

  /** Failures in the order they were added, optionally filtered. */
  list(filter: FailureFilter = {}): Failure[] {
    const statuses = filter.status === undefined ? undefined : ([] as Failure['status'][]).concat(filter.status);
    return this.failures
      .filter((f) => (statuses === undefined || statuses.includes(f.status)) &&
        (filter.source === undefined || f.source === filter.source) &&
        (filter.uri === undefined || f.uri === filter.uri) &&
        (filter.group === undefined || f.group === filter.group))
      .map((f) => ({ ...f }));
  }

  get(id: string): Failure | undefined {
    const f = this.failures.find((x) => x.id === id);
    return f === undefined ? undefined : { ...f };
  }

  /**
   * Adds a failure unless an open (pending or unfixed) one already has the same prompt and the
   * same desired text up to a final line break: then that one is returned, taking the new desired
   * text. A manual repair of text that was also captured (the user typed it over a suggestion,
   * then selected the line with its line break) so reuses the captured failure instead of leaving
   * a twin behind.
   */
  addOrReuse(input: NewFailureInput): Failure {
    const bare = (t: string) => t.replace(/\r?\n$/, '');
    const created = createFailure(input, this.options.limits, this.now());
    return this.commit((latest) => {
      for (let i = latest.length - 1; i >= 0; i--) {
        const f = latest[i]!;
        if ((f.status !== 'pending' && f.status !== 'unfixed') || f.prompt !== input.prompt || bare(f.desired) !== bare(input.desired)) continue;
        if (f.desired === input.desired) return { result: { ...f } };
        return replaceAt(latest, i, validateFailure({ ...f, desired: input.desired }, this.options.limits));
      }
      return appendNew(latest, created);
    });
  }

  get size(): number {
    return this.failures.length;
  }

  /** Adds a complete failure or creates one from the given fields; persists; returns it. */
  add(failure: Failure | NewFailureInput): Failure {
    const f = 'status' in failure && 'id' in failure && 'createdAt' in failure && 'source' in failure && 'languageId' in failure
      ? validateFailure(failure, this.options.limits)
      : createFailure(failure, this.options.limits, this.now());
    return this.commit((latest) => appendNew(latest, f));
  }

  /** Changes some fields of a stored failure (validated); persists; returns the new record. */
  update(id: string, changes: FailureChanges): Failure {
    return this.commit((latest) => {
      const i = latest.findIndex((x) => x.id === id);
      if (i < 0) throw new UnknownFailureError(id);
      return replaceAt(latest, i, validateFailure({ ...latest[i], ...changes }, this.options.limits));
    });
  }

  /** Removes failures by id; returns how many were removed. Unknown ids are ignored. */
  remove(...ids: string[]): number {
    const drop = new Set(ids);
    return this.commit((latest) => {
      const next = latest.filter((f) => !drop.has(f.id));
      const removed = latest.length - next.length;
      return removed > 0 ? { next, result: removed } : { result: 0 };
    });
  }

  /**
   * Re-reads the file if another process (another window, the CLI) changed it; listeners hear
   * of it. Changes made here always start from the latest file, with or without this.
   */
  refresh(): boolean {
    const changed = this.doc.refresh();
    if (changed) this.notify();
    return changed;
  }

  /** Called after every successful change with the new list. Returns an unsubscribe function. */
  onDidChange(listener: (failures: readonly Failure[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  // Under the store's lock, on the latest content; disk first, memory second.
  private commit<R>(change: (latest: readonly Failure[]) => { next?: Failure[]; result: R }): R {
    const revision = this.doc.revision;
    try {
      return this.doc.change((latest) => change(latest));
    } finally {
      if (this.doc.revision !== revision) this.notify();
    }
  }

  private notify(): void {
    const snapshot = this.list();
    for (const l of this.listeners) l(snapshot);
  }
}

function appendNew(latest: readonly Failure[], f: Failure): { next: Failure[]; result: Failure } {
  if (latest.some((x) => x.id === f.id)) throw new DuplicateFailureError(f.id);
  return { next: [...latest, f], result: { ...f } };
}

function replaceAt(latest: readonly Failure[], i: number, updated: Failure): { next: Failure[]; result: Failure } {
  const next = latest.slice();
  next[i] = updated;
  return { next, result: { ...updated } };
}
