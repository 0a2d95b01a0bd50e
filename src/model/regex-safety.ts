// Defence against tokenizer.json regexes that backtrack catastrophically, e.g. a Split pattern
// (a+)+$ that blocks for minutes on "aaa…!". Three layers (docs/limits.md):
//  1. before the tokenizer is built, every Regex in the normalizer, pre-tokenizer and decoder is
//     refused if it repeats a group that itself holds an unbounded quantifier (star height 2, the
//     shape of almost every exponential regex; no real tokenizer's pattern has it);
//  2. after it is built, a probe encodes (and decodes) crafted strings — long runs of one kind of
//     character and a character that makes the match fail — under PROBE_TIME_MS, refusing a
//     tokenizer that backtracks on them (catches overlapping alternations such as (a|aa)+$). The
//     limit is on CPU time, not wall time (./time-limit.ts): on a machine too busy to give the
//     probe its CPU time it is run again with a longer wall limit, up to a cap of 30 s, and only a
//     probe that used at least half its 2 s of CPU without finishing is taken for backtracking; one
//     that reaches the cap starved gets a message saying the machine was too busy to check it;
//  3. every encode runs under encodeTimeLimitMs(text length) (see ./tokenizer.ts), so what the
//     first two miss costs at most that bound of CPU time (and the wall cap of ./time-limit.ts on a
//     busy machine) and a typed error, never a blocked worker.
import { ModelError } from './errors';
import { type RunWithinOptions, TimeLimitExceeded, runWithin } from './time-limit';

/** CPU time the load-time probe may take in all (normal tokenizers take a few ms). */
export const PROBE_TIME_MS = 2000;
/** Each probe string is a run of this many characters of one kind, then a NUL. */
export const PROBE_RUN_CHARS = 256;

export interface FoundRegex { where: string; pattern: string }

const SECTIONS = ['normalizer', 'pre_tokenizer', 'decoder'] as const;

/** Every `"Regex": "<pattern>"` in the sections of tokenizer.json that run regexes, with its path. */
export function tokenizerRegexes(json: Record<string, unknown>): FoundRegex[] {
  const out: FoundRegex[] = [];
  const walk = (v: unknown, where: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'Regex' && typeof x === 'string') out.push({ where: `${where}.${k}`, pattern: x });
        else walk(x, `${where}.${k}`);
      }
    }
  };
  for (const s of SECTIONS) walk(json[s], s);
  return out;
}

interface Quantifier { end: number; repeats: boolean; unbounded: boolean }

/** The quantifier starting at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, with a lazy or possessive suffix), or null. */
function quantifierAt(p: string, i: number): Quantifier | null {
  const c = p[i];
  let q: Quantifier | null = null;
  if (c === '*' || c === '+') q = { end: i + 1, repeats: true, unbounded: true };
  else if (c === '?') q = { end: i + 1, repeats: false, unbounded: false };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
    if (m) {
      const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
      q = { end: i + m[0].length, repeats: max > 1, unbounded: max === Infinity };
    }
  }
  if (q && (p[q.end] === '?' || p[q.end] === '+')) q.end++;
  return q;
}

/** End (exclusive) of the character class opening at `i`; nested classes count (Oniguruma's [a-z&&[^c]]). */
function classEnd(p: string, i: number): number {
  let depth = 0;
  for (let j = i; j < p.length; j++) {
    if (p[j] === '\\') j++;
    else if (p[j] === '[') depth++;
    else if (p[j] === ']' && --depth === 0) return j + 1;
  }
  return p.length;
}

/**
 * The first part of `pattern` that repeats (max > 1) a group holding an unbounded quantifier, such
 * as "(a+)+" in "(a+)+$"; null when there is none. A syntactic check: escapes and character classes
 * are skipped, so "\(a+\)+" and "[(a+)]+" are fine.
 */
