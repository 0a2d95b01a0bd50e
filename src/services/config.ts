// Reading the `starRepair.*` settings from VS Code: validated by src/settings.ts, with workspace
// trust applied — in an untrusted workspace a model folder set by the workspace (or a folder of
// it) is ignored and only the user's own setting counts, so opening a repository cannot make the
// extension load weights it chose. package.json also declares starRepair.modelPath restricted.

import * as vscode from 'vscode';
import { SETTINGS_PREFIX, validateSettings, type Settings } from '../settings';

export interface ReadSettings {
  settings: Settings;
  problems: string[];
  /** The workspace sets a model folder that was ignored because the workspace is not trusted. */
  modelPathBlocked: string | null;
}

export function readSettings(): ReadSettings {
  const config = vscode.workspace.getConfiguration(SETTINGS_PREFIX);
  const { settings, problems } = validateSettings((key: string) => config.get(key));
  let modelPathBlocked: string | null = null;
  if (!vscode.workspace.isTrusted) {
    const inspected = config.inspect<string>('modelPath');
    const fromWorkspace = inspected?.workspaceFolderValue ?? inspected?.workspaceValue;
    const user = typeof inspected?.globalValue === 'string' ? inspected.globalValue : '';
    if (typeof fromWorkspace === 'string' && fromWorkspace !== user) modelPathBlocked = fromWorkspace;
    settings.modelPath = user;
  }
  return { settings, problems, modelPathBlocked };
}

/** Writes one setting for the user (global), so a toggle is not lost when the workspace changes. */
export async function updateUserSetting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration(SETTINGS_PREFIX).update(key, value, vscode.ConfigurationTarget.Global);
}

export function affectsModel(e: vscode.ConfigurationChangeEvent): boolean {
  return ['modelPath', 'executionProvider', 'threads', 'weights'].some((k) => e.affectsConfiguration(`${SETTINGS_PREFIX}.${k}`));
}
