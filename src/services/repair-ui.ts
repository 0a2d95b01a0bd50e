// The user-facing flows that both the commands and the panel start, around RepairService: work
// behind a progress notification that ends whenever the work ends (withCancellableProgress) and
// how it ended when it did not finish (tellUnfinished), a repair with its outcome told (worded in
// repair-outcome.ts), and saving a patch through a save dialog. The work itself is
// RepairService's; this file only asks and tells.

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import type { PatchEntry } from '../repair/patch-store';
import type { SpecificityGuard } from '../settings';
import { WorkerError } from '../worker/client';
import { describeRepair, patchTitle, repairProgressText } from './repair-outcome';
import type { RepairSummary } from './repair-service';
import type { Services } from './services';

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Tells the real outcome of a repair (repair-outcome.ts words it and decides the buttons:
 * "Undo Patch" only when the patch stayed enabled below the guard's threshold); "Show in Panel"
 * reveals the patch there.
 */
export async function reportRepair(s: Services, summary: RepairSummary, failures: readonly Failure[]): Promise<void> {
  const { text, warn, actions } = describeRepair({ ...summary, fixed: summary.fixed.length }, failures);
  const pick = warn ? await vscode.window.showWarningMessage(`STAR Repair: ${text}`, ...actions) : await vscode.window.showInformationMessage(`STAR Repair: ${text}`, ...actions);
  const p = summary.patch;
  if (pick === 'Undo Patch') {
    // A toast cannot be withdrawn: the patch may have been undone another way while it was up.
    const undone = await s.repairs.undo(p.id);
    void vscode.window.showInformationMessage(undone
      ? `STAR Repair: undid the ${patchTitle(p)}; the model is as before it.`
      : `STAR Repair: the ${patchTitle(p)} was already undone (or removed); nothing changed.`);
  } else if (pick) await s.showPanel();
}

/** How work behind a progress notification ended. */
export type ProgressOutcome<T> = { ended: 'done'; value: T } | { ended: 'cancelled' } | { ended: 'failed'; error: unknown };

/** Whether an error is a request ending because the user cancelled it. */
function isCancellation(e: unknown): boolean {
  return e instanceof WorkerError && e.code === 'cancelled';
}

/**
 * Runs `task` behind a cancellable progress notification that ends when the task settles: done,
 * failed or cancelled. Cancel reaches the task through `token`, and the worker request it passes
 * the token to ends at once ('cancelled', WorkerClient), without waiting for a worker that is busy,
 * e.g. writing a model. A task whose request had already been answered when Cancel was pressed
 * finishes and is told as done: what it did stays done, so it is not called cancelled.
 */
export async function withCancellableProgress<T>(
  title: string,
  task: (progress: vscode.Progress<{ message?: string; increment?: number }>, token: vscode.CancellationToken) => Promise<T>,
): Promise<ProgressOutcome<T>> {
  try {
    const value = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, task);
    return { ended: 'done', value };
  } catch (e) {
    return isCancellation(e) ? { ended: 'cancelled' } : { ended: 'failed', error: e };
  }
}

/**
 * Tells how work behind a progress notification ended when it did not finish: a cancel the user
 * asked for as information (`cancelled` says what is left), a failure as an error with its reason.
 */
export function tellUnfinished(outcome: Exclude<ProgressOutcome<unknown>, { ended: 'done' }>, words: { cancelled: string; failed: string }): void {
  if (outcome.ended === 'cancelled') void vscode.window.showInformationMessage(`STAR Repair: ${words.cancelled}`);
  else void vscode.window.showErrorMessage(`STAR Repair: ${words.failed}: ${errorText(outcome.error)}`);
}

/** Runs a repair behind a cancellable notification; tells the outcome; returns it (undefined if it did not run). */
export async function repairWithProgress(s: Services, failures: readonly Failure[], title: string, mode?: 'iter' | 'batch', guard?: SpecificityGuard): Promise<RepairSummary | undefined> {
  const outcome = await withCancellableProgress(title, (progress, token) => {
    let last = 0;
    return s.repairs.repair(failures.map((f) => f.id), {
      token,
      mode,
      guard,
      onProgress: (p) => {
        const frac = p.epochs > 0 ? Math.min(1, p.epoch / p.epochs) : 0;
        const increment = Math.max(0, frac * 90 - last);
        last += increment;
        progress.report({ message: repairProgressText(p), increment });
      },
    });
  });
  if (outcome.ended === 'done') {
    void reportRepair(s, outcome.value, failures);
    return outcome.value;
  }
  if (outcome.ended === 'failed' && outcome.error instanceof WorkerError && outcome.error.code === 'already-correct') {
    void vscode.window.showInformationMessage(`STAR Repair: the model already produces the desired text — nothing to repair. ${failures.length === 1 ? 'The failure is marked repaired.' : ''}`);
  } else {
    tellUnfinished(outcome, { cancelled: 'repair cancelled; the model is unchanged.', failed: 'the repair failed' });
  }
  return undefined;
}

/**
 * Saves one patch as a JSON file: to `file`, or where the user picks in a save dialog (named by
 * method and time). Returns the entry (also when the dialog was dismissed).
 */
export async function savePatchAs(s: Services, patchId: string, file?: string): Promise<PatchEntry | undefined> {
  if (!s.model.stores) throw new Error('the model is not loaded');
  const entry = s.model.stores.patches.get(patchId);
  if (!entry) throw new Error(`no patch ${patchId} in the history`);
  let target = file;
  if (!target) {
    const stamp = entry.patch.createdAt.slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
    const uri = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(`star-patch-${entry.patch.method}-${stamp}.json`), filters: { 'STAR patch': ['json'] }, saveLabel: 'Save Patch' });
    if (!uri) return entry;
    target = uri.fsPath;
  }
  s.repairs.savePatch(patchId, target);
  void vscode.window.showInformationMessage(`STAR Repair: the ${patchTitle(entry.patch)} is saved to ${target}.`);
  return entry;
}
