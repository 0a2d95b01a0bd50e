// The rejection tracker: a pure state machine, fed with editor events, that turns
// "the model suggested X here and the user wrote Y instead" into a captured failure,
// and "the user took X" into a regression sample. No vscode import: the extension
// adapts its events to TrackerEvent, and the tests drive it with synthetic edits.
//
// Rules (the contract the unit tests pin down):
// - A suggestion is tracked from its `shown` event at its start position (the anchor).
//   The tracker keeps its own copy of the anchor line, updated by every edit on it, so
//   reading the document again is needed only at `shown` (and for the rare edit whose
//   range spans from the anchor line into later lines without inserting a newline).
// - The line is finished when a newline is typed on it at or after the anchor, when
//   the cursor goes to another line or document, when the document is closed, or when
//   a suggestion is shown somewhere else. Then `desired` = the text from the anchor to
//   the end of the line, minus the text that already followed the anchor when the
//   suggestion was shown (e.g. an auto-closed ")"), minus trailing whitespace.
// - Not a failure: nothing typed; text equal to the suggestion's first line (typed by
//   hand = implicit acceptance, recorded as a regression sample); text that is a prefix
//   of the suggestion's first line (the user stopped part-way through typing it).
// - Whitespace: trailing whitespace is ignored and runs of spaces/tabs inside the line
//   compare as one space (so "x =  1" equals "x = 1"), but leading whitespace
//   (indentation, meaningful in Python) and the presence of a space ("a+b" vs "a + b")
//   count as differences.
// - Cancelled (no failure): an edit that touches the text before the anchor (the user
//   deleted back before the start, or changed the prompt on that line); accepting
//   another suggestion shown at the same place (the user chose among the model's offers);
//   dismissing the ghost text (Escape) before typing anything on its line at or after the
//   anchor — the user said "no suggestion here", not "this one is wrong". Escape after
//   typing changes nothing: the typing already rejected it.
// - One failure per finished line at most: of the suggestions pending on that line,
//   the one with the earliest anchor whose text differs; later ones are superseded.
// - `accepted` (from the completion item's command) records the suggestion as a
//   regression sample in a bounded ring; it may arrive after the insertion edit.

export interface TextRange {
  startLine: number;
  startChar: number;
  endLine: number;
  endChar: number;
}

export interface ShownEvent {
  type: 'shown';
  /** Unique id of the shown item (the completion item carries it to its accept command). */
  id: string;
  uri: string;
  /** Start of the ghost text (zero-based). */
  line: number;
  character: number;
  /** The prompt the model saw. */
  prefix: string;
  /** The ghost text as shown. */
  text: string;
  languageId: string;
  time: number;
}

export interface AcceptedEvent {
  type: 'accepted';
  id: string;
  time?: number;
}

/**
 * One document change. For a multi-change event (VS Code's contentChanges) feed the
 * changes one by one in the order VS Code lists them (descending positions), so that
 * each range is valid against the text after the previous change.
 */
export interface EditEvent {
  type: 'edit';
  uri: string;
  range: TextRange;
  text: string;
  time: number;
}

export interface CursorEvent {
  type: 'cursor';
  uri: string;
  line: number;
  character: number;
  time: number;
}

/** The user dismissed the ghost text shown on `line` (Escape). */
export interface DismissedEvent {
  type: 'dismissed';
  uri: string;
  line: number;
  time?: number;
}

export interface ClosedEvent {
  type: 'closed';
  uri: string;
  time?: number;
}

export type TrackerEvent = ShownEvent | AcceptedEvent | EditEvent | CursorEvent | DismissedEvent | ClosedEvent;

export type FinishReason = 'newline' | 'cursor-left' | 'closed' | 'elsewhere' | 'flushed';

/** A rejected suggestion: what the model saw, what it proposed, what the user wrote. */
export interface CapturedFailure {
  suggestionId: string;
  uri: string;
  line: number;
  languageId: string;
  prompt: string;
  /** The ghost text as shown (its first line is what was compared). */
  rejected: string;
  desired: string;
  shownAt: number;
  finishedAt: number;
  reason: FinishReason;
}

/** A completion the model got right: for the specificity check. */
export interface RegressionSample {
  suggestionId: string;
  uri: string;
  languageId: string;
  prompt: string;
  /** The accepted ghost text, or its first line when it was typed by hand. */
  completion: string;
  how: 'accepted' | 'typed';
  time: number;
}

