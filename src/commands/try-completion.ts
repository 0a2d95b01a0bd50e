// "Try an Inline Completion" (the walkthrough's second step): opens a small Python file and asks
// the model for a suggestion at its end, so a first-time user sees ghost text without setting
// anything up.

import * as vscode from 'vscode';
import type { CommandSpec } from './common';

/** A prompt the embedded model completes with a plausible (and not always wanted) import. */
export const TRY_PROMPT = '#!/usr/bin/env python3\nimport os\nimport sys\n';

export const tryCompletion: CommandSpec = {
  id: 'starRepair.tryCompletion',
  async run() {
    const doc = await vscode.workspace.openTextDocument({ language: 'python', content: TRY_PROMPT });
    const editor = await vscode.window.showTextDocument(doc);
    const end = doc.lineAt(doc.lineCount - 1).range.end;
    editor.selection = new vscode.Selection(end, end);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    return doc.uri.toString();
  },
};
