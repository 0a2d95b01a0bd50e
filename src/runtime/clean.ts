// Clean suggestions (issue 15, item 6): the rules that turn the model's completion into one a
// person would keep, applied by showCompletion() (runtime/completion.ts) after the stop rule, so
// the ghost text, every "is it fixed?" check and the teacher-forced target agree on them. Pure text
// rules (the tokenizer only answers "is this one token?"), each pinned by test/unit/clean-suggestions.test.ts:
//   1. never glue a suggestion onto a word: a suggestion that continues the word before the cursor
//      must make a word the file already uses or the vocabulary holds whole; one that ends in a
//      word running into the word after the cursor loses that end;
//   2. never repeat what the suffix holds: the end of the suggestion that the rest of the line
//      already starts with (closing brackets included, but not a bracket the suggestion opened)
//      is cut; in the middle of a line only the first line is kept;
//   3. keep indentation consistent with the editor: a suggestion on a blank line adds no blanks
//      that break the editor's indentation unit, and later lines use its tabs or spaces;
//   4. drop a suggestion that repeats the next lines.

import type { TextTokenizer } from '../model/tokenizer';

/** The editor's indentation (VS Code's `insertSpaces` and `tabSize` for the document). */
export interface IndentStyle {
  insertSpaces: boolean;
  tabSize: number;
}

export const DEFAULT_INDENT: Readonly<IndentStyle> = { insertSpaces: true, tabSize: 4 };

export interface CleanContext {
  /** Text before the cursor. */
  prefix: string;
  /** Text after the cursor ('' when unknown). */
  suffix: string;
  indent: IndentStyle;
  /** Answers whether a text is one token of the model's vocabulary (rule 1); absent: only words of the file count. */
  tokenizer?: TextTokenizer;
}

const WORD = /[\p{L}\p{N}_$]/u;
const CLOSERS: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && WORD.test(ch);
}

function wordBefore(text: string): string {
  return /[\p{L}\p{N}_$]*$/u.exec(text)![0];
}

function wordAfter(text: string): string {
  return /^[\p{L}\p{N}_$]*/u.exec(text)![0];
}

function knownWord(word: string, ctx: CleanContext, cursorWordStart: number): boolean {
  const escaped = word.replace(/[$]/g, '\\$');
  const re = new RegExp(`(?<![\\p{L}\\p{N}_$])${escaped}(?![\\p{L}\\p{N}_$])`, 'u');
  // The file's own words, except the one being typed.
  if (re.test(ctx.prefix.slice(0, cursorWordStart)) || re.test(ctx.suffix)) return true;
  const tok = ctx.tokenizer;
  if (!tok) return false;
  for (const form of [word, ` ${word}`]) {
    const ids = tok.encode(form);
    if (ids.length === 1) return true;
  }
  return false;
}

/** Rule 1, start: '' when the suggestion continues the word before the cursor into a word nobody knows. */
export function unglueStart(text: string, ctx: CleanContext): string {
  const before = wordBefore(ctx.prefix);
  if (!before || !isWordChar(text[0])) return text;
  const word = before + wordAfter(text);
  return knownWord(word, ctx, ctx.prefix.length - before.length) ? text : '';
}

/** Rule 1, end: a suggestion on one line whose last word would run into the word after the cursor loses that word. */
export function unglueEnd(text: string, ctx: CleanContext): string {
  const rest = lineRest(ctx.suffix);
  if (text.includes('\n') || !isWordChar(rest[0]) || !isWordChar(text[text.length - 1])) return text;
  return text.slice(0, text.length - wordBefore(text).length);
}

function lineRest(suffix: string): string {
  const nl = suffix.indexOf('\n');
  return nl < 0 ? suffix : suffix.slice(0, nl);
}

/** Does the suggestion open, before index `at`, the bracket closed by each closer in text[at..]? True when one of them closes the suggestion's own. */
function closesOwn(text: string, at: number): boolean {
  const stack: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(' || ch === '[' || ch === '{') stack.push(ch);
    else if (ch in CLOSERS) {
      if (stack.length && stack[stack.length - 1] === CLOSERS[ch]) {
        stack.pop();
        if (i >= at) return true;
      }
    }
  }
  return false;
}

/** Rule 2: cut the end of a one-line suggestion that the rest of the line already holds; keep one line in the middle of a line. */
export function unrepeatSuffix(text: string, ctx: CleanContext): string {
  const rest = lineRest(ctx.suffix).trimEnd();
  if (!rest.trim()) return text;
  let out = text;
  const nl = out.indexOf('\n');
  if (nl >= 0) out = out.slice(0, nl);
  const restTrim = rest.trimStart();
  for (let k = Math.min(restTrim.length, out.length); k >= 1; k--) {
    const piece = restTrim.slice(0, k);
    if (!out.endsWith(piece)) continue;
    const at = out.length - k;
    if (closesOwn(out, at)) continue;
    out = out.slice(0, at);
    break;
  }
  return out.trimEnd();
}

function indentWidth(ws: string, tabSize: number): number {
  let w = 0;
  for (const ch of ws) w += ch === '\t' ? tabSize - (w % tabSize) : 1;
  return w;
}

function indentText(width: number, style: IndentStyle): string {
  if (style.insertSpaces) return ' '.repeat(width);
  return '\t'.repeat(Math.floor(width / style.tabSize)) + ' '.repeat(width % style.tabSize);
}

/** Rule 3: indentation the editor's way. */
export function reindent(text: string, ctx: CleanContext): string {
  const style = ctx.indent;
  const unit = style.insertSpaces ? Math.max(1, style.tabSize) : style.tabSize;
  const cursorLine = ctx.prefix.slice(ctx.prefix.lastIndexOf('\n') + 1);
  let out = text;
  if (/^[ \t]*$/.test(cursorLine)) {
    const lead = /^[ \t]*/.exec(out)![0];
    if (lead) {
      const total = indentWidth(cursorLine + lead, style.tabSize);
      // The editor indented the line already: blanks that leave the unit are the model's off-by-one.
      if (total % unit !== 0) out = out.slice(lead.length);
      else if (!style.insertSpaces && lead.includes(' ')) out = indentText(total, style).slice(cursorLine.length) + out.slice(lead.length);
    }
  }
  const lines = out.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const lead = /^[ \t]*/.exec(lines[i])![0];
    if (!lead) continue;
    lines[i] = indentText(indentWidth(lead, style.tabSize), style) + lines[i].slice(lead.length);
  }
  return lines.join('\n');
}

/** Rule 4: true when the suggestion's lines are the lines that follow the cursor's line. */
export function repeatsNextLines(text: string, ctx: CleanContext): boolean {
  const mine = text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (mine.length === 0) return false;
  const nl = ctx.suffix.indexOf('\n');
  if (nl < 0) return false;
  const next = ctx.suffix.slice(nl + 1).split('\n').map((l) => l.trim()).filter(Boolean);
  if (next.length < mine.length) return false;
  return mine.every((l, i) => l === next[i]);
}

/** The suggestion after all four rules ('' = show nothing). */
export function cleanSuggestion(text: string, ctx: CleanContext): string {
  let out = unglueStart(text, ctx);
  out = unglueEnd(out, ctx);
  out = unrepeatSuffix(out, ctx);
  out = reindent(out, ctx);
  if (repeatsNextLines(out, ctx)) return '';
  return out.trim() ? out.replace(/[ \t]+$/, '') : '';
}