export type DropReason =
  | 'nothing-typed' | 'partial' | 'edited-before-start' | 'accepted-alternative' | 'dismissed' | 'superseded' | 'evicted';

export type TrackerOutput =
  | { type: 'failure'; failure: CapturedFailure }
  | { type: 'regression'; sample: RegressionSample }
  | { type: 'dropped'; suggestionId: string; reason: DropReason };

export interface TrackerOptions {
  /** Current text of a line of an open document (undefined when unknown). */
  lineText(uri: string, line: number): string | undefined;
  /** Regression samples kept, newest last (default 200). */
  regressionLimit?: number;
  /** Suggestions tracked at once; the oldest is evicted beyond it (default 16). */
  maxPending?: number;
}

interface Pending {
  id: string;
  uri: string;
  line: number;
  anchor: number;
  /** The tracker's copy of the anchor line's current text. */
  lineText: string;
  /** Text after the anchor when the suggestion was shown. */
  suffix: string;
  prefix: string;
  text: string;
  languageId: string;
  shownAt: number;
  finish?: { reason: FinishReason; time: number };
  cancelled?: boolean;
  /** The line changed at or after the anchor since the suggestion was shown. */
  typed?: boolean;
}

interface ShownRecord {
  uri: string;
  line: number;
  character: number;
  prefix: string;
  text: string;
  languageId: string;
}

const SHOWN_MEMORY = 256;

/** The text after `anchor` on the finished line, without the original suffix and trailing whitespace. */
export function typedText(lineText: string, anchor: number, suffix: string): string {
  let end = lineText.length;
  if (suffix.length > 0 && lineText.endsWith(suffix) && end - suffix.length >= anchor) end -= suffix.length;
  return lineText.slice(anchor, end).replace(/\s+$/, '');
}

/** Whitespace rule: trailing whitespace dropped, inner runs of blanks as one space, indentation kept. */
export function normaliseForComparison(s: string): string {
  const trimmed = s.replace(/\s+$/, '');
  const indent = /^[ \t]*/.exec(trimmed)![0];
  return indent + trimmed.slice(indent.length).replace(/[ \t]+/g, ' ');
}

/** How a finished line relates to a suggestion. */
export function classifyTyped(desired: string, suggestion: string): 'nothing-typed' | 'typed' | 'partial' | 'different' {
  if (desired.length === 0) return 'nothing-typed';
  const firstLine = suggestion.split('\n', 1)[0]!;
  const d = normaliseForComparison(desired);
  const r = normaliseForComparison(firstLine);
  if (d === r) return 'typed';
  if (r.startsWith(d)) return 'partial';
  return 'different';
}

function newlineCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 10) n++;
  return n;
}

export class RejectionTracker {
  private pending: Pending[] = [];
  private readonly shown = new Map<string, ShownRecord>();
  private readonly ring: RegressionSample[] = [];
  private readonly failureListeners = new Set<(f: CapturedFailure) => void>();
  private readonly regressionListeners = new Set<(s: RegressionSample) => void>();
  private readonly regressionLimit: number;
  private readonly maxPending: number;

  constructor(private readonly options: TrackerOptions) {
    this.regressionLimit = Math.max(0, Math.floor(options.regressionLimit ?? 200));
    this.maxPending = Math.max(1, Math.floor(options.maxPending ?? 16));
  }

  /** Feeds one event; returns what it produced (also delivered to the listeners). */
  handle(event: TrackerEvent): TrackerOutput[] {
    const out: TrackerOutput[] = [];
    switch (event.type) {
      case 'shown': this.onShown(event, out); break;
      case 'accepted': this.onAccepted(event, out); break;
      case 'edit': this.onEdit(event, out); break;
      case 'cursor': this.onCursor(event); break;
      case 'dismissed': this.onDismissed(event, out); break;
      case 'closed': this.markFinished((p) => p.uri === event.uri, 'closed', event.time ?? Date.now()); break;
    }
    this.resolveFinished(out);
    this.deliver(out);
    return out;
  }

  /** Finishes every tracked suggestion now (e.g. on shutdown). */
  flush(time: number = Date.now()): TrackerOutput[] {
    const out: TrackerOutput[] = [];
    this.markFinished(() => true, 'flushed', time);
    this.resolveFinished(out);
    this.deliver(out);
    return out;
  }

