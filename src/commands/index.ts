// Every user-facing command, registered against the shared services. Each command lives in its
// own file; this list is what package.json's contributes.commands must match.

import * as vscode from 'vscode';
import type { Services } from '../services/services';
import type { CommandSpec } from './common';
import { evaluatePatches } from './evaluate-patches';
import { exportModel } from './export-model';
import { managePatches } from './manage-patches';
import { repairAllPending } from './repair-all';
import { repairFailure } from './repair-failure';
import { restartWorker } from './restart-worker';
import { selectModelFolder } from './select-model';
import { showLog } from './show-log';
import { showPanel } from './show-panel';
import { toggleCompletions } from './toggle-completions';
import { tryCompletion } from './try-completion';
import { undoLastPatch } from './undo-last';

export const COMMANDS: readonly CommandSpec[] = [
  repairFailure, repairAllPending, showPanel, undoLastPatch, managePatches, exportModel,
  selectModelFolder, toggleCompletions, evaluatePatches, restartWorker, showLog, tryCompletion,
];

export function registerCommands(services: Services): vscode.Disposable {
  return vscode.Disposable.from(...COMMANDS.map((c) => vscode.commands.registerCommand(c.id, (...args: unknown[]) => c.run(services, ...args))));
}
