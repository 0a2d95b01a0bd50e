// "Undo Last Patch": disables the newest enabled patch (it stays in the history, so the undo can
// itself be undone) and sends the remaining patches to the worker.

import * as vscode from 'vscode';
import { patchTitle } from '../services/repair-outcome';
import { errorText, requireStores, type CommandSpec } from './common';

export const undoLastPatch: CommandSpec = {
  id: 'starRepair.undoLastPatch',
  async run(s) {
    if (!requireStores(s)) return undefined;
    try {
      const undone = await s.repairs.undoLast();
      if (!undone) {
        void vscode.window.showInformationMessage('STAR Repair: no patch is active: the model is as it was loaded.');
        return undefined;
      }
      void vscode.window.showInformationMessage(`STAR Repair: undid the ${patchTitle(undone.patch)}, ${undone.patch.stats.neurons} neurons.`, 'Redo').then(async (pick) => {
        if (!pick) return;
        // A toast cannot be withdrawn: the patch may have left the history while it was up.
        if (!(await s.repairs.redo(undone.patch.id))) void vscode.window.showInformationMessage(`STAR Repair: the ${patchTitle(undone.patch)} is no longer in the history; nothing to redo.`);
      });
      return undone.patch.id;
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: could not undo: ${errorText(e)}`);
      return undefined;
    }
  },
};
