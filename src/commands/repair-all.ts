// "Repair All Pending Failures": every failure waiting for review, repaired together in STAR's
// batch mode (one patch). It never leaves a patch in place that breaks what worked: below the
// specificity threshold the patch is undone whatever the guard setting, unless the guard is off.

import * as vscode from 'vscode';
import { repairWithProgress, requireStores, type CommandSpec } from './common';

export const repairAllPending: CommandSpec = {
  id: 'starRepair.repairAllPending',
  async run(s) {
    const stores = requireStores(s);
    if (!stores) return undefined;
    const pending = stores.failures.list({ status: 'pending' });
    if (pending.length === 0) {
      void vscode.window.showInformationMessage('STAR Repair: no failure is waiting for review.');
      return undefined;
    }
    const guard = s.settings().specificity.guard === 'off' ? 'off' : 'undo';
    return repairWithProgress(s, pending, `STAR Repair: repairing ${pending.length} failure(s) together`, 'batch', guard);
  },
};
