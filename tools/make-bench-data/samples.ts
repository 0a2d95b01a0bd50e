// Owns what ONE repair-benchmark sample is and how it is cut from a file (tools/make-bench-data):
// the line-completion place (prompt = the preceding lines and the new line's indentation, desired =
// the rest of the real line, after = the line break and the next line), and — for a model with
// fill-in-the-middle tokens — the prompt the extension builds there, as a captured failure carries
// it (failures/failure.ts): `suffix` = the text after the cursor (the line break and the rest of the
// file, cut as the editor's window cuts it: completion/provider.ts suffixAfter, then
// runtime/prompt.ts windowPrompt within the worker's suffix budget) and `replay` = DEFAULT_REPLAY +
// the model's FIM choice (runtime/fim.ts resolveFim, as the default settings resolve it). A model
// without FIM tokens gets exactly the prefix-only samples and records of before. Also the JSONL
// records of bench/data and the example/"shown" checks over a sample (the extension's exampleOf and
// showsDesired, with the sample's suffix and replay). build.ts runs the model over these.

import type { TextTokenizer } from '../../src/model/tokenizer';
import type { Example } from '../../src/repair/teacher';
import { exampleOf } from '../../src/repair/run';
import { DEFAULT_REPLAY, showsDesired, type CompletionReplay } from '../../src/runtime/completion';
import { resolveFim, type FimChoice } from '../../src/runtime/fim';
import { windowPrompt } from '../../src/runtime/prompt';
import type { ModelRuntime } from '../../src/runtime/runtime';
import { defaultSettings } from '../../src/settings';

/** Longest line taken as a sample. */
export const MAX_LINE_CHARS = 100;
/** Most characters of `after` (failures/failure.ts MAX_AFTER_CHARS). */
export const MAX_AFTER = 256;
/** The provider's character pre-cut of the suffix (completion/provider.ts: suffixTokens × 4 + 200, at most 32,000). */
const CHARS_PER_TOKEN = 4;
const MAX_PROMPT_CHARS = 32_000;
/** Tokens kept free for token healing's spelled-back tokens (not counted in maxTokens). */
const HEAL_MARGIN = 16;

/** How samples are cut for one model: the prefix window, and the FIM prompt's choice and budgets (none without FIM). */
export interface SampleSetup {
  /** Budget of prompt + desired tokens (the prefix keeps whole lines from the end within it). */
  window: number;
  /** The model's FIM choice under the default settings; null: prefix-only samples, as before FIM. */
  fim: FimChoice | null;
  /** The replay every sample is split and repaired with: DEFAULT_REPLAY itself without FIM, else DEFAULT_REPLAY + fim. */
  replay: CompletionReplay;
  /** The worker's window budgets (worker/host.ts complete): suffix tokens (0 without FIM) and prefix tokens. */
  suffixTokens: number;
  prefixTokens: number;
}

/**
 * The setup for a model: its FIM choice (resolveFim under the default settings 'auto'/'auto') and
 * the budgets the worker applies to the editor's text for it (room = context − maxTokens − 4; the
 * suffix keeps min(starRepair.completions.suffixTokens, room/2) tokens, the prefix
 * min(starRepair.completions.prefixTokens, room)).
 */
export function sampleSetup(tokenizer: TextTokenizer, context: number, window: number, fim: FimChoice | null = resolveFim(tokenizer)): SampleSetup {
  const c = defaultSettings().completions;
  const replay: CompletionReplay = fim ? { ...DEFAULT_REPLAY, fim } : DEFAULT_REPLAY;
  const room = Math.max(16, context - replay.maxTokens - 4);
  const suffixTokens = fim ? Math.max(0, Math.min(c.suffixTokens, Math.floor(room / 2))) : 0;
  // With FIM the suffix and three FIM tokens share the context too: the window shrinks where the
  // prompt, suffix and completion (with a few healing tokens) would not fit, because there the
  // completion stops at the context's end while teacher forcing drops the prompt's start.
  const fits = fim ? Math.max(16, context - replay.maxTokens - suffixTokens - 3 - HEAL_MARGIN) : window;
  return { window: Math.min(window, fits), fim, replay, suffixTokens, prefixTokens: Math.min(c.prefixTokens, room) };
}

/** One line-completion sample, with what the extension's prompt holds there. */
export interface LineSample {
  id: string;
  file: string;
  line: number;
  prompt: string;
  desired: string;
  /** The line break and the next line of the file: how the completion's end is tokenised there (prefix-only prompts). */
  after: string;
  /** FIM only: the text after the cursor as the editor's window keeps it. */
  suffix?: string;
  /** FIM only: DEFAULT_REPLAY + the FIM choice. */
  replay?: CompletionReplay;
}

/** completion/provider.ts suffixAfter: at most `budget` characters after the cursor, ending at a line break when cut. */
function suffixAfter(rest: string, budget: number): string {
  if (rest.length <= budget) return rest;
  const nl = rest.lastIndexOf('\n', budget);
  return rest.slice(0, nl > 0 ? nl : budget);
}

