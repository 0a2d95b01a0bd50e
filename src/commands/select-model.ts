// "Select Model Folder": the embedded model or a Hugging Face folder (config.json, *.safetensors,
// tokenizer.json), saved as the user's starRepair.modelPath; the model reloads on the change.
// Failures and patches are kept per model, so switching back restores them.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { updateUserSetting } from '../services/config';
import { errorText, type CommandSpec } from './common';

/** What is missing for `dir` to be a model folder, or null. */
export function modelFolderProblem(dir: string): string | null {
  if (!existsSync(dir)) return `${dir} does not exist`;
  const files = readdirSync(dir);
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !files.includes(f));
  if (!files.some((f) => f.endsWith('.safetensors'))) missing.push('*.safetensors');
  return missing.length ? `${dir} is not a Hugging Face model folder: it lacks ${missing.join(', ')}` : null;
}

export const selectModelFolder: CommandSpec = {
  id: 'starRepair.selectModelFolder',
  async run(s, arg) {
    let dir: string | undefined = typeof arg === 'string' ? arg : undefined;
    if (dir === undefined) {
      const embedded = { label: '$(package) Embedded model (tiny-coder)', value: '' };
      const folder = { label: '$(folder-opened) Choose a model folder…', value: '?' };
      const pick = await vscode.window.showQuickPick([embedded, folder], { title: 'STAR Repair: model', placeHolder: `Now: ${s.model.info?.dir ?? 'not loaded'}` });
      if (!pick) return undefined;
      if (pick.value === '?') {
        const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: false, openLabel: 'Use This Model', title: 'A folder with config.json, *.safetensors and tokenizer.json' });
        if (!uris?.[0]) return undefined;
        dir = uris[0].fsPath;
      } else {
        dir = '';
      }
    }
    if (dir !== '') {
      const problem = modelFolderProblem(dir);
      if (problem) {
        void vscode.window.showErrorMessage(`STAR Repair: ${problem}.`);
        return undefined;
      }
    }
    try {
      const current = s.settings().modelPath;
      await updateUserSetting('modelPath', dir);
      // Same value: no configuration event, so load explicitly (e.g. after the folder's files changed).
      if (current === dir) await s.model.reload();
      return dir === '' ? join(s.context.extensionPath, 'models', 'tiny-coder') : dir;
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: ${errorText(e)}`);
      return undefined;
    }
  },
};
