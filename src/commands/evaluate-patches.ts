// "Evaluate Patches": measures every patch in the history again — effectiveness on its failures,
// generalisation on the other open failures, specificity on accepted completions and the built-in
// samples — each against the other enabled patches, and records the new scores.

import * as vscode from 'vscode';
import { patchToJson } from '../repair/patch';
import type { EvaluateResult, Sample } from '../worker/protocol';
import { errorText, requireStores, type CommandSpec } from './common';

function pct(x: number | null): string {
  return x === null ? '–' : `${Math.round(x * 100)}%`;
}

export const evaluatePatches: CommandSpec = {
  id: 'starRepair.evaluatePatches',
  async run(s) {
    const stores = requireStores(s);
    if (!stores) return undefined;
    const entries = stores.patches.list();
    const items = entries.flatMap((e) => {
      const failures: Sample[] = e.patch.failureIds.flatMap((id) => {
        const f = stores.failures.get(id);
        return f ? [{ id: f.id, prompt: f.prompt, desired: f.desired }] : [];
      });
      if (failures.length === 0) {
        s.log(`[evaluate] patch ${e.patch.id}: none of its failures is stored any more; skipped`);
        return [];
      }
      const own = new Set(e.patch.failureIds);
      const heldout = stores.failures.list({ status: ['pending', 'unfixed'] }).filter((f) => !own.has(f.id)).slice(-32).map((f) => ({ id: f.id, prompt: f.prompt, desired: f.desired }));
      return [{ patch: patchToJson(e.patch), failures, heldout }];
    });
    if (items.length === 0) {
      void vscode.window.showInformationMessage('STAR Repair: no patch to evaluate (a patch needs at least one of its failures in the store).');
      return undefined;
    }
    const regression = stores.regression.list().slice(-64).map((r) => ({ id: r.id, prompt: r.prompt, desired: r.completion }));
    let result: EvaluateResult;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `STAR Repair: evaluating ${items.length} patch(es)`, cancellable: true },
        (_, token) => s.model.request('evaluate', { items, regression }, { token }),
      );
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: evaluation failed: ${errorText(e)}`);
      return undefined;
    }
    for (const r of result.results) {
      stores.patches.setScores(r.patchId, r.scores);
      const old = stores.reports.get(r.patchId);
      stores.reports.put({ patchId: r.patchId, scoresBefore: r.scoresBefore, positions: old?.positions ?? [], evaluation: r.evaluation, fixed: old?.fixed ?? [], unfixed: old?.unfixed ?? [] });
      s.log(`[evaluate] patch ${r.patchId}: effectiveness ${pct(r.scores.effectiveness)}, generalisation ${pct(r.scores.generalisation)}, specificity ${pct(r.scores.specificity)}`);
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
