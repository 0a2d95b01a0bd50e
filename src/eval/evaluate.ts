// Evaluation of a patch (docs/algorithm.md "Evaluation"): effectiveness on the repaired failures,
// generalisation to similar failures not used in the repair, specificity on completions the model
// got right. "Fixed", "still right" and "right before" mean what the editor shows: the completion
// at that place (runtime/completion.ts) equals the desired text. Teacher-forced assessments add
// the token-level figures (token accuracy, ΔP(y), Δrank, Δ top-1 probability).

import type { TextTokenizer } from '../model/tokenizer';
import type { LayerPatch } from '../runtime/runtime';
import { assess, type Assessment, type RepairModel } from '../repair/engine';
import { combinePatches } from '../repair/patch';
import { shownFixed, type Prepared } from '../repair/run';

/** One failure or sample as the evaluation sees it: its example and how the editor completes there. */
export type Case = Pick<Prepared, 'failure' | 'replay' | 'example'>;

/** A case under one set of weights: teacher-forced, and as the editor shows it. */
export interface CaseState {
  assessment: Assessment;
  /** The editor's completion there equals the desired text. */
  shown: boolean;
}

export interface Effectiveness {
  /** Failures whose completion in the editor is now the desired text. */
  fixed: number;
  total: number;
  rate: number;
  tokenAccuracyBefore: number;
  tokenAccuracyAfter: number;
}

export interface Generalisation {
  /** Of the held-out failures that were wrong in the editor before, how many are right now. */
  fixed: number;
  total: number;
  rate: number;
  /** Mean change of P(desired token) over their target positions. */
  meanDeltaP: number;
  /** Mean change of the desired token's rank (negative = better). */
  meanDeltaRank: number;
}

export interface Specificity {
  /** Of the samples the editor completed right before, how many it still completes right. */
  kept: number;
  total: number;
  rate: number;
  /** Mean absolute change of the top-1 probability over their target positions. */
  meanAbsDeltaTopP: number;
}

export interface Evaluation {
  effectiveness: Effectiveness;
  generalisation: Generalisation | null;
  specificity: Specificity | null;
}

export async function caseStates(model: RepairModel, tokenizer: TextTokenizer, cases: readonly Case[]): Promise<CaseState[]> {
  const shown = await shownFixed(model, tokenizer, cases);
  const out: CaseState[] = [];
  for (let i = 0; i < cases.length; i++) out.push({ assessment: await assess(model.runtime, cases[i].example), shown: shown[i] });
  return out;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function tokenAccuracy(states: readonly CaseState[]): number {
  const all = states.flatMap((s) => s.assessment.correct);
  return all.length ? all.filter(Boolean).length / all.length : 0;
}

export function effectiveness(before: readonly CaseState[], after: readonly CaseState[]): Effectiveness {
  const fixed = after.filter((s) => s.shown).length;
  return { fixed, total: after.length, rate: after.length ? fixed / after.length : 0, tokenAccuracyBefore: tokenAccuracy(before), tokenAccuracyAfter: tokenAccuracy(after) };
}

export function generalisation(before: readonly CaseState[], after: readonly CaseState[]): Generalisation {
  const failing = before.map((_, i) => i).filter((i) => !before[i].shown);
  const fixed = failing.filter((i) => after[i].shown).length;
  const dp: number[] = [];
  const dr: number[] = [];
  for (const i of failing) {
    const b = before[i].assessment;
    const a = after[i].assessment;
    b.pDesired.forEach((p, k) => {
      dp.push(a.pDesired[k] - p);
      dr.push(a.rankDesired[k] - b.rankDesired[k]);
    });
  }
  return { fixed, total: failing.length, rate: failing.length ? fixed / failing.length : 0, meanDeltaP: mean(dp), meanDeltaRank: mean(dr) };
}

export function specificity(before: readonly CaseState[], after: readonly CaseState[]): Specificity {
  const right = before.map((_, i) => i).filter((i) => before[i].shown);
  const kept = right.filter((i) => after[i].shown).length;
  const dt: number[] = [];
  for (const i of right) before[i].assessment.pTop.forEach((p, k) => dt.push(Math.abs(after[i].assessment.pTop[k] - p)));
  return { kept, total: right.length, rate: right.length ? kept / right.length : 1, meanAbsDeltaTopP: mean(dt) };
}

export interface EvaluationSets {
  repaired: readonly Case[];
  heldout?: readonly Case[];
  regression?: readonly Case[];
}

export interface StatesBefore {
  repaired?: CaseState[];
  heldout?: CaseState[];
  regression?: CaseState[];
}

/**
 * Evaluates `patch` (this repair's change, stacked on the model's base patches) on the repaired
 * failures, held-out failures of the same kind, and a regression set. Leaves the runtime with
 * the patch applied.
 */
export async function evaluatePatch(model: RepairModel, tokenizer: TextTokenizer, patch: ReadonlyMap<number, LayerPatch>, sets: EvaluationSets, cachedBefore: StatesBefore = {}): Promise<Evaluation> {
  const d = model.config.hidden;
  model.runtime.setPatch(model.base);
  const before = {
    repaired: cachedBefore.repaired ?? (await caseStates(model, tokenizer, sets.repaired)),
    heldout: cachedBefore.heldout ?? (await caseStates(model, tokenizer, sets.heldout ?? [])),
    regression: cachedBefore.regression ?? (await caseStates(model, tokenizer, sets.regression ?? [])),
  };
  model.runtime.setPatch(combinePatches([model.base, patch], d));
  const after = {
    repaired: await caseStates(model, tokenizer, sets.repaired),
    heldout: await caseStates(model, tokenizer, sets.heldout ?? []),
    regression: await caseStates(model, tokenizer, sets.regression ?? []),
  };
  return {
    effectiveness: effectiveness(before.repaired, after.repaired),
    generalisation: sets.heldout?.length ? generalisation(before.heldout, after.heldout) : null,
    specificity: sets.regression?.length ? specificity(before.regression, after.regression) : null,
  };
}
