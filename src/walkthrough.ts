// The first-run walkthrough (package.json contributes.walkthroughs, media/walkthrough/): opened
// once, on the first activation of an installed extension, and the context key its "Reject one"
// step waits for.

import * as vscode from 'vscode';

export const WALKTHROUGH_ID = 'gettingStarted';
const SHOWN_KEY = 'starRepair.walkthroughShown';
/** Set once a failure exists: the walkthrough's "Reject one" step completes on it. */
export const HAS_FAILURES_CONTEXT = 'starRepair.hasFailures';

/**
 * Opens the walkthrough the first time the installed extension activates. Not in development or
 * test runs (the integration suite drives editors itself and must not lose focus to it).
 */
export function openWalkthroughOnFirstRun(context: vscode.ExtensionContext, log: (line: string) => void): void {
  if (context.extensionMode !== vscode.ExtensionMode.Production || context.globalState.get<boolean>(SHOWN_KEY)) return;
  void context.globalState.update(SHOWN_KEY, true);
  void vscode.commands.executeCommand('workbench.action.openWalkthrough', `${context.extension.id}#${WALKTHROUGH_ID}`, false).then(undefined, (e: unknown) => {
    log(`[walkthrough] could not open it: ${e instanceof Error ? e.message : String(e)}`);
  });
}

export function setHasFailures(on: boolean): void {
  void vscode.commands.executeCommand('setContext', HAS_FAILURES_CONTEXT, on);
}
