// The prompt a completion runs on, as token ids (issue 15, items 1, 3, 4): token healing's cut, the
// FIM layout (runtime/fim.ts) or the prefix alone, and the cut that keeps it inside the context.
// generate() decodes it and repair/teacher.ts teacher-forces over it, so both build the same
// sequence from what a failure records (prefix, suffix, FIM format). Owns the FIM text split
// (fimText): a PSM prompt's prefix ends at the start of the cursor's line and the typed part of the
// line is the forced start of the middle, so keystrokes on one line share the whole prompt up to
// that part (prompt cache); the editor's auto-closed brackets and quotes are not fed (fedSuffix).
// Also the window of a large file: the nearest prefix and suffix within token budgets, cut at line
// starts and moved in steps so the prompt cache keeps matching.

import type { TextTokenizer } from '../model/tokenizer';
import { fimIds, fimLayout, type FimChoice, type FimIds, type FimOrder } from './fim';

/** Longest end of a prompt that healing takes off: a run of blank lines longer than this stays. */
const MAX_HEAL_CHARS = 64;

/**
 * Characters at the end of `prompt` to take off for healing: its last token's text, or all its
 * trailing whitespace when that is longer. 0 when the last token is end-of-text, or does not
 * spell the prompt's end (a character split over tokens). `keep`: characters (and tokens) that
 * must stay — 1 for a prompt the model reads alone, 0 for a FIM middle's forced start, which the
 * prefix and suffix already give context to.
 */
export function healLength(tokenizer: TextTokenizer, prompt: string, ids: readonly number[], keep: 0 | 1 = 1): number {
  if (ids.length < 1 + keep) return 0;
  const last = ids[ids.length - 1];
  if (last === tokenizer.eosId) return 0;
  const text = tokenizer.tokenText(last);
  if (text === '' || !prompt.endsWith(text)) return 0;
  const trailing = /\s*$/.exec(prompt)?.[0].length ?? 0;
  return Math.min(Math.max(text.length, trailing), MAX_HEAL_CHARS, prompt.length - keep);
}

/** The text of a FIM prompt's three parts: what goes after the prefix token, after the suffix token, and after the middle token. */
export interface FimText {
  prefix: string;
  suffix: string;
  /** The forced start of the middle: the typed part of the cursor's line (PSM), or '' (SPM, where the prefix ends the prompt). */
  middle: string;
}

/**
 * The rest of the cursor's line when it holds nothing but closing brackets and quotes — what the
 * editor closes automatically as the user types `(`, `[`, `{` or a quote, and types over later.
 */
const AUTO_CLOSED = /^[)\]}"'`]+[ \t]*(?=\r?\n|$)/;

/**
 * The text after the cursor as the prompt holds it: without the rest of the cursor's line when
 * that is only closing brackets and quotes. The editor adds and removes those at every bracket the
 * user types, and in either FIM order a change of the suffix re-prefills everything after its
 * start (in PSM the suffix window, ~11 % of a 0.5B prompt; in SPM the whole prompt), so feeding
 * them cost a suffix prefill at every other pause. The model then sees the line end after the
 * middle and may write the closer itself; the clean rules (runtime/clean.ts), which read the
 * whole suffix, drop a suggestion's end that repeats it. A rest of the line with anything else in
 * it (an argument, an operator) is fed whole: it does not change while the user types before it.
 */
export function fedSuffix(suffix: string): string {
  return suffix.replace(AUTO_CLOSED, '');
}

/**
 * How the text around the cursor is split into a FIM prompt's parts (the layout both the editor's
 * completion and teacher forcing use). PSM: the prefix ends at the start of the cursor's line and
 * the line's typed part opens the middle — `<pre> lines before <suf> suffix <mid> typed part` —
 * as llama.cpp's infill does with llama.vscode's `prompt`: while the user types on a line,
 * everything up to the typed part stays the same, so the prompt cache reuses the suffix too; a
 * change of line re-prefills the suffix once. SPM: the suffix comes first and the whole prefix
 * ends the prompt, already stable while typing. In both the suffix is fedSuffix's. `cursor` is the
 * layout before issue 15's reuse work (the PSM prefix ran to the cursor, the suffix was fed as
 * it is), kept for comparisons (bench:complete --tokens-only).
 */
export function fimText(prefix: string, suffix: string, order: FimOrder, layout: PromptLayout = 'line'): FimText {
  if (layout === 'cursor') return { prefix, suffix, middle: '' };
  const fed = fedSuffix(suffix);
  if (order === 'spm') return { prefix, suffix: fed, middle: '' };
  const lineStart = prefix.lastIndexOf('\n') + 1;
  return { prefix: prefix.slice(0, lineStart), suffix: fed, middle: prefix.slice(lineStart) };
}

export type PromptLayout = 'line' | 'cursor';

/** Most tokens of the typed part of a line that open a PSM middle: a longer line (minified code) keeps the prefix running to the cursor. */
export const MAX_MIDDLE_TOKENS = 256;

