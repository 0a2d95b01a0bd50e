// "Export Patched Model": folds the enabled patches into the weights and writes a complete
// Hugging Face folder (safetensors, config, tokenizer) that any loader reads; written aside and
// renamed when complete, so a crash leaves no half model.

import { join } from 'node:path';
import * as vscode from 'vscode';
import { errorText, requireStores, type CommandSpec } from './common';

export const exportModel: CommandSpec = {
  id: 'starRepair.exportModel',
  async run(s, arg) {
    const stores = requireStores(s);
    const info = s.model.info;
    if (!stores || !info) return undefined;
    const patches = s.model.applicablePatches();
    let dir = typeof arg === 'string' ? arg : undefined;
    if (!dir) {
      if (patches.length === 0) {
        const go = await vscode.window.showWarningMessage('No patch is enabled: the export will be a copy of the model as loaded.', { modal: true }, 'Export Anyway');
        if (go !== 'Export Anyway') return undefined;
      }
      const parent = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Export Into This Folder', title: 'STAR Repair: where to write the patched model' });
      if (!parent?.[0]) return undefined;
      const name = await vscode.window.showInputBox({
        title: 'Name of the new model folder',
        value: `${info.name}-star-repaired`,
        ignoreFocusOut: true,
        validateInput: (v) => (/^[^\\/:*?"<>|]+$/.test(v) ? undefined : 'a folder name, without slashes'),
      });
      if (!name) return undefined;
      dir = join(parent[0].fsPath, name);
    }
    try {
      const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'STAR Repair: exporting the patched model' },
        () => s.repairs.exportModel(dir!, patches));
      void vscode.window.showInformationMessage(`STAR Repair: exported ${info.name} with ${patches.length} patch(es) (${r.neurons} neurons changed) to ${r.dir}.`, 'Use This Model').then(async (pick) => {
        if (pick) await vscode.commands.executeCommand('starRepair.selectModelFolder', r.dir);
      });
      return r;
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: export failed: ${errorText(e)}`);
      return undefined;
    }
  },
};
