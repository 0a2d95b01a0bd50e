// What several commands share: the command's shape and "the model must be loaded first". Work
// behind a progress notification and how it ended, a repair and its outcome message are
// services/repair-ui.ts (the panel starts them too); they are re-exported here for the commands.

import * as vscode from 'vscode';
import type { ModelStores } from '../services/model-service';
import type { Services } from '../services/services';

export { errorText, repairWithProgress, reportRepair, tellUnfinished, withCancellableProgress } from '../services/repair-ui';

export interface CommandSpec {
  id: string;
  run(services: Services, ...args: unknown[]): unknown;
}

/** The loaded model's stores, or a message telling the user to wait / fix the model. */
export function requireStores(s: Services): ModelStores | undefined {
  const stores = s.model.stores;
  if (stores && s.model.info) return stores;
  const why = s.model.errorMessage ? `the model could not be loaded: ${s.model.errorMessage}` : 'the model is still loading; try again when the status bar shows it ready';
  void vscode.window.showWarningMessage(`STAR Repair: ${why}`);
  return undefined;
}