export interface PromptOptions {
  heal: boolean;
  /** Text after the cursor; used in the prompt only with `fim`. */
  suffix?: string;
  /** The FIM format and order; null or absent: the prefix alone. */
  fim?: FimChoice | null;
  /** Tokens the completion may take: the prompt keeps `context − maxTokens`. */
  maxTokens: number;
  context: number;
  /** The FIM text split (fimText); absent: 'line', the editor's. Only comparisons ask for 'cursor'. */
  layout?: PromptLayout;
}

export interface PreparedPrompt {
  /** What the model is fed before the completion. */
  ids: number[];
  /** The end of the prefix that healing took off; the completion spells it back first ('' without healing). */
  owed: string;
  /** The prefix as fed (without the healed end). */
  head: string;
  /** Token ids of `head` (before any cut; in a PSM prompt, those of its lines and of the middle's forced start, tokenised apart). */
  headIds: number[];
  /** Index in `ids` where the prefix's tokens start (0 without FIM). */
  prefixAt: number;
  /** The middle's forced start as fed (the typed part of the cursor's line without the healed end; [] when none): the last ids of `ids`. */
  middleIds: number[];
  fim: FimIds | null;
  /** Prompt tokens dropped to fit the context. */
  truncated: number;
}

/** `text` without its healed end: [kept text, its ids, owed]; nothing taken off when healing is off or cannot cut there. */
function healed(tokenizer: TextTokenizer, text: string, ids: number[], heal: boolean, keep: 0 | 1): [string, number[], string] {
  if (!heal) return [text, ids, ''];
  const cut = healLength(tokenizer, text, ids, keep);
  if (cut === 0) return [text, ids, ''];
  const head = text.slice(0, text.length - cut);
  const kept = head ? tokenizer.encode(head) : [];
  if (keep && kept.length === 0) return [text, ids, ''];
  return [head, kept, text.slice(text.length - cut)];
}

/** The prompt ids exactly as the completion feeds them (see the file comment). */
export function preparePrompt(tokenizer: TextTokenizer, prompt: string, o: PromptOptions): PreparedPrompt {
  const promptIds = tokenizer.encode(prompt);
  if (promptIds.length === 0) throw new Error('the prompt is empty: there is nothing to complete');
  // Keep the end of a long prompt: it is what the completion continues.
  const room = Math.max(1, o.context - Math.max(0, Math.floor(o.maxTokens)));
  if (!o.fim) {
    const [head, headIds, owed] = healed(tokenizer, prompt, promptIds, o.heal, 1);
    const drop = Math.max(0, headIds.length - room);
    return { ids: drop ? headIds.slice(drop) : headIds, owed, head, headIds, prefixAt: 0, middleIds: [], fim: null, truncated: drop };
  }
  const ids = fimIds(tokenizer, o.fim);
  let text = fimText(prompt, o.suffix ?? '', o.fim.order, o.layout ?? 'line');
  // PSM's line layout splits the prompt at the cursor's line; SPM and the cursor layout run the prefix to the cursor.
  let layout: PromptLayout = o.fim.order === 'psm' ? o.layout ?? 'line' : 'cursor';
  let middleIds = text.middle ? tokenizer.encode(text.middle) : [];
  if (middleIds.length > Math.min(MAX_MIDDLE_TOKENS, Math.floor(room / 4))) {
    // Too long a typed part: the prefix runs to the cursor, the suffix stays as fed.
    layout = 'cursor';
    text = { prefix: prompt, suffix: text.suffix, middle: '' };
    middleIds = [];
  }
  let owed = '';
  let prefixIds: number[];
  let head: string;
  if (layout === 'line') {
    // The typed part of the line opens the middle: healing takes its last token (all of it when it
    // is one token). At a line's start nothing is healed: the prefix ends at a line break, where
    // the model's training split its prefixes too, and the next keystroke's prompt extends this one.
    prefixIds = text.prefix ? tokenizer.encode(text.prefix) : [];
    const [middleHead, kept, cut] = healed(tokenizer, text.middle, middleIds, o.heal, 0);
    middleIds = kept;
    owed = cut;
    head = text.prefix + middleHead;
  } else {
    [head, prefixIds, owed] = healed(tokenizer, prompt, promptIds, o.heal, 1);
  }
  const headIds = [...prefixIds, ...middleIds];
  let suffixIds = text.suffix ? tokenizer.encode(text.suffix) : [];
  let truncated = 0;
  const free = Math.max(1, room - 3 - middleIds.length);
  if (prefixIds.length + suffixIds.length > free) {
    // Over the context: the suffix keeps at most a quarter of it (its start), the prefix the rest (its end).
    const keepSuffix = Math.min(suffixIds.length, Math.max(0, free - prefixIds.length), Math.floor(free / 4)) || Math.min(suffixIds.length, Math.floor(free / 4));
    truncated += suffixIds.length - keepSuffix;
    suffixIds = suffixIds.slice(0, keepSuffix);
    const keepPrefix = Math.max(middleIds.length ? 0 : 1, free - keepSuffix);
    if (prefixIds.length > keepPrefix) {
      truncated += prefixIds.length - keepPrefix;
      prefixIds = prefixIds.slice(prefixIds.length - keepPrefix);
    }
  }
  const laid = fimLayout(ids, prefixIds, suffixIds, middleIds);
  return { ids: laid.ids, owed, head, headIds, prefixAt: laid.prefixAt, middleIds, fim: ids, truncated };
}