export function nestedQuantifier(pattern: string): string | null {
  const groups: Array<{ start: number; unbounded: boolean }> = [];
  for (let i = 0; i < pattern.length;) {
    const c = pattern[i]!;
    let atomStart = i;
    let atomUnbounded = false;
    if (c === '(') {
      groups.push({ start: i, unbounded: false });
      i++;
      continue;
    } else if (c === ')') {
      const g = groups.pop();
      if (!g) { i++; continue; }
      atomStart = g.start;
      atomUnbounded = g.unbounded;
      if (g.unbounded && groups.length > 0) groups[groups.length - 1]!.unbounded = true;
      i++;
    } else if (c === '[') i = classEnd(pattern, i);
    else if (c === '\\') i += 2;
    else i++;
    const q = quantifierAt(pattern, i);
    if (!q) continue;
    if (q.repeats && atomUnbounded) return pattern.slice(atomStart, q.end);
    if (q.unbounded && groups.length > 0) groups[groups.length - 1]!.unbounded = true;
    i = q.end;
  }
  return null;
}

/** Throws `tokenizer-unsafe` for the first regex of tokenizer.json with a nested quantifier. */
export function checkTokenizerRegexes(json: Record<string, unknown>, file: string): void {
  for (const { where, pattern } of tokenizerRegexes(json)) {
    const nested = nestedQuantifier(pattern);
    if (nested !== null) {
      throw new ModelError(
        'tokenizer-unsafe',
        `${file}: ${where} ${JSON.stringify(pattern)} repeats a group that holds a quantifier (nested quantifier ${JSON.stringify(nested)}); such a regex can take minutes on a short text (catastrophic backtracking), so it is not used — use the tokenizer.json that came with the model`,
        file,
      );
    }
  }
}

// Runs of one kind of character: letters, digits, spaces, line breaks, punctuation, accented,
// CJK, emoji, and mixtures; the NUL after each makes a pattern anchored at the end fail.
const PROBE_UNITS = ['a', 'A', '0', ' ', '\t', '\n', '\r\n', '!', "'", '.', '-', '_', 'é', '中', '😀', 'a ', ' a', 'a0', 'aA', ' \n', '.a'];

/** The crafted probe strings. */
export function probeTexts(): string[] {
  return PROBE_UNITS.map((u) => u.repeat(Math.ceil(PROBE_RUN_CHARS / u.length)) + '\u0000');
}

/**
 * Encodes and decodes every probe string within PROBE_TIME_MS of CPU time, else throws
 * `tokenizer-unsafe`. Errors of the tokenizer itself (a character it cannot represent) do not
 * matter here. `options` go to runWithin (tests simulate a busy machine with them).
 */
export function probeTokenizer(encode: (text: string) => number[], decode: (ids: number[]) => string, file: string, options: RunWithinOptions = {}): void {
  try {
    runWithin(PROBE_TIME_MS, () => {
      for (const text of probeTexts()) {
        try {
          decode(encode(text));
        } catch (e) {
          if (e instanceof TimeLimitExceeded) throw e;
        }
      }
    }, options);
  } catch (e) {
    if (!(e instanceof TimeLimitExceeded)) throw e;
    if (e.reason === 'busy') {
      throw new ModelError(
        'tokenizer-unsafe',
        `${file} could not be checked: encoding its test strings was stopped after ${Math.round(e.wallMs / 1000)} s of wall time in which this process got only ${Math.round(e.cpuMs)} ms of CPU time (normal tokenizers need a few ms) — the machine is too busy (other programs take the CPU), which says nothing against the tokenizer; try again when the machine is less busy`,
        file,
      );
    }
    throw new ModelError(
      'tokenizer-unsafe',
      `${file} took more than ${PROBE_TIME_MS} ms to encode test strings of ${PROBE_RUN_CHARS} repeated characters (normal tokenizers take a few ms): a regex of its normalizer, pre-tokenizer or decoder backtracks catastrophically, so it is not used — use the tokenizer.json that came with the model`,
      file,
    );
  }
}

/** The longest one encode of a `length`-character text may run: 2 s plus 10 ms per KiB. */
export function encodeTimeLimitMs(length: number): number {
  return 2000 + 10 * Math.ceil(length / 1024);
}