/**
 * The prompt the editor builds with the cursor after `prompt` and `rest` following it: the
 * provider's character cut of the suffix, then the worker's windowPrompt (the prefix is already
 * within the window, so it stays whole). Without FIM there is no suffix in the prompt.
 */
export function editorPrompt(tokenizer: TextTokenizer, prompt: string, rest: string, setup: SampleSetup): { prompt: string; suffix?: string } {
  if (!setup.fim) return { prompt };
  const raw = suffixAfter(rest, Math.min(MAX_PROMPT_CHARS, setup.suffixTokens * CHARS_PER_TOKEN + 200));
  const win = windowPrompt(tokenizer, prompt, raw, { prefixTokens: setup.prefixTokens, suffixTokens: setup.suffixTokens });
  return { prompt: win.prefix.length > 0 ? win.prefix : prompt, suffix: win.suffix };
}

/** The samples of one file: non-blank lines (not the first, not too long), every `step`-th of them from a random start; `random` is called once. */
export function fileSamples(rel: string, text: string, tokenizer: TextTokenizer, perFile: number, random: () => number, setup: SampleSetup): LineSample[] {
  const samples: LineSample[] = [];
  const lines = text.split('\n');
  const candidates = lines.flatMap((l, i) => (i > 0 && l.trim() !== '' && l.length <= MAX_LINE_CHARS ? [i] : []));
  const step = Math.max(1, Math.floor(candidates.length / perFile));
  for (let c = Math.floor(random() * step); c < candidates.length; c += step) {
    const i = candidates[c];
    // The preceding lines, keeping whole lines from the end that fit the window.
    let start = i;
    let tokens = tokenizer.encode(lines[i]).length;
    while (start > 0) {
      const n = tokenizer.encode(lines[start - 1] + '\n').length;
      if (tokens + n > setup.window - 1) break;
      tokens += n;
      start--;
    }
    if (start === i) continue;
    const indent = lines[i].length - lines[i].trimStart().length;
    const after = ('\n' + (i + 1 < lines.length ? lines[i + 1] : '')).slice(0, MAX_AFTER);
    const prefix = lines.slice(start, i).join('\n') + '\n' + lines[i].slice(0, indent);
    const sample: LineSample = { id: `${rel}:${i + 1}`, file: rel, line: i + 1, prompt: prefix, desired: lines[i].slice(indent).trimEnd(), after };
    if (setup.fim) {
      // The user starts a new line: after the cursor, the line break and the rest of the file.
      const seen = editorPrompt(tokenizer, prefix, '\n' + lines.slice(i + 1).join('\n'), setup);
      sample.prompt = seen.prompt;
      sample.suffix = seen.suffix;
      sample.replay = setup.replay;
    }
    samples.push(sample);
  }
  return samples;
}

/** Samples of every file, in order (`read` gives a file's text). */
export function candidateSamples(files: readonly string[], read: (rel: string) => string, tokenizer: TextTokenizer, perFile: number, random: () => number, setup: SampleSetup): LineSample[] {
  return files.flatMap((rel) => fileSamples(rel, read(rel), tokenizer, perFile, random, setup));
}

/** What a sample carries besides the texts (absent without FIM, so prefix-only records stay as they were). */
function carried(s: Pick<LineSample, 'suffix' | 'replay'>): { suffix?: string; replay?: CompletionReplay } {
  return { ...(s.suffix !== undefined ? { suffix: s.suffix } : {}), ...(s.replay ? { replay: s.replay } : {}) };
}

/** A failures.jsonl record (src/eval/bench.ts BenchFailure). */
export function failureRecord(s: LineSample, group: string, pair: string, split: 'test' | 'validation', firstWrong: number): object {
  return { id: s.id, group, pair, split, prompt: s.prompt, desired: s.desired, after: s.after, ...carried(s), firstWrong };
}

/** A correct.jsonl record (src/eval/bench.ts BenchSample). */
export function correctRecord(s: LineSample, split: 'test' | 'validation'): object {
  return { id: s.id, split, prompt: s.prompt, desired: s.desired, after: s.after, ...carried(s) };
}

/** The teacher-forced example of a sample, the way the extension builds a captured failure's (repair/run.ts exampleOf). Throws RepairError where the editor could not show it. */
export function sampleExample(tokenizer: TextTokenizer, s: LineSample, context: number): Example {
  return exampleOf(tokenizer, { prompt: s.prompt, desired: s.desired, after: s.after, suffix: s.suffix, replay: s.replay ?? DEFAULT_REPLAY }, context);
}

/** Does the extension show the sample's desired text there (its prompt, suffix and replay)? */
export function sampleShown(runtime: ModelRuntime, tokenizer: TextTokenizer, s: LineSample): Promise<boolean> {
  return showsDesired(runtime, tokenizer, s.prompt, s.desired, s.replay ?? DEFAULT_REPLAY, s.suffix);
}
