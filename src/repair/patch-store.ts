// PatchStore: the ordered patch history of one model, each patch with an `enabled`
// flag, in one JSON file per model fingerprint written atomically on every change.
// The enabled patches, in order, are what the runtime stacks (combinePatches).
// A damaged file is moved aside (nothing readable is lost) and reported in `problems`.
import {
  InvalidPatchError, PatchMismatchError, patchFromJson, patchToJson, validatePatch,
  type Patch, type PatchJson, type PatchScores,
} from './patch';
import { writeJsonFileAtomic } from '../store/atomic';
import { loadDocument, InvalidDocumentError, UnsupportedStoreVersionError, type ParsedDocument } from '../store/document';
import { storeFileFor } from '../store/fingerprint-file';

const FORMAT_VERSION = 1;

export interface PatchEntry {
  patch: Patch;
  enabled: boolean;
  /** ISO 8601 time the patch entered the history. */
  addedAt: string;
}

interface PatchDocument {
  version: number;
  modelFingerprint: string;
  entries: { enabled: boolean; addedAt: string; patch: PatchJson }[];
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

export interface PatchStoreOptions {
  /** The model's hidden size; when given every patch's deltas are checked against it. */
  hiddenSize?: number;
  now?: () => Date;
}

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
  private entries: PatchEntry[];
  private readonly listeners = new Set<(entries: readonly PatchEntry[]) => void>();

  private constructor(
    readonly file: string,
    readonly modelFingerprint: string,
    entries: PatchEntry[],
    /** What went wrong while loading (damaged file moved aside, entries dropped). */
    readonly problems: readonly string[],
    private readonly options: PatchStoreOptions,
  ) {
    this.entries = entries;
  }

  /**
   * Opens the history of `modelFingerprint` in `dir` (created on first write).
   * Never throws for a damaged file: see `problems`.
   */
  static open(dir: string, modelFingerprint: string, options: PatchStoreOptions = {}): PatchStore {
    const file = storeFileFor(dir, 'patches', modelFingerprint);
    const loaded = loadDocument(file, parseDocument(file, modelFingerprint, options.hiddenSize), () => [], options.now);
    return new PatchStore(file, modelFingerprint, loaded.value, loaded.problems, options);
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
    if (this.entries.some((e) => e.patch.id === patch.id)) throw new DuplicatePatchError(patch.id);
    const entry: PatchEntry = { patch, enabled: options.enabled ?? true, addedAt: this.now().toISOString() };
    this.commit([...this.entries, entry]);
    return copyEntry(entry);
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
    const i = this.indexOf(id);
    const removed = this.entries[i]!;
    this.commit(this.entries.filter((_, j) => j !== i));
    return copyEntry(removed);
  }

  /**
   * Undoes the most recent enabled patch by disabling it (it stays in the history,
   * so the undo itself can be undone with toggle). Returns it, or undefined when no
   * patch is enabled.
   */
  undoLast(): PatchEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i]!.enabled) return this.toggle(this.entries[i]!.patch.id, false);
    }
    return undefined;
  }

  /** Called after every successful change with the new history. Returns an unsubscribe function. */
  onDidChange(listener: (entries: readonly PatchEntry[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private indexOf(id: string): number {
    const i = this.entries.findIndex((e) => e.patch.id === id);
    if (i < 0) throw new UnknownPatchError(id);
    return i;
  }

  private replace(id: string, change: (e: PatchEntry) => PatchEntry): PatchEntry {
    const i = this.indexOf(id);
    const next = this.entries.slice();
    next[i] = change(this.entries[i]!);
    this.commit(next);
    return copyEntry(next[i]!);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  // Disk first, memory second: if the write fails the store still matches the file.
  private commit(next: PatchEntry[]): void {
    const doc: PatchDocument = {
      version: FORMAT_VERSION,
      modelFingerprint: this.modelFingerprint,
      entries: next.map((e) => ({ enabled: e.enabled, addedAt: e.addedAt, patch: patchToJson(e.patch) })),
    };
    writeJsonFileAtomic(this.file, doc);
    this.entries = next;
    const snapshot = this.list();
    for (const l of this.listeners) l(snapshot);
  }
}
