// The paper-style repair benchmark: every method repairs each benchmark failure on its own (from
// the unpatched model), and is scored on effectiveness (that failure), generalisation (the other
// failures of its group, not used in the repair) and specificity (samples the model got right),
// with its time, memory and the size of its patch.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TextTokenizer } from '../model/tokenizer';
import { assess, type Assessment, type RepairModel } from '../repair/engine';
import { combinePatches } from '../repair/patch';
import { runRepair, type MethodDefaults, type RepairRequest } from '../repair/run';
import { makeExample, RepairError, type Example } from '../repair/teacher';
import { evaluatePatch } from './evaluate';

export interface BenchFailure {
  id: string;
  group: string;
  pair?: string;
  split: 'test' | 'validation';
  prompt: string;
  desired: string;
}

export interface BenchSample {
  id: string;
  split: 'test' | 'validation';
  prompt: string;
  desired: string;
}

export interface BenchData {
  failures: BenchFailure[];
  correct: BenchSample[];
}

function jsonl<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as T;
      } catch {
        throw new Error(`${file}:${i + 1}: not valid JSON`);
      }
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
  /** How many correct samples the specificity of each repair is measured on. */
  regressionSamples: number;
  onFailure?: (done: number, total: number, name: string) => void;
}

export interface MethodResult {
  name: string;
  request: RepairRequest;
  repaired: number;
  effectiveness: { fixed: number; rate: number; tokenAccuracyBefore: number; tokenAccuracyAfter: number };
  generalisation: { fixed: number; total: number; rate: number; meanDeltaP: number; meanDeltaRank: number };
  specificity: { kept: number; total: number; rate: number; meanAbsDeltaTopP: number };
  msPerFailure: number;
  msPerFixed: number | null;
  peakRssMb: number;
  neurons: number;
  params: number;
  fixedIds: string[];
}

interface Prepared {
  failures: { f: BenchFailure; ex: Example }[];
  regression: Example[];
}

/** The split's examples, and before-assessments on the unpatched model (shared by every method). */
export class BenchContext {
  readonly prepared: Prepared;
  private readonly before = new Map<Example, Assessment>();

  constructor(
    readonly model: RepairModel,
    tokenizer: TextTokenizer,
    data: BenchData,
    readonly options: BenchOptions,
  ) {
    const context = model.config.maxPositions;
    const failures: Prepared['failures'] = [];
    for (const f of data.failures.filter((x) => x.split === options.split)) {
      try {
        failures.push({ f, ex: makeExample(tokenizer, f.prompt, f.desired, context) });
      } catch (e) {
        if (!(e instanceof RepairError)) throw e;
      }
    }
    const regression = data.correct
      .filter((x) => x.split === options.split)
      .slice(0, options.regressionSamples)
      .map((s) => makeExample(tokenizer, s.prompt, s.desired, context));
    this.prepared = { failures, regression };
  }

  async assessed(examples: readonly Example[]): Promise<Assessment[]> {
    this.model.base = new Map();
    this.model.apply(null);
    const out: Assessment[] = [];
    for (const ex of examples) {
      let a = this.before.get(ex);
      if (!a) this.before.set(ex, (a = await assess(this.model.runtime, ex)));
      out.push(a);
    }
    return out;
  }

  /** The failures each method repairs: the first `perGroup` of every group. */
  targets(): { f: BenchFailure; ex: Example }[] {
    const seen = new Map<string, number>();
    return this.prepared.failures.filter(({ f }) => {
      if (!seen.has(f.group) && seen.size >= (this.options.maxGroups ?? Infinity)) return false;
      const n = seen.get(f.group) ?? 0;
      seen.set(f.group, n + 1);
      return n < this.options.perGroup;
    });
  }
}

export async function benchMethod(ctx: BenchContext, name: string, request: RepairRequest, defaults: MethodDefaults): Promise<MethodResult> {
  const { model } = ctx;
  const targets = ctx.targets();
  const regressionBefore = await ctx.assessed(ctx.prepared.regression);
  let fixed = 0;
  const tokenBefore: number[] = [];
  const tokenAfter: number[] = [];
  let gFixed = 0;
  let gTotal = 0;
  const gDp: number[] = [];
  const gDr: number[] = [];
  let sKept = 0;
  let sTotal = 0;
  const sDt: number[] = [];
  let ms = 0;
  let neurons = 0;
  let params = 0;
  const fixedIds: string[] = [];
  let done = 0;
  for (const { f, ex } of targets) {
    ctx.options.onFailure?.(done++, targets.length, name);
    const mates = ctx.prepared.failures.filter((o) => o.f.group === f.group && o.f.id !== f.id).map((o) => o.ex);
    const matesBefore = await ctx.assessed(mates);
    const [selfBefore] = await ctx.assessed([ex]);
    let result;
    try {
      result = await runRepair(model, 'bench', [{ failure: { id: f.id, prompt: f.prompt, desired: f.desired }, example: ex }], request, defaults);
    } catch (e) {
      if (e instanceof RepairError && e.code === 'already-correct') continue;
      throw e;
    }
    ms += result.patch.stats.ms;
    neurons += result.patch.stats.neurons;
    params += result.patch.stats.params;
    const ev = await evaluatePatch(model, combinePatches([result.patch], model.config.hidden), { repaired: [ex], heldout: mates, regression: ctx.prepared.regression }, { repaired: [selfBefore], heldout: matesBefore, regression: regressionBefore });
    tokenBefore.push(ev.effectiveness.tokenAccuracyBefore);
    tokenAfter.push(ev.effectiveness.tokenAccuracyAfter);
    if (ev.effectiveness.fixed === 1) {
      fixed++;
      fixedIds.push(f.id);
    }
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
  }
  const n = tokenBefore.length;
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  model.base = new Map();
  model.apply(null);
  return {
    name,
    request,
    repaired: n,
    effectiveness: { fixed, rate: n ? fixed / n : 0, tokenAccuracyBefore: mean(tokenBefore), tokenAccuracyAfter: mean(tokenAfter) },
    generalisation: { fixed: gFixed, total: gTotal, rate: gTotal ? gFixed / gTotal : 0, meanDeltaP: mean(gDp), meanDeltaRank: mean(gDr) },
    specificity: { kept: sKept, total: sTotal, rate: sTotal ? sKept / sTotal : 1, meanAbsDeltaTopP: mean(sDt) },
    msPerFailure: n ? ms / n : 0,
    msPerFixed: fixed ? ms / fixed : null,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    neurons: n ? neurons / n : 0,
    params: n ? params / n : 0,
    fixedIds,
  };
}
