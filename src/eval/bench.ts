// The paper-style repair benchmark: a method repairs benchmark failures (one at a time, or several
// at once) from the unpatched model, and is scored on effectiveness (those failures), generalisation
// (the other failures of their groups, not used in the repair) and specificity (samples the model
// completes right), with its time, epochs, memory and the size of its patch. Whole-line figures
// use the editor's meaning of "fixed" (runtime/completion.ts); the authors' token-level figures
// (ExactMatch = token accuracy under teacher forcing; single-token generalisation and specificity
// at the first-divergence pair) are reported beside them. A sample carries what a captured failure
// carries (failures/failure.ts): the text after the cursor (`suffix`) and the completion settings
// (`replay`, with the FIM format the prompt was built with), so "fixed" is what the extension shows
// there (showCompletion(prompt, {suffix}, replay)), and repair teacher-forces over that same prompt.
// Owns the bench data's reading (bench/data/*.jsonl; data written before FIM still loads).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextTokenizer } from '../model/tokenizer';
import { DEFAULT_REPLAY, readReplay, type CompletionReplay } from '../runtime/completion';
import { FimError, fimIds } from '../runtime/fim';
import { assess, type RepairModel } from '../repair/engine';
import { combinePatches } from '../repair/patch';
import { exampleOf, runRepair, type MethodDefaults, type Prepared, type RepairRequest } from '../repair/run';
import { RepairError } from '../repair/teacher';
import { ReadError } from '../util/read';
import { caseStates, evaluatePatch, type CaseState } from './evaluate';

export interface BenchFailure {
  id: string;
  group: string;
  pair?: string;
  split: 'test' | 'validation';
  prompt: string;
  desired: string;
  /** What followed the desired text in the file: the line break and the next line. */
  after?: string;
  /** The text after the cursor the extension's prompt holds (a FIM prompt's suffix); absent in data built before FIM. */
  suffix?: string;
  /** The completion settings the sample was split with (DEFAULT_REPLAY + the model's FIM choice); absent: BenchOptions.replay, else DEFAULT_REPLAY. */
  replay?: CompletionReplay;
  /** Target index of the first divergence (the group's wrong→right pair). */
  firstWrong?: number;
}

export interface BenchSample {
  id: string;
  split: 'test' | 'validation';
  prompt: string;
  desired: string;
  after?: string;
  suffix?: string;
  replay?: CompletionReplay;
}

export interface BenchData {
  failures: BenchFailure[];
  correct: BenchSample[];
}

/** One record: JSON, with a well-formed `suffix` and `replay` where it has them (read as a failure's are). */
function jsonl<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l, i) => [l, i] as const)
    .filter(([l]) => l.trim() !== '')
    .map(([l, i]) => {
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`${file}:${i + 1}: not valid JSON`);
      }
      if (v.suffix !== undefined && typeof v.suffix !== 'string') throw new Error(`${file}:${i + 1}: "suffix" must be a string when present`);
      if (v.replay !== undefined) {
        try {
          v.replay = readReplay(v.replay, 'replay');
        } catch (e) {
          if (e instanceof ReadError) throw new Error(`${file}:${i + 1}: ${e.message}`);
          throw e;
        }
      }
      return v as T;
    });
}

export function loadBenchData(dir: string): BenchData {
  return { failures: jsonl<BenchFailure>(join(dir, 'failures.jsonl')), correct: jsonl<BenchSample>(join(dir, 'correct.jsonl')) };
}

export interface BenchOptions {
  split: 'test' | 'validation';
  /** Repair at most this many failures per group (all others still count for generalisation). */
  perGroup: number;
  /** Use at most this many groups of the split (the first ones, which are the largest). */
  maxGroups?: number;
  /** Repair at most this many failures in all. */
  maxFailures?: number;
  /** How many correct samples the specificity of each repair is measured on. */
  regressionSamples: number;
  /** Correct samples (disjoint from the measured ones) that specificity-preserving STAR keeps. */
  preserveSamples?: number;
  /** The completion settings replayed for samples that carry none (data built before replay was kept); default DEFAULT_REPLAY. A sample's own replay wins: it is what it was split with. */
  replay?: CompletionReplay;
  onFailure?: (done: number, total: number, name: string) => void;
}

