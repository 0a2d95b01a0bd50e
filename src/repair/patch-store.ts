// PatchStore: the ordered patch history of one model, each patch with an `enabled` flag, in one
// JSON file per model fingerprint (one entry per line) written atomically on every change. The
// file is read and written whole, so it is bounded (MAX_DOCUMENT_CHARS): a change that would
// outgrow it is refused with what to do, and a repair's new patch is then kept in a file of its own
// (addNew). The enabled patches, in order, are what the runtime stacks (combinePatches).
// Several processes may share it: every change runs under the store's lock on the latest file
// content (SharedDocument, docs/architecture-stores.md), so no patch, toggle or delete made by
// another window or the CLI is lost or undone. A damaged file keeps its readable entries (one
// backup of the original) and is reported in `problems`.
import * as path from 'node:path';
import {
  InvalidPatchError, PatchMismatchError, patchFromJson, patchToJson, stringifyPatch, validatePatch,
  type Patch, type PatchScores,
} from './patch';
import { writeFileAtomic } from '../store/atomic';
import {
  DocumentTooLargeError, InvalidDocumentError, SharedDocument, UnsupportedStoreVersionError, type ParsedDocument,
} from '../store/document';
import { storeFileFor } from '../store/fingerprint-file';

const FORMAT_VERSION = 1;

export interface PatchEntry {
  patch: Patch;
  enabled: boolean;
  /** ISO 8601 time the patch entered the history. */
  addedAt: string;
}

/** The id is not in the history. */
export class UnknownPatchError extends Error {
  constructor(readonly id: string) {
    super(`no patch with id ${id} in the history: it may have been removed; refresh the list`);
    this.name = 'UnknownPatchError';
  }
}

/** A patch with that id is already in the history. */
export class DuplicatePatchError extends Error {
  constructor(readonly id: string) {
    super(`a patch with id ${id} is already in the history: toggle it instead of adding it again`);
    this.name = 'DuplicatePatchError';
  }
}

/** A new patch did not fit in the history (DocumentTooLargeError); it was kept in `keptIn` instead. */
export class HistoryFullError extends Error {
  constructor(readonly patchId: string, readonly keptIn: string, cause: DocumentTooLargeError) {
    super(`${cause.message}. The new patch is kept in ${keptIn}: once there is room, add it with STAR Repair: Manage Patches → Import a patch file…`);
    this.name = 'HistoryFullError';
  }
}

export interface PatchStoreOptions {
  /** The model's hidden size; when given every patch's deltas are checked against it. */
  hiddenSize?: number;
  now?: () => Date;
  /** The longest the history file may be (MAX_DOCUMENT_CHARS; smaller in tests). */
  maxFileChars?: number;
}

/** What the user is told when a change would make the history longer than its file may be. */
const HISTORY_BOUND = {
  what: 'the patch history of this model',
  advice: 'remove patches you no longer need (STAR Repair: Manage Patches → Remove from the history; undo only disables a patch)',
};

function copyEntry(e: PatchEntry): PatchEntry {
  // Patches are treated as immutable values, so a shallow copy of the entry suffices.
  return { patch: e.patch, enabled: e.enabled, addedAt: e.addedAt };
}

function parseDocument(file: string, fingerprint: string, hiddenSize: number | undefined) {
  return (raw: unknown): ParsedDocument<PatchEntry[]> => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new InvalidDocumentError('expected a JSON object with "version" and "entries"');
    }
    const doc = raw as Record<string, unknown>;
    if (typeof doc.version !== 'number') throw new InvalidDocumentError('missing numeric "version"');
    if (doc.version > FORMAT_VERSION) throw new UnsupportedStoreVersionError(file, doc.version, FORMAT_VERSION);
    if (doc.modelFingerprint !== fingerprint) {
      throw new InvalidDocumentError(`"modelFingerprint" is ${JSON.stringify(doc.modelFingerprint)}, expected ${fingerprint}`);
    }
    if (!Array.isArray(doc.entries)) throw new InvalidDocumentError('"entries" must be an array');
    const value: PatchEntry[] = [];
    const dropped: string[] = [];
    const ids = new Set<string>();
    doc.entries.forEach((entry: unknown, i: number) => {
      if (typeof entry !== 'object' || entry === null) {
        dropped.push(`entry #${i} is not an object`);
        return;
      }
      const e = entry as Record<string, unknown>;
      if (typeof e.enabled !== 'boolean' || typeof e.addedAt !== 'string') {
        dropped.push(`entry #${i} lacks a boolean "enabled" or a string "addedAt"`);
        return;
      }
      try {
        const patch = patchFromJson(e.patch, hiddenSize);
        if (patch.modelFingerprint !== fingerprint) {
          dropped.push(`entry #${i} (patch ${patch.id}) was made for model ${patch.modelFingerprint.slice(0, 8)}…`);
          return;
        }
        if (ids.has(patch.id)) {
          dropped.push(`entry #${i} repeats patch id ${patch.id}`);
          return;
        }
        ids.add(patch.id);
        value.push({ patch, enabled: e.enabled, addedAt: e.addedAt });
      } catch (err) {
        if (!(err instanceof InvalidPatchError)) throw err;
        dropped.push(`entry #${i}: ${err.problems.join('; ')}`);
      }
    });
    return { value, dropped };
  };
}

export class PatchStore {
  private readonly listeners = new Set<(entries: readonly PatchEntry[]) => void>();

  private constructor(
    readonly file: string,
    readonly modelFingerprint: string,
    private readonly doc: SharedDocument<PatchEntry[]>,
    private readonly options: PatchStoreOptions,
  ) {}

