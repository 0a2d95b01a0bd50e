// "Restart Model Worker": starts the worker process again (after repeated crashes it is not
// restarted automatically); the model and the enabled patches are loaded again.

import * as vscode from 'vscode';
import { errorText, type CommandSpec } from './common';

export const restartWorker: CommandSpec = {
  id: 'starRepair.restartWorker',
  async run(s) {
    try {
      await s.model.restartWorker();
      vscode.window.setStatusBarMessage('STAR Repair: model worker restarted', 3000);
      return true;
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: the model worker did not start: ${errorText(e)}`);
      return false;
    }
  },
};