  onFailure(listener: (f: CapturedFailure) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  onRegressionSample(listener: (s: RegressionSample) => void): () => void {
    this.regressionListeners.add(listener);
    return () => this.regressionListeners.delete(listener);
  }

  /** Accepted (and typed-through) completions, oldest first, at most `regressionLimit`. */
  regressionSet(): RegressionSample[] {
    return this.ring.map((s) => ({ ...s }));
  }

  /** Ids of the suggestions being tracked (for diagnostics). */
  pendingIds(): string[] {
    return this.pending.map((p) => p.id);
  }

  private onShown(e: ShownEvent, out: TrackerOutput[]): void {
    if (e.text.length === 0 || this.pending.some((p) => p.id === e.id)) return;
    // The user is now somewhere else: whatever was pending elsewhere is finished.
    this.markFinished((p) => p.uri !== e.uri || p.line !== e.line, 'elsewhere', e.time);
    this.resolveFinished(out);
    const known = this.options.lineText(e.uri, e.line);
    // Without the document's line, the prompt's last line is the best view of the text before the anchor.
    const lineText = known ?? e.prefix.slice(e.prefix.lastIndexOf('\n') + 1);
    const anchor = Math.min(e.character, lineText.length);
    this.pending.push({
      id: e.id, uri: e.uri, line: e.line, anchor, lineText, suffix: lineText.slice(anchor),
      prefix: e.prefix, text: e.text, languageId: e.languageId, shownAt: e.time,
    });
    this.remember(e.id, { uri: e.uri, line: e.line, character: e.character, prefix: e.prefix, text: e.text, languageId: e.languageId });
    while (this.pending.length > this.maxPending) {
      const evicted = this.pending.shift()!;
      out.push({ type: 'dropped', suggestionId: evicted.id, reason: 'evicted' });
    }
  }

  private onAccepted(e: AcceptedEvent, out: TrackerOutput[]): void {
    const rec = this.shown.get(e.id);
    if (rec === undefined) return;
    const time = e.time ?? Date.now();
    const i = this.pending.findIndex((p) => p.id === e.id);
    if (i >= 0) {
      const p = this.pending[i]!;
      this.pending.splice(i, 1);
      // Alternatives offered at the same place were not rejected by typing: the user picked one.
      for (const q of this.pending.filter((x) => x.uri === p.uri && x.line === p.line && x.anchor === p.anchor)) {
        out.push({ type: 'dropped', suggestionId: q.id, reason: 'accepted-alternative' });
      }
      this.pending = this.pending.filter((x) => !(x.uri === p.uri && x.line === p.line && x.anchor === p.anchor));
    }
    const sample: RegressionSample = {
      suggestionId: e.id, uri: rec.uri, languageId: rec.languageId, prompt: rec.prefix, completion: rec.text, how: 'accepted', time,
    };
    // The insertion edit may already have finished the suggestion as typed-through: upgrade that sample.
    const j = this.ring.findIndex((s) => s.suggestionId === e.id);
    if (j >= 0) this.ring.splice(j, 1);
    this.pushSample(sample, out);
  }

  private onEdit(e: EditEvent, out: TrackerOutput[]): void {
    const r = e.range;
    if (e.text.length === 0 && r.startLine === r.endLine && r.startChar === r.endChar) return;
    for (const p of this.pending) {
      if (p.uri !== e.uri || p.finish !== undefined) continue;
      const lastSegment = e.text.slice(e.text.lastIndexOf('\n') + 1);
      // Whole lines replaced above (the range ends at the start of the anchor line and
      // leaves nothing in front of it): the anchor line itself is untouched, only moved.
      const linesAbove = r.endLine < p.line ||
        (r.endLine === p.line && r.endChar === 0 && lastSegment === '' &&
          (r.startLine < p.line ? r.startChar === 0 || e.text.length > 0 : p.anchor > 0 && e.text.length > 0));
      if (linesAbove) {
        p.line += newlineCount(e.text) - (r.endLine - r.startLine);
        continue;
      }
      if (r.startLine > p.line) continue;
      if (r.startLine < p.line || r.startChar < p.anchor) {
        p.cancelled = true;
        continue;
      }
      p.typed = true;
      const sc = Math.min(r.startChar, p.lineText.length);
      const head = p.lineText.slice(0, sc) + e.text;
      const nl = head.indexOf('\n', sc);
      if (nl >= 0) {
        p.lineText = head.slice(0, nl).replace(/\r$/, '');
        p.finish = { reason: 'newline', time: e.time };
      } else if (r.endLine === p.line) {
        p.lineText = head + p.lineText.slice(Math.min(Math.max(r.endChar, sc), p.lineText.length));
      } else {
        // The change joined later lines onto the anchor line: their text is only in the document.
        p.lineText = this.options.lineText(e.uri, p.line) ?? head;
      }
    }
    for (const p of this.pending) if (p.cancelled) out.push({ type: 'dropped', suggestionId: p.id, reason: 'edited-before-start' });
    this.pending = this.pending.filter((p) => !p.cancelled);
  }

  private onDismissed(e: DismissedEvent, out: TrackerOutput[]): void {
    const gone = (p: Pending): boolean => p.uri === e.uri && p.line === e.line && p.finish === undefined && !p.typed;
    for (const p of this.pending) if (gone(p)) out.push({ type: 'dropped', suggestionId: p.id, reason: 'dismissed' });
    this.pending = this.pending.filter((p) => !gone(p));
  }

  private onCursor(e: CursorEvent): void {
    this.markFinished((p) => p.uri !== e.uri || p.line !== e.line, (p) => (p.uri === e.uri ? 'cursor-left' : 'elsewhere'), e.time);
  }

  private markFinished(which: (p: Pending) => boolean, reason: FinishReason | ((p: Pending) => FinishReason), time: number): void {
    for (const p of this.pending) {
      if (p.finish === undefined && which(p)) p.finish = { reason: typeof reason === 'function' ? reason(p) : reason, time };
    }
  }

  /** Turns finished suggestions into outputs, one failure at most per finished line. */
  private resolveFinished(out: TrackerOutput[]): void {
    const finished = this.pending.filter((p) => p.finish !== undefined);
    if (finished.length === 0) return;
    this.pending = this.pending.filter((p) => p.finish === undefined);
    const groups = new Map<string, Pending[]>();
    for (const p of finished) {
      const key = `${p.uri}\n${p.line}`;
      const g = groups.get(key);
      if (g === undefined) groups.set(key, [p]);
      else g.push(p);
    }
    for (const group of groups.values()) {
      group.sort((a, b) => a.anchor - b.anchor || a.shownAt - b.shownAt);
      let captured = false;
      for (const p of group) {
        const desired = typedText(p.lineText, p.anchor, p.suffix);
        const kind = classifyTyped(desired, p.text);
        const finish = p.finish!;
        if (kind === 'typed') {
          this.pushSample({
            suggestionId: p.id, uri: p.uri, languageId: p.languageId, prompt: p.prefix,
            completion: p.text.split('\n', 1)[0]!, how: 'typed', time: finish.time,
          }, out);
        } else if (kind === 'different' && !captured) {
          captured = true;
          out.push({
            type: 'failure',
            failure: {
              suggestionId: p.id, uri: p.uri, line: p.line, languageId: p.languageId, prompt: p.prefix,
              rejected: p.text, desired, shownAt: p.shownAt, finishedAt: finish.time, reason: finish.reason,
            },
          });
        } else {
          out.push({ type: 'dropped', suggestionId: p.id, reason: kind === 'different' ? 'superseded' : kind });
        }
      }
    }
  }

  private pushSample(sample: RegressionSample, out: TrackerOutput[]): void {
    if (this.regressionLimit === 0) return;
    this.ring.push(sample);
    while (this.ring.length > this.regressionLimit) this.ring.shift();
    out.push({ type: 'regression', sample: { ...sample } });
  }

  private remember(id: string, rec: ShownRecord): void {
    this.shown.delete(id);
    this.shown.set(id, rec);
    while (this.shown.size > SHOWN_MEMORY) this.shown.delete(this.shown.keys().next().value as string);
  }

  private deliver(out: TrackerOutput[]): void {
    for (const o of out) {
      if (o.type === 'failure') for (const l of this.failureListeners) l({ ...o.failure });
      else if (o.type === 'regression') for (const l of this.regressionListeners) l({ ...o.sample });
    }
  }
}