  /**
   * Opens the history of `modelFingerprint` in `dir` (created on first write).
   * Never throws for a damaged file: see `problems`.
   */
  static open(dir: string, modelFingerprint: string, options: PatchStoreOptions = {}): PatchStore {
    const file = storeFileFor(dir, 'patches', modelFingerprint);
    const doc = SharedDocument.open(file, {
      key: 'entries',
      header: { version: FORMAT_VERSION, modelFingerprint },
      parse: parseDocument(file, modelFingerprint, options.hiddenSize),
      empty: () => [],
      records: (entries) => entries.map((e) => ({ enabled: e.enabled, addedAt: e.addedAt, patch: patchToJson(e.patch) })),
      bound: { ...HISTORY_BOUND, ...(options.maxFileChars === undefined ? {} : { maxChars: options.maxFileChars }) },
    }, options.now);
    return new PatchStore(file, modelFingerprint, doc, options);
  }

  /** What went wrong while loading or re-reading (damaged file recovered, entries dropped). */
  get problems(): readonly string[] {
    return this.doc.problems;
  }

  private get entries(): readonly PatchEntry[] {
    return this.doc.value;
  }

  /** The whole history, oldest first. */
  list(): PatchEntry[] {
    return this.entries.map(copyEntry);
  }

  get(id: string): PatchEntry | undefined {
    const e = this.entries.find((x) => x.patch.id === id);
    return e === undefined ? undefined : copyEntry(e);
  }

  /** The enabled patches, oldest first: what the runtime applies. */
  active(): Patch[] {
    return this.entries.filter((e) => e.enabled).map((e) => e.patch);
  }

  /**
   * Appends a patch to the history. Throws PatchMismatchError when it was made for
   * another model, InvalidPatchError when malformed, DuplicatePatchError on a known id.
   */
  add(patch: Patch, options: { enabled?: boolean } = {}): PatchEntry {
    if (patch.modelFingerprint !== this.modelFingerprint) {
      throw new PatchMismatchError(patch.id, patch.modelFingerprint, this.modelFingerprint);
    }
    validatePatch(patch, this.options.hiddenSize);
    const entry: PatchEntry = { patch, enabled: options.enabled ?? true, addedAt: this.now().toISOString() };
    return this.commit((latest) => {
      if (latest.some((e) => e.patch.id === patch.id)) throw new DuplicatePatchError(patch.id);
      return { next: [...latest, entry], result: copyEntry(entry) };
    });
  }

  /**
   * add() for a patch that exists nowhere else (a repair's result): when the history has no room
   * for it, the patch is written to a file beside the history and HistoryFullError says where, so
   * a repair's work is never lost to a full history.
   */
  addNew(patch: Patch, options: { enabled?: boolean } = {}): PatchEntry {
    try {
      return this.add(patch, options);
    } catch (err) {
      if (!(err instanceof DocumentTooLargeError)) throw err;
      const keptIn = path.join(path.dirname(this.file), `unsaved-patch-${patch.id.replace(/[^A-Za-z0-9_-]/g, '_')}.json`);
      writeFileAtomic(keptIn, stringifyPatch(patch));
      throw new HistoryFullError(patch.id, keptIn, err);
    }
  }

  /** Enables or disables a patch (flips it when `enabled` is omitted). */
  toggle(id: string, enabled?: boolean): PatchEntry {
    return this.replace(id, (e) => ({ ...e, enabled: enabled ?? !e.enabled }));
  }

  /** Records evaluation scores for a patch (e.g. after a re-evaluation). */
  setScores(id: string, scores: PatchScores): PatchEntry {
    return this.replace(id, (e) => ({ ...e, patch: { ...e.patch, scores: { ...scores } } }));
  }

  /** Deletes a patch from the history; returns the removed entry. */
  remove(id: string): PatchEntry {
    return this.commit((latest) => {
      const i = indexOf(latest, id);
      return { next: latest.filter((_, j) => j !== i), result: copyEntry(latest[i]!) };
    });
  }

  /**
   * Undoes the most recent enabled patch by disabling it (it stays in the history,
   * so the undo itself can be undone with toggle). Returns it, or undefined when no
   * patch is enabled.
   */
  undoLast(): PatchEntry | undefined {
    return this.commit((latest) => {
      for (let i = latest.length - 1; i >= 0; i--) {
        if (latest[i]!.enabled) return replaceAt(latest, i, { ...latest[i]!, enabled: false });
      }
      return { result: undefined };
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

  /** Called after every successful change with the new history. Returns an unsubscribe function. */
  onDidChange(listener: (entries: readonly PatchEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private replace(id: string, change: (e: PatchEntry) => PatchEntry): PatchEntry {
    return this.commit((latest) => {
      const i = indexOf(latest, id);
      return replaceAt(latest, i, change(latest[i]!));
    });
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  // Under the store's lock, on the latest content; disk first, memory second.
  private commit<R>(change: (latest: readonly PatchEntry[]) => { next?: PatchEntry[]; result: R }): R {
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

function indexOf(entries: readonly PatchEntry[], id: string): number {
  const i = entries.findIndex((e) => e.patch.id === id);
  if (i < 0) throw new UnknownPatchError(id);
  return i;
}

function replaceAt(entries: readonly PatchEntry[], i: number, entry: PatchEntry): { next: PatchEntry[]; result: PatchEntry } {
  const next = entries.slice();
  next[i] = entry;
  return { next, result: copyEntry(entry) };
}
