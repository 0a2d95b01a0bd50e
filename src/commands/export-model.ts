// "Export Patched Model": folds the enabled patches into the weights and writes a complete
// Hugging Face folder (safetensors, config, tokenizer) that any loader reads; written aside and
// renamed when complete, so a crash leaves no half model. The command asks where, shows the
// export's progress until it ends (done, failed or cancelled: withCancellableProgress) and tells
// the outcome; the export itself is RepairService.exportModel.

import { join, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { Services } from '../services/services';
import type { ExportResult } from '../worker/protocol';
import { requireStores, tellUnfinished, withCancellableProgress, type CommandSpec } from './common';

const USE_MODEL = 'Use This Model';

/** Asks for the new model folder (a parent and a name); undefined when the user stops. */
async function askWhere(s: Services, modelName: string): Promise<string | undefined> {
  if (s.model.applicablePatches().length === 0) {
    const go = await vscode.window.showWarningMessage('No patch is enabled: the export will be a copy of the model as loaded.', { modal: true }, 'Export Anyway');
    if (go !== 'Export Anyway') return undefined;
  }
  const parent = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Export Into This Folder', title: 'STAR Repair: where to write the patched model' });
  if (!parent?.[0]) return undefined;
  const name = await vscode.window.showInputBox({
    title: 'Name of the new model folder',
    value: `${modelName}-star-repaired`,
    ignoreFocusOut: true,
    validateInput: (v) => (/^[^\\/:*?"<>|]+$/.test(v) ? undefined : 'a folder name, without slashes'),
  });
  return name ? join(parent[0].fsPath, name) : undefined;
}

/**
 * Tells the export's outcome with "Use This Model". A toast cannot be withdrawn, so the button is
 * checked when clicked: a model loaded meanwhile from that folder is not loaded again.
 */
async function tellExported(s: Services, text: string, r: ExportResult): Promise<void> {
  const pick = await vscode.window.showInformationMessage(text, USE_MODEL);
  if (pick !== USE_MODEL) return;
  const loaded = s.model.info?.dir;
  if (loaded && resolve(loaded) === resolve(r.dir)) {
    void vscode.window.showInformationMessage(`STAR Repair: ${r.dir} is already the model in use.`);
    return;
  }
  await vscode.commands.executeCommand('starRepair.selectModelFolder', r.dir);
}

export const exportModel: CommandSpec = {
  id: 'starRepair.exportModel',
  async run(s, arg) {
    const info = requireStores(s) && s.model.info;
    if (!info) return undefined;
    const dir = typeof arg === 'string' ? arg : await askWhere(s, info.name);
    if (!dir) return undefined;
    // Read after the dialogs: the history may have changed while they were up.
    const patches = s.model.applicablePatches();
    const outcome = await withCancellableProgress('STAR Repair: exporting the patched model', (_, token) => s.repairs.exportModel(dir, patches, { token }));
    if (outcome.ended !== 'done') {
      tellUnfinished(outcome, { cancelled: `export cancelled. A write the worker had begun still completes: if ${dir} appears, it is a complete model.`, failed: 'export failed' });
      return undefined;
    }
    const r = outcome.value;
    void tellExported(s, `STAR Repair: exported ${info.name} with ${patches.length} patch(es) (${r.neurons} neurons changed) to ${r.dir}.`, r);
    return r;
  },
};
