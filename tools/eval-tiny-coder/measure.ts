// The measurements of tools/eval-tiny-coder on a held-out code corpus, through the project's own
// runtime: the held-out files (as the training tool splits them), next-token loss and top-1
// accuracy over non-overlapping windows, next-line exact match by greedy completion, and the
// completion the extension shows (showCompletion) at a line or a span of a line removed, with a
// prefix-only or a fill-in-the-middle prompt.
// Kept apart from the command line (eval.ts) so the unit tests can run each piece on a fixture model.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { TextTokenizer } from '../../src/model/tokenizer';
import { showCompletion, shownForm } from '../../src/runtime/completion';
import type { FimChoice } from '../../src/runtime/fim';
import { generate } from '../../src/runtime/generate';
import { argmax } from '../../src/model/finite';
import type { ModelRuntime } from '../../src/runtime/runtime';
import { seededRandom as prng } from '../../src/util/random';

export class EvalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EvalError';
  }
}

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const TRAIN_TOOL_DIR = join(REPO_ROOT, 'tools', 'train-tiny-coder');

export interface Doc {
  /** Path relative to the stdlib root, as the training tool names it. */
  rel: string;
  text: string;
}

export interface HeldoutCorpus {
  root: string;
  modules: string[];
  docs: Doc[];
  /** sha256 as tools/train-tiny-coder/corpus.py `fingerprint()` computes it (rel \0 text \0 ...). */
  sha256: string;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Top-level module of a stdlib-relative path: the same rule as corpus.py `module_of`. */
export function moduleOf(rel: string): string {
  const first = rel.split(sep)[0];
  return first.endsWith('.py') ? first.slice(0, -3) : first;
}

/** The committed held-out module list (comments and blank lines dropped). */
export function committedHeldoutModules(toolDir = TRAIN_TOOL_DIR): string[] {
  const file = join(toolDir, 'heldout-modules.txt');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new EvalError(`cannot read the committed held-out module list ${file} (${errorText(e)}); it is written by tools/train-tiny-coder/corpus.py`, { cause: e });
  }
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).sort();
}

export function corpusSha256(docs: readonly Doc[]): string {
  const h = createHash('sha256');
  for (const d of docs) h.update(Buffer.concat([Buffer.from(d.rel), Buffer.from([0]), Buffer.from(d.text, 'utf8'), Buffer.from([0])]));
  return h.digest('hex');
}

/**
 * The held-out files of the stdlib of `python`, listed by the training tool itself
 * (`corpus.py --list`), so the split rule lives in one place. Refuses a listing whose modules
 * differ from the committed heldout-modules.txt: the figures would then be about other files.
 */
