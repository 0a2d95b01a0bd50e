// The user-facing flows that both the commands and the panel start, around RepairService: a repair
// behind a cancellable progress notification with its outcome told (worded in repair-outcome.ts),
// and saving a patch through a save dialog. The work itself is RepairService's; this file only
// asks and tells.

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import type { PatchEntry } from '../repair/patch-store';
import type { SpecificityGuard } from '../settings';
import { WorkerError } from '../worker/client';
import { describeRepair, patchTitle } from './repair-outcome';
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
    // The patch may have been undone another way while the message was up: then there is nothing to do.
    if (await s.repairs.undo(p.id)) {
      void vscode.window.showInformationMessage(`STAR Repair: undid the ${patchTitle(p)}; the model is as before it.`);
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
