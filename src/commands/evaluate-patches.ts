// "Evaluate Patches": measures every patch in the history again — effectiveness on its failures,
// generalisation on the other open failures, specificity on accepted completions and the built-in
// samples — each against the other enabled patches, and records the new scores.

import * as vscode from 'vscode';
import type { EvaluateResult } from '../worker/protocol';
import { errorText, requireStores, type CommandSpec } from './common';

function pct(x: number | null): string {
  return x === null ? '–' : `${Math.round(x * 100)}%`;
}

export const evaluatePatches: CommandSpec = {
  id: 'starRepair.evaluatePatches',
  async run(s) {
    if (!requireStores(s)) return undefined;
    const plan = s.repairs.evaluationPlan();
    if (plan.items.length === 0) {
      void vscode.window.showInformationMessage('STAR Repair: no patch to evaluate (a patch needs at least one of its failures in the store).');
      return undefined;
    }
    let result: EvaluateResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `STAR Repair: evaluating ${plan.items.length} patch(es)`, cancellable: true },
        (_, token) => s.repairs.evaluate(plan, { token }),
      );
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: evaluation failed: ${errorText(e)}`);
      return undefined;
    }
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