export function heldoutCorpus(python = '/usr/bin/python3', toolDir = TRAIN_TOOL_DIR): HeldoutCorpus {
  const script = join(toolDir, 'corpus.py');
  let out: string;
  try {
    out = execFileSync(python, [script, '--list'], { encoding: 'utf8', maxBuffer: 1 << 27, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new EvalError(`${python} ${script} --list failed (${errorText(e)}); run it by hand to see why (it needs the machine's Python 3 with its standard library)`, { cause: e });
  }
  let listing: unknown;
  try {
    listing = JSON.parse(out);
  } catch (e) {
    throw new EvalError(`${script} --list did not print JSON (${errorText(e)})`, { cause: e });
  }
  const l = listing as { root?: unknown; heldout?: unknown };
  if (typeof l.root !== 'string' || !Array.isArray(l.heldout) || !l.heldout.every((r) => typeof r === 'string') || l.heldout.length === 0) {
    throw new EvalError(`${script} --list printed no {root, heldout: [...]} listing`);
  }
  const rels = l.heldout as string[];
  const modules = [...new Set(rels.map(moduleOf))].sort();
  const committed = committedHeldoutModules(toolDir);
  if (modules.join(',') !== committed.join(',')) {
    throw new EvalError(`the held-out modules of this machine's stdlib (${modules.join(' ')}) differ from the committed ${join(toolDir, 'heldout-modules.txt')} (${committed.join(' ')}); the corpus changed since the model was trained`);
  }
  const docs = rels.map((rel) => ({ rel, text: readFileSync(join(l.root as string, rel), 'utf8') }));
  return { root: l.root, modules, docs, sha256: corpusSha256(docs) };
}

/** Token stream of the documents, each followed by the end-of-text token (as the training tool encodes them). */
export function tokenStream(tokenizer: TextTokenizer, docs: readonly Doc[]): number[] {
  const out: number[] = [];
  for (const d of docs) {
    for (const id of tokenizer.encode(d.text)) out.push(id);
    if (tokenizer.eosId !== null) out.push(tokenizer.eosId);
  }
  return out;
}

/** The training tool's own encoding of the held-out split (work/heldout.u16), or null if absent. */
export function trainingHeldoutStream(toolDir = TRAIN_TOOL_DIR): Uint16Array | null {
  const file = join(toolDir, 'work', 'heldout.u16');
  if (!existsSync(file)) return null;
  const buf = readFileSync(file);
  return new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
}

export interface ScoreSummary {
  /** Mean next-token cross-entropy (nats) over every predicted token. */
  loss: number;
  top1: number;
  /** Predicted tokens (every token of the stream but the first). */
  tokens: number;
  correct: number;
  windows: number;
  window: number;
  /** Largest |runtime loss − loss recomputed here from the returned logits| over the windows. */
  maxLossDiscrepancy: number;
}

/**
 * Next-token loss and top-1 accuracy over the stream in non-overlapping windows of `window`
 * tokens (the last one shorter), every position scored: each window's first token is predicted
 * from nothing before it, as in the training tool's evaluation.
 */
export async function scoreStream(
  runtime: ModelRuntime,
  stream: ArrayLike<number>,
  window: number,
  onWindow?: (done: number, total: number) => void,
): Promise<ScoreSummary> {
  if (!Number.isInteger(window) || window < 1) throw new EvalError(`window must be a positive integer, got ${window}`);
  if (window > runtime.config.maxPositions) throw new EvalError(`window of ${window} tokens is longer than the model's context (${runtime.config.maxPositions})`);
  const n = stream.length - 1;
  if (n < 1) throw new EvalError('the token stream has fewer than two tokens: nothing to score');
  const V = runtime.config.vocab;
  const total = Math.ceil(n / window);
  let lossSum = 0;
  let correct = 0;
  let maxDiscrepancy = 0;
  for (let w = 0; w < total; w++) {
    const start = w * window;
    const T = Math.min(window, n - start);
    const ids = Array.from({ length: T }, (_, i) => stream[start + i]);
    const targets = Array.from({ length: T }, (_, i) => stream[start + i + 1]);
    const r = await runtime.score(ids, targets, new Array<number>(T).fill(1));
    if (r.logits.length !== T * V) throw new EvalError(`internal: score returned ${r.logits.length} logits for ${T} positions × ${V}`);
    // Recompute the loss from the logits in float64: it checks that the logits' rows line up with
    // the targets, which the accuracy relies on.
    let own = 0;
    for (let t = 0; t < T; t++) {
      const row = r.logits.subarray(t * V, (t + 1) * V);
      if (argmax(row) === targets[t]) correct++;
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
      own += max + Math.log(sum) - row[targets[t]];
    }
    own /= T;
    if (!Number.isFinite(r.loss)) throw new EvalError(`the runtime's loss is ${r.loss} on window ${w}`);
    maxDiscrepancy = Math.max(maxDiscrepancy, Math.abs(own - r.loss));
    lossSum += r.loss * T;
    onWindow?.(w + 1, total);
  }
  return { loss: lossSum / n, top1: correct / n, tokens: n, correct, windows: total, window, maxLossDiscrepancy: maxDiscrepancy };
}

export { prng };

export interface LineSample {
  rel: string;
  /** 0-based line index in the file (always ≥ 1). */
  line: number;
  /** The file's text before the line: the preceding lines, ending with '\n'. */
  prompt: string;
  /** The line itself, leading indentation included, without its '\n'. */
  target: string;
}

/** Lines that may be sampled: not a file's first line, not blank (whitespace only). */
export function candidateLines(docs: readonly Doc[]): Array<{ doc: number; line: number }> {
  const out: Array<{ doc: number; line: number }> = [];
  docs.forEach((d, doc) => {
    const lines = d.text.split('\n');
    for (let line = 1; line < lines.length; line++) if (lines[line].trim() !== '') out.push({ doc, line });
  });
  return out;
}

/** `count` distinct candidate lines drawn uniformly with a seeded partial Fisher–Yates shuffle, in corpus order. */
export function sampleLines(docs: readonly Doc[], count: number, seed: number): { samples: LineSample[]; candidates: number } {
  const all = candidateLines(docs);
  const k = Math.min(count, all.length);
  const random = prng(seed);
  const idx = all.map((_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const chosen = idx.slice(0, k).sort((a, b) => a - b);
  const split = new Map<number, string[]>();
  const samples = chosen.map((i) => {
    const { doc, line } = all[i];
    let lines = split.get(doc);
    if (!lines) split.set(doc, (lines = docs[doc].text.split('\n')));
    return { rel: docs[doc].rel, line, prompt: lines.slice(0, line).join('\n') + '\n', target: lines[line] };
  });
  return { samples, candidates: all.length };
}

export interface LineCompletion {
  text: string;
  tokens: number;
  promptTokens: number;
  stoppedBy: string;
}

/**
 * Text that encodes to the end-of-text token alone, or '' when there is none. Training saw every
 * file right after that token, so a prompt that holds a file's beginning starts with it (when a
 * prompt is too long, cutting it to the context drops it together with the file's start).
 */
export function documentStart(tokenizer: TextTokenizer): string {
  if (tokenizer.eosId === null) return '';
  const text = tokenizer.tokenText(tokenizer.eosId);
  const ids = tokenizer.encode(text);
  return ids.length === 1 && ids[0] === tokenizer.eosId ? text : '';
}

/** The plain protocol: greedy `generate()` on the preceding lines (ending with '\n'), stopped at '\n'. */
export async function completeLine(runtime: ModelRuntime, tokenizer: TextTokenizer, sample: LineSample, maxTokens: number, start = documentStart(tokenizer)): Promise<LineCompletion> {
  const g = await generate(runtime, tokenizer, start + sample.prompt, { maxTokens, stop: ['\n'] });
  return { text: g.text, tokens: g.tokens.length, promptTokens: g.promptTokens, stoppedBy: g.stoppedBy };
}

/**
 * The token-healed protocol: the same prompt through `generate()` with token healing, as the
 * extension completes. Byte-level BPE merges a newline with the next line's indentation ("\n" + 3
 * spaces is one token), so a prompt that ends with a lone "\n" token is a context the model almost
 * never saw before an indented line; healing takes the prompt's trailing whitespace off and
 * spells it back first.
 */
export async function completeLineHealed(runtime: ModelRuntime, tokenizer: TextTokenizer, sample: LineSample, maxTokens: number, start = documentStart(tokenizer)): Promise<LineCompletion> {
  const g = await generate(runtime, tokenizer, start + sample.prompt, { maxTokens, stop: ['\n'], heal: true });
  return { text: g.text, tokens: g.tokens.length, promptTokens: g.promptTokens, stoppedBy: g.stoppedBy };
}

export interface MatchSummary {
  lines: number;
  matched: number;
  exactMatch: number;
  /** Lines that begin with whitespace, and those that do not. */
  indented: { lines: number; matched: number };
  unindented: { lines: number; matched: number };
}

export function summarise(samples: readonly LineSample[], outputs: readonly LineCompletion[]): MatchSummary {
  const indented = { lines: 0, matched: 0 };
  const unindented = { lines: 0, matched: 0 };
  let matched = 0;
  samples.forEach((s, i) => {
    const hit = outputs[i].text === s.target;
    const group = /^\s/.test(s.target) ? indented : unindented;
    group.lines++;
    if (hit) {
      matched++;
      group.matched++;
    }
  });
  return { lines: samples.length, matched, exactMatch: samples.length ? matched / samples.length : 0, indented, unindented };
}

/** A place in a held-out file where the editor asks for a completion, and what the file has there. */
export interface HoleSample {
  rel: string;
  /** 0-based line index. */
  line: number;
  /** The file's text before the cursor. */
  prefix: string;
  /** The text removed: a whole line (without its '\n') or a span of one line's code. */
  target: string;
  /** The file's text after the removed text. */
  suffix: string;
}

/** Next-line holes: the cursor at the start of a sampled line (the same lines as sampleLines), the rest of the file after it. */
export function lineHoles(docs: readonly Doc[], count: number, seed: number): HoleSample[] {
  const byRel = new Map(docs.map((d) => [d.rel, d.text]));
  return sampleLines(docs, count, seed).samples.map((s) => ({
    rel: s.rel,
    line: s.line,
    prefix: s.prompt,
    target: s.target,
    suffix: (byRel.get(s.rel) ?? '').slice(s.prompt.length + s.target.length),
  }));
}

/**
 * Middle-span holes: on each sampled line, a span of its code (after the indentation) of 1–40
 * characters, start and length drawn with the seed; prefix and suffix are the rest of the file.
 */
export function spanHoles(docs: readonly Doc[], count: number, seed: number): HoleSample[] {
  const random = prng(seed ^ 0x5eed);
  return lineHoles(docs, count, seed).flatMap((h) => {
    const code = h.target.length - h.target.trimStart().length;
    const room = h.target.length - code;
    if (room < 1) return [];
    const a = code + Math.floor(random() * room);
    const b = Math.min(h.target.length, a + 1 + Math.floor(random() * Math.min(40, h.target.length - a)));
    return [{ rel: h.rel, line: h.line, prefix: h.prefix + h.target.slice(0, a), target: h.target.slice(a, b), suffix: h.target.slice(b) + h.suffix }];
  });
}

/**
 * What the extension shows at the hole: showCompletion with token healing and the line stop rule,
 * the suffix given to the clean-suggestion rules, and the prompt prefix-only (`fim` null) or in
 * the FIM layout. A hit is the shown text equal to the removed text (in its shown form).
 */
export async function showAtHole(runtime: ModelRuntime, tokenizer: TextTokenizer, hole: HoleSample, fim: FimChoice | null, maxTokens: number): Promise<{ text: string; hit: boolean }> {
  const shown = await showCompletion(runtime, tokenizer, hole.prefix, { heal: true, stop: 'line', maxTokens, fim }, { suffix: hole.suffix });
  return { text: shown.text, hit: shown.text === shownForm(hole.target) && shown.text !== '' };
}