// ---------------------------------------------------------------------------------------
// The window of a large file
// ---------------------------------------------------------------------------------------

export interface WindowBudget {
  /** Most tokens of text before the cursor. */
  prefixTokens: number;
  /** Most tokens of text after the cursor. */
  suffixTokens: number;
}

/**
 * The window budgets for a model's context, the ONE rule the worker and bench:complete use. The
 * prompt must fit beside the completion's tokens and the FIM sentinels (the 4), and the suffix's
 * tokens come out of the prefix's room: otherwise preparePrompt has to cut the prefix token by
 * token from the left, which moves the prompt's start at every keystroke and leaves the prompt
 * cache nothing to reuse. windowPrompt counts tokens per line (a few percent off the exact count
 * either way), hence the 5 % margin. `wanted`: the settings (absent: as much as fits; the suffix a
 * quarter of the room, at most half).
 */
export function windowBudget(context: number, maxTokens: number, wanted: { prefixTokens?: number; suffixTokens?: number }, fim: boolean): WindowBudget {
  const room = Math.max(16, context - maxTokens - 4);
  const suffixTokens = fim ? Math.max(0, Math.min(wanted.suffixTokens ?? Math.floor(room / 4), Math.floor(room / 2))) : 0;
  const prefixRoom = Math.max(16, Math.floor((room - suffixTokens) * 0.95));
  return { prefixTokens: Math.min(wanted.prefixTokens ?? prefixRoom, prefixRoom), suffixTokens };
}

export interface PromptWindow {
  prefix: string;
  suffix: string;
  /** Characters dropped from the start of the prefix. */
  prefixStart: number;
}

/** Lines the prefix's start moves by: typing keeps the same start (and so the cached prompt) for this many lines. */
export const WINDOW_STEP_LINES = 16;

const lineTokenCache = new WeakMap<TextTokenizer, Map<string, number>>();

/** Tokens of one line (with its line break), remembered per tokenizer: the window's estimate, cheap while typing. */
function lineTokens(tokenizer: TextTokenizer, line: string): number {
  let m = lineTokenCache.get(tokenizer);
  if (!m) lineTokenCache.set(tokenizer, (m = new Map()));
  let n = m.get(line);
  if (n === undefined) {
    n = tokenizer.encode(line).length;
    if (m.size > 50_000) m.clear();
    m.set(line, n);
  }
  return n;
}

/** Start offsets of the lines of `text`. */
function lineStarts(text: string): number[] {
  const out = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) out.push(i + 1);
  return out;
}

/**
 * The nearest prefix and suffix within the budgets, cut at line starts. The prefix's first line is
 * a multiple of WINDOW_STEP_LINES, so while the user types on, the prompt starts at the same place
 * and its cached tokens stay reusable; the suffix keeps its first whole lines (at least the rest of
 * the cursor's line, cut to the budget). A text that fits is kept whole, so a window of a window is
 * itself. Token counts are per-line sums (a few percent above the exact count, never below by much).
 */
export function windowPrompt(tokenizer: TextTokenizer, prefix: string, suffix: string, budget: WindowBudget): PromptWindow {
  let prefixStart = 0;
  const starts = lineStarts(prefix);
  // Tokens of each line of the prefix (the last one is the cursor's, up to the cursor).
  const counts = starts.map((s, i) => lineTokens(tokenizer, prefix.slice(s, i + 1 < starts.length ? starts[i + 1] : prefix.length)));
  let total = counts.reduce((a, b) => a + b, 0);
  if (total > budget.prefixTokens) {
    let first = 0;
    while (first < starts.length - 1 && total > budget.prefixTokens) total -= counts[first++];
    const stepped = Math.min(starts.length - 1, Math.ceil(first / WINDOW_STEP_LINES) * WINDOW_STEP_LINES);
    prefixStart = starts[Math.max(first, stepped)];
  }
  let keptSuffix = suffix;
  const sStarts = lineStarts(suffix);
  let used = 0;
  for (let i = 0; i < sStarts.length; i++) {
    const end = i + 1 < sStarts.length ? sStarts[i + 1] : suffix.length;
    const n = lineTokens(tokenizer, suffix.slice(sStarts[i], end));
    if (used + n > budget.suffixTokens) {
      // The rest of the cursor's line always stays: the clean-suggestion rules read it.
      keptSuffix = suffix.slice(0, i === 0 ? end : sStarts[i]);
      break;
    }
    used += n;
  }
  return { prefix: prefix.slice(prefixStart), suffix: keptSuffix, prefixStart };
}
