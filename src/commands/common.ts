// What several commands share: the model must be loaded first, a repair runs behind a cancellable
// progress notification, and its outcome is told the same way (fixed or not, neurons, time,
// "Show in panel").

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import type { SpecificityGuard } from '../settings';
import type { RepairSummary } from '../services/repair-service';
import type { ModelStores } from '../services/model-service';
import type { Services } from '../services/services';
import { WorkerError } from '../worker/client';

export interface CommandSpec {
  id: string;
  run(services: Services, ...args: unknown[]): unknown;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The loaded model's stores, or a message telling the user to wait / fix the model. */
export function requireStores(s: Services): ModelStores | undefined {
  const stores = s.model.stores;
  if (stores && s.model.info) return stores;
  const why = s.model.errorMessage ? `the model could not be loaded: ${s.model.errorMessage}` : 'the model is still loading; try again when the status bar shows it ready';
  void vscode.window.showWarningMessage(`STAR Repair: ${why}`);
  return undefined;
}

function shortText(t: string, n = 60): string {
  const one = t.replace(/\n/g, '⏎');
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function pct(x: number | null): string {
  return x === null ? '–' : `${Math.round(x * 100)}%`;
}

/**
 * Tells the real outcome of a repair: what the editor now shows (fixed counts), the patch's cost and
 * scores, and what the specificity guard did — a warning whenever a failure is left unfixed or the
 * patch broke completions that were right; "Show in Panel" reveals the patch there.
 */
export async function reportRepair(s: Services, summary: RepairSummary, failures: readonly Failure[]): Promise<void> {
  const p = summary.patch;
  const what = failures.length === 1 ? `"${shortText(failures[0].desired)}"` : `${failures.length} failures`;
  const scores = `specificity ${pct(p.scores.specificity)} · generalisation ${pct(p.scores.generalisation)}`;
  let text: string;
  let warn: boolean;
  let undo = false;
  if (summary.undoneByGuard) {
    text = `Patch undone: it would have fixed ${summary.wouldFix} of ${failures.length}, but kept only ${pct(p.scores.specificity)} of the completions that were right (threshold ${pct(summary.threshold)}). The model is unchanged; the patch stays in the history, disabled.`;
    warn = true;
  } else if (summary.keptDisabled) {
    text = `Could not fix ${what} (${p.stats.neurons} neuron(s) tried in ${seconds(p.stats.ms)}). The model is unchanged; the patch stays in the history, disabled.`;
    warn = true;
  } else {
    const head = summary.fixed.length === failures.length ? `Fixed ${what}` : `Fixed ${summary.fixed.length} of ${failures.length} failures`;
    text = `${head} — ${p.stats.neurons} neuron(s) changed in ${seconds(p.stats.ms)} · ${scores}.`;
    warn = summary.fixed.length < failures.length || summary.belowThreshold;
    if (summary.belowThreshold) {
      text += ` It keeps only ${pct(p.scores.specificity)} of the completions that were right (threshold ${pct(summary.threshold)}).`;
      undo = true;
    }
  }
  const actions = undo ? ['Undo Patch', 'Show in Panel'] : ['Show in Panel'];
  const pick = warn ? await vscode.window.showWarningMessage(`STAR Repair: ${text}`, ...actions) : await vscode.window.showInformationMessage(`STAR Repair: ${text}`, ...actions);
  if (pick === 'Undo Patch') {
    // The patch may have been undone another way while the message was up.
    if (s.model.stores?.patches.get(p.id)?.enabled) {
      s.model.stores.patches.toggle(p.id, false);
      await s.model.syncPatches();
    }
  } else if (pick) await s.showPanel();
}

/** Runs a repair behind a cancellable notification; tells the outcome; returns it (undefined if it did not run). */
export async function repairWithProgress(s: Services, failures: readonly Failure[], title: string, mode?: 'iter' | 'batch', guard?: SpecificityGuard): Promise<RepairSummary | undefined> {
  try {
    const summary = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, token) => {
        let last = 0;
        return s.repairs.repair(failures.map((f) => f.id), {
          token,
          mode,
          guard,
          onProgress: (p) => {
            const frac = p.epochs > 0 ? Math.min(1, p.epoch / p.epochs) : 0;
            const increment = Math.max(0, frac * 90 - last);
            last += increment;
            const detail = p.phase === 'step'
              ? `epoch ${p.epoch}/${p.epochs} · ${p.positionsFixed}/${p.positionsTotal} tokens right${p.loss !== null ? ` · loss ${p.loss.toFixed(3)}` : ''}`
              : p.phase === 'locate' ? 'locating neurons…' : p.phase === 'evaluate' ? 'evaluating the patch…' : 'checking the model…';
            progress.report({ message: detail, increment });
          },
        });
      },
    );
    void reportRepair(s, summary, failures);
    return summary;
  } catch (e) {
    if (e instanceof WorkerError && e.code === 'cancelled') {
      void vscode.window.showInformationMessage('STAR Repair: repair cancelled; the model is unchanged.');
    } else if (e instanceof WorkerError && e.code === 'already-correct') {
      void vscode.window.showInformationMessage(`STAR Repair: the model already produces the desired text — nothing to repair. ${failures.length === 1 ? 'The failure is marked repaired.' : ''}`);
    } else {
      void vscode.window.showErrorMessage(`STAR Repair: the repair failed: ${errorText(e)}`);
    }
    return undefined;
  }
}