export interface MethodResult {
  name: string;
  request: RepairRequest;
  /** Repairs run (one per failure, or one per batch). */
  repairs: number;
  /** Failures repaired (the denominator of effectiveness). */
  repaired: number;
  effectiveness: { fixed: number; rate: number; tokenAccuracyBefore: number; tokenAccuracyAfter: number };
  generalisation: { fixed: number; total: number; rate: number; meanDeltaP: number; meanDeltaRank: number };
  specificity: { kept: number; total: number; rate: number; meanAbsDeltaTopP: number };
  /** The authors' single-token forms: the first-divergence target token is top-1 on the other prompts of the group / still top-1 on correct samples. */
  authors: { exactMatch: number; generalisation: { fixed: number; total: number }; specificity: { kept: number; total: number } };
  msPerFailure: number;
  msPerFixed: number | null;
  epochsPerRepair: number;
  msPerEpoch: number;
  peakRssMb: number;
  neurons: number;
  params: number;
  fixedIds: string[];
}

/** A benchmark item prepared the editor's way. */
export interface BenchCase extends Prepared {
  group: string;
  /** Target index of the first token the unpatched model gets wrong (−1 for correct samples). */
  firstWrong: number;
}

type BenchItem = { id: string; prompt: string; desired: string; after?: string; suffix?: string; replay?: CompletionReplay; group?: string };

/** The item as the extension holds a captured failure (its prompt, suffix and replay), or null where the editor could not show its desired text. */
function benchCase(tokenizer: TextTokenizer, context: number, fallback: CompletionReplay, item: BenchItem): BenchCase | null {
  const replay = item.replay ?? fallback;
  if (replay.fim) {
    // A FIM format the tokenizer lacks: the data belongs to another model (not a sample to skip).
    try {
      fimIds(tokenizer, replay.fim);
    } catch (e) {
      if (e instanceof FimError) throw new Error(`bench sample ${item.id} was built with a ${replay.fim.format} FIM prompt, which this model's tokenizer cannot express: rebuild the data for this model (npm run bench:data -- --model DIR)`);
      throw e;
    }
  }
  const failure = { id: item.id, prompt: item.prompt, desired: item.desired, after: item.after, ...(item.suffix !== undefined ? { suffix: item.suffix } : {}), replay };
  try {
    return { failure, replay, example: exampleOf(tokenizer, failure, context), group: item.group ?? '', firstWrong: -1 };
  } catch (e) {
    if (!(e instanceof RepairError)) throw e;
    return null;
  }
}

/** The split's cases, and their states on the unpatched model (shared by every method). */
export class BenchContext {
  readonly failures: BenchCase[];
  readonly regression: BenchCase[];
  readonly preserve: BenchCase[];
  /** Ids of the split's items the editor could not show as a completion (left out). */
  readonly skipped: string[] = [];
  private readonly before = new Map<BenchCase, CaseState>();

  constructor(
    readonly model: RepairModel,
    readonly tokenizer: TextTokenizer,
    data: BenchData,
    readonly options: BenchOptions,
  ) {
    const context = model.config.maxPositions;
    const replay = options.replay ?? DEFAULT_REPLAY;
    this.failures = data.failures.filter((x) => x.split === options.split).flatMap((f) => {
      const c = benchCase(tokenizer, context, replay, f);
      if (c) c.firstWrong = f.firstWrong ?? -1;
      else this.skipped.push(f.id);
      return c ? [c] : [];
    });
    const correct = data.correct.filter((x) => x.split === options.split).flatMap((s) => {
      const c = benchCase(tokenizer, context, replay, s);
      if (!c) this.skipped.push(s.id);
      return c ? [c] : [];
    });
    this.regression = correct.slice(0, options.regressionSamples);
    this.preserve = correct.slice(options.regressionSamples, options.regressionSamples + (options.preserveSamples ?? 0));
  }

