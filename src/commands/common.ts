// What several commands share: the model must be loaded first, a repair runs behind a cancellable
// progress notification, and its outcome is told the same way (fixed or not, neurons, time,
// "Show in panel").

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
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

/** Tells the outcome of a repair; "Show in panel" reveals the patch there. */
export async function reportRepair(s: Services, summary: RepairSummary, failures: readonly Failure[]): Promise<void> {
  const p = summary.patch;
  const what = failures.length === 1 ? `"${shortText(failures[0].desired)}"` : `${failures.length} failures`;
  const head = summary.fixed.length === failures.length
    ? `Fixed ${what}`
    : summary.fixed.length === 0 ? `Could not fix ${what}` : `Fixed ${summary.fixed.length} of ${failures.length} failures`;
  const tail = `${p.stats.neurons} neuron(s) changed in ${seconds(p.stats.ms)} · specificity ${pct(p.scores.specificity)} · generalisation ${pct(p.scores.generalisation)}`;
  const note = summary.keptDisabled ? ' The patch is kept in the history, disabled.' : summary.undoneByGuard ? ' The patch was undone by the specificity guard.' : '';
  const text = `STAR Repair: ${head} — ${tail}.${note}`;
  const pick = summary.fixed.length
    ? await vscode.window.showInformationMessage(text, 'Show in Panel')
    : await vscode.window.showWarningMessage(text, 'Show in Panel');
  if (pick) await s.showPanel();
}

/** Runs a repair behind a cancellable notification; tells the outcome; returns it (undefined if it did not run). */
export async function repairWithProgress(s: Services, failures: readonly Failure[], title: string, mode?: 'iter' | 'batch'): Promise<RepairSummary | undefined> {
  try {
    const summary = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: true },
      async (progress, token) => {
        let last = 0;
        return s.repairs.repair(failures.map((f) => f.id), {
          token,
          mode,
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
