// Evaluation of a patch (STAR.md "Evaluation"): effectiveness on the repaired failures,
// generalisation to similar failures not used in the repair, specificity on samples the model
// got right. Each compares teacher-forced assessments without and with the patch.

import type { LayerPatch } from '../runtime/runtime';
import { assess, stackPatch, type Assessment, type RepairModel } from '../repair/engine';
import type { Example } from '../repair/teacher';

export interface Effectiveness {
  /** Failures whose desired completion is now produced exactly (every target token is the argmax). */
  fixed: number;
  total: number;
  rate: number;
  tokenAccuracyBefore: number;
  tokenAccuracyAfter: number;
}

export interface Generalisation {
  /** Of the held-out failures that failed before, how many are fixed now. */
  fixed: number;
  total: number;
  rate: number;
  /** Mean change of P(desired token) over their target positions. */
  meanDeltaP: number;
  /** Mean change of the desired token's rank (negative = better). */
  meanDeltaRank: number;
}

export interface Specificity {
  /** Of the samples that were right before, how many are still right. */
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

async function assessAll(model: RepairModel, examples: readonly Example[]): Promise<Assessment[]> {
  const out: Assessment[] = [];
  for (const ex of examples) out.push(await assess(model.runtime, ex));
  return out;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

export function effectiveness(before: readonly Assessment[], after: readonly Assessment[]): Effectiveness {
  const fixed = after.filter((a) => a.allCorrect).length;
  const tokens = (as: readonly Assessment[]) => {
    const all = as.flatMap((a) => a.correct);
    return all.length ? all.filter(Boolean).length / all.length : 0;
  };
  return { fixed, total: after.length, rate: after.length ? fixed / after.length : 0, tokenAccuracyBefore: tokens(before), tokenAccuracyAfter: tokens(after) };
}

export function generalisation(before: readonly Assessment[], after: readonly Assessment[]): Generalisation {
  const failing = before.map((_, i) => i).filter((i) => !before[i].allCorrect);
  const fixed = failing.filter((i) => after[i].allCorrect).length;
  const dp: number[] = [];
  const dr: number[] = [];
  for (const i of failing) {
    before[i].pDesired.forEach((p, k) => {
      dp.push(after[i].pDesired[k] - p);
      dr.push(after[i].rankDesired[k] - before[i].rankDesired[k]);
    });
  }
  return { fixed, total: failing.length, rate: failing.length ? fixed / failing.length : 0, meanDeltaP: mean(dp), meanDeltaRank: mean(dr) };
}

export function specificity(before: readonly Assessment[], after: readonly Assessment[]): Specificity {
  const right = before.map((_, i) => i).filter((i) => before[i].allCorrect);
  const kept = right.filter((i) => after[i].allCorrect).length;
  const dt: number[] = [];
  for (const i of right) before[i].pTop.forEach((p, k) => dt.push(Math.abs(after[i].pTop[k] - p)));
  return { kept, total: right.length, rate: right.length ? kept / right.length : 1, meanAbsDeltaTopP: mean(dt) };
}

/**
 * Evaluates `patch` (this repair's change, stacked on the model's base patches) on the repaired
 * failures, held-out failures of the same kind, and a regression set. Leaves the runtime with
 * the patch applied.
 */
export async function evaluatePatch(
  model: RepairModel,
  patch: ReadonlyMap<number, LayerPatch>,
  sets: { repaired: readonly Example[]; heldout?: readonly Example[]; regression?: readonly Example[] },
  cachedBefore?: { repaired?: Assessment[]; heldout?: Assessment[]; regression?: Assessment[] },
): Promise<Evaluation> {
  const d = model.config.hidden;
  model.runtime.setPatch(model.base);
  const before = {
    repaired: cachedBefore?.repaired ?? (await assessAll(model, sets.repaired)),
    heldout: cachedBefore?.heldout ?? (await assessAll(model, sets.heldout ?? [])),
    regression: cachedBefore?.regression ?? (await assessAll(model, sets.regression ?? [])),
  };
  const combined = stackPatch(d, model.base, patch);
  model.runtime.setPatch(combined);
  const after = {
    repaired: await assessAll(model, sets.repaired),
    heldout: await assessAll(model, sets.heldout ?? []),
    regression: await assessAll(model, sets.regression ?? []),
  };
  return {
    effectiveness: effectiveness(before.repaired, after.repaired),
    generalisation: sets.heldout?.length ? generalisation(before.heldout, after.heldout) : null,
    specificity: sets.regression?.length ? specificity(before.regression, after.regression) : null,
  };
}