  private reset(): void {
    this.model.base = new Map();
    this.model.apply(null);
  }

  async states(cases: readonly BenchCase[]): Promise<CaseState[]> {
    this.reset();
    const todo = cases.filter((c) => !this.before.has(c));
    const got = await caseStates(this.model, this.tokenizer, todo);
    todo.forEach((c, i) => this.before.set(c, got[i]));
    return cases.map((c) => this.before.get(c)!);
  }

  /** The repairs of a run: the first `perGroup` failures of every group, in batches of `batch` (1: each on its own). */
  batches(batch: number): BenchCase[][] {
    const seen = new Map<string, number>();
    const chosen = this.failures.filter((c) => {
      if (!seen.has(c.group) && seen.size >= (this.options.maxGroups ?? Infinity)) return false;
      const n = seen.get(c.group) ?? 0;
      seen.set(c.group, n + 1);
      return n < this.options.perGroup;
    }).slice(0, this.options.maxFailures ?? Infinity);
    const out: BenchCase[][] = [];
    for (let i = 0; i < chosen.length; i += batch) out.push(chosen.slice(i, i + batch));
    return out;
  }

  /** `token` is the argmax at target index `k` of the case (teacher forcing under the current weights). */
  async firstTokenRight(c: BenchCase, token: number, k: number): Promise<boolean> {
    const ex = c.example;
    if (k < 0 || k >= ex.desired.length) return false;
    const a = await assess(this.model.runtime, { ...ex, targetPositions: [ex.targetPositions[k]], desired: [token], allowed: [ex.allowed[k]], alsoRight: [token === ex.desired[k] ? ex.alsoRight[k] : null] });
    return a.correct[0];
  }

  /** The first-divergence pair's target: index and token (index 0 for a correct sample). */
  firstPair(c: BenchCase): { position: number; token: number } | null {
    const k = c.firstWrong >= 0 ? Math.min(c.firstWrong, c.example.desired.length - 1) : 0;
    return { position: k, token: c.example.desired[k] };
  }
}

/**
 * Runs one method over the benchmark: each batch of failures is repaired together from the
 * unpatched model, then the patch is evaluated and discarded.
 */
