// "Evaluate Patches": measures every patch in the history again — effectiveness on its failures,
// generalisation on the other open failures, specificity on accepted completions and the built-in
// samples — each against the other enabled patches, and records the new scores.

import * as vscode from 'vscode';
import { pct } from '../services/repair-outcome';
import { requireStores, tellUnfinished, withCancellableProgress, type CommandSpec } from './common';

export const evaluatePatches: CommandSpec = {
  id: 'starRepair.evaluatePatches',
  async run(s) {
    if (!requireStores(s)) return undefined;
    const plan = s.repairs.evaluationPlan();
    if (plan.items.length === 0) {
      void vscode.window.showInformationMessage('STAR Repair: no patch to evaluate (a patch needs at least one of its failures in the store).');
      return undefined;
    }
    const outcome = await withCancellableProgress(`STAR Repair: evaluating ${plan.items.length} patch(es)`, (_, token) => s.repairs.evaluate(plan, { token }));
    if (outcome.ended !== 'done') {
      tellUnfinished(outcome, { cancelled: 'evaluation cancelled; the scores are as before.', failed: 'evaluation failed' });
      return undefined;
    }
    const result = outcome.value;
    const mean = (xs: (number | null)[]) => {
      const v = xs.filter((x): x is number => x !== null);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    };
    const sc = result.results.map((r) => r.scores);
    void vscode.window.showInformationMessage(
      `STAR Repair: evaluated ${result.results.length} patch(es) — mean effectiveness ${pct(mean(sc.map((x) => x.effectiveness)))}, generalisation ${pct(mean(sc.map((x) => x.generalisation)))}, specificity ${pct(mean(sc.map((x) => x.specificity)))}.`,
      'Show in Panel',
    ).then((pick) => pick && s.showPanel());
    return result;
  },
};
