// "Toggle Inline Completions" (also the status-bar click): flips starRepair.completions.enabled
// in the user's settings.

import * as vscode from 'vscode';
import { updateUserSetting } from '../services/config';
import type { CommandSpec } from './common';

export const toggleCompletions: CommandSpec = {
  id: 'starRepair.toggleCompletions',
  async run(s) {
    const next = !s.settings().completions.enabled;
    await updateUserSetting('completions.enabled', next);
    vscode.window.setStatusBarMessage(`STAR Repair: inline completions ${next ? 'on' : 'off'}`, 3000);
    return next;
  },
};