export async function benchMethod(ctx: BenchContext, name: string, request: RepairRequest, defaults: MethodDefaults, batch = 1): Promise<MethodResult> {
  const { model, tokenizer } = ctx;
  const batches = ctx.batches(batch);
  const regressionBefore = await ctx.states(ctx.regression);
  const preserve = ctx.preserve.map((c) => c.example);
  let fixed = 0;
  let repaired = 0;
  const tokenBefore: number[] = [];
  const tokenAfter: number[] = [];
  let gFixed = 0, gTotal = 0, sKept = 0, sTotal = 0;
  const gDp: number[] = [];
  const gDr: number[] = [];
  const sDt: number[] = [];
  let aGenFixed = 0, aGenTotal = 0, aSpecKept = 0, aSpecTotal = 0;
  let ms = 0, neurons = 0, params = 0, epochs = 0, epochMsSum = 0, epochCount = 0, repairs = 0;
  const fixedIds: string[] = [];
  let done = 0;
  for (const cases of batches) {
    ctx.options.onFailure?.(done, batches.length, name);
    done++;
    const ids = new Set(cases.map((c) => c.failure.id));
    const groups = new Set(cases.map((c) => c.group));
    const mates = ctx.failures.filter((o) => groups.has(o.group) && !ids.has(o.failure.id));
    const matesBefore = await ctx.states(mates);
    const selfBefore = await ctx.states(cases);
    // The authors' single-token figures: the repaired failures' first-divergence pair on the mates, before.
    const pairs = new Map(cases.map((c) => [c.group, ctx.firstPair(c)]));
    const mateTokenBefore: boolean[] = [];
    const specTokenBefore: boolean[] = [];
    ctx.model.base = new Map();
    model.apply(null);
    for (const m of mates) {
      const p = pairs.get(m.group);
      const mine = ctx.firstPair(m);
      mateTokenBefore.push(p && mine ? await ctx.firstTokenRight(m, p.token, mine.position) : true);
    }
    for (const r of ctx.regression) {
      const f = ctx.firstPair(r);
      specTokenBefore.push(f ? await ctx.firstTokenRight(r, f.token, f.position) : false);
    }
    let result;
    try {
      result = await runRepair(model, tokenizer, 'bench', cases, request, defaults, {}, { preserve });
    } catch (e) {
      if (e instanceof RepairError && e.code === 'already-correct') continue;
      throw e;
    }
    repairs++;
    const todo = new Set(result.repaired.map((r) => r.failure.id));
    const inPlay = cases.filter((c) => todo.has(c.failure.id));
    repaired += inPlay.length;
    ms += result.patch.stats.ms;
    neurons += result.patch.stats.neurons;
    params += result.patch.stats.params;
    epochs += result.outcome.epochs;
    epochMsSum += result.outcome.epochMs.reduce((a, b) => a + b, 0);
    epochCount += result.outcome.epochMs.length;
    const patch = combinePatches([result.patch], model.config.hidden);
    const ev = await evaluatePatch(model, tokenizer, patch, { repaired: inPlay, heldout: mates, regression: ctx.regression }, { repaired: selfBefore.filter((_, i) => todo.has(cases[i].failure.id)), heldout: matesBefore, regression: regressionBefore });
    tokenBefore.push(ev.effectiveness.tokenAccuracyBefore);
    tokenAfter.push(ev.effectiveness.tokenAccuracyAfter);
    fixed += ev.effectiveness.fixed;
    fixedIds.push(...result.fixed);
    if (ev.generalisation) {
      gFixed += ev.generalisation.fixed;
      gTotal += ev.generalisation.total;
      gDp.push(ev.generalisation.meanDeltaP);
      gDr.push(ev.generalisation.meanDeltaRank);
    }
    if (ev.specificity) {
      sKept += ev.specificity.kept;
      sTotal += ev.specificity.total;
      sDt.push(ev.specificity.meanAbsDeltaTopP);
    }
    // The runtime still computes with the patch (evaluatePatch leaves it applied).
    for (let i = 0; i < mates.length; i++) {
      if (mateTokenBefore[i]) continue;
      const p = pairs.get(mates[i].group);
      const mine = ctx.firstPair(mates[i]);
      aGenTotal++;
      if (p && mine && (await ctx.firstTokenRight(mates[i], p.token, mine.position))) aGenFixed++;
    }
    for (let i = 0; i < ctx.regression.length; i++) {
      if (!specTokenBefore[i]) continue;
      const f = ctx.firstPair(ctx.regression[i]);
      aSpecTotal++;
      if (f && (await ctx.firstTokenRight(ctx.regression[i], f.token, f.position))) aSpecKept++;
    }
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  ctx.model.base = new Map();
  model.apply(null);
  return {
    name,
    request,
    repairs,
    repaired,
    effectiveness: { fixed, rate: repaired ? fixed / repaired : 0, tokenAccuracyBefore: mean(tokenBefore), tokenAccuracyAfter: mean(tokenAfter) },
    generalisation: { fixed: gFixed, total: gTotal, rate: gTotal ? gFixed / gTotal : 0, meanDeltaP: mean(gDp), meanDeltaRank: mean(gDr) },
    specificity: { kept: sKept, total: sTotal, rate: sTotal ? sKept / sTotal : 1, meanAbsDeltaTopP: mean(sDt) },
    authors: { exactMatch: mean(tokenAfter), generalisation: { fixed: aGenFixed, total: aGenTotal }, specificity: { kept: aSpecKept, total: aSpecTotal } },
    msPerFailure: repaired ? ms / repaired : 0,
    msPerFixed: fixed ? ms / fixed : null,
    epochsPerRepair: repairs ? epochs / repairs : 0,
    msPerEpoch: epochCount ? epochMsSum / epochCount : 0,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    neurons: repairs ? neurons / repairs : 0,
    params: repairs ? params / repairs : 0,
    fixedIds,
  };
}
