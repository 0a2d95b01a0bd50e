// What several commands share: the model must be loaded first, a repair runs behind a cancellable
// progress notification, and its outcome is told the same way (fixed or not, neurons, time,
// "Show in panel"; the wording lives in services/repair-outcome.ts).

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import type { SpecificityGuard } from '../settings';
import type { RepairSummary } from '../services/repair-service';
import type { ModelStores } from '../services/model-service';
import { describeRepair, patchTitle } from '../services/repair-outcome';
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

/**
 * Tells the real outcome of a repair (services/repair-outcome.ts words it and decides the buttons:
 * "Undo Patch" only when the patch stayed enabled below the guard's threshold); "Show in Panel"
 * reveals the patch there.
 */
export async function reportRepair(s: Services, summary: RepairSummary, failures: readonly Failure[]): Promise<void> {
  const { text, warn, actions } = describeRepair({ ...summary, fixed: summary.fixed.length }, failures);
  const pick = warn ? await vscode.window.showWarningMessage(`STAR Repair: ${text}`, ...actions) : await vscode.window.showInformationMessage(`STAR Repair: ${text}`, ...actions);
  const p = summary.patch;
  if (pick === 'Undo Patch') {
    // The patch may have been undone another way while the message was up: then there is nothing to do.
    if (s.model.stores?.patches.get(p.id)?.enabled) {
      s.model.stores.patches.toggle(p.id, false);
      await s.model.syncPatches();
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
