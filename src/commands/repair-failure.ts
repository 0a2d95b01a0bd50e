// "Repair Model on This Failure" (editor context menu, palette, keybinding). With a selection:
// desired = the selection, prompt = the text before it. Without: the newest failure captured on
// the cursor's line, else the user types the desired text. The model's current prediction is shown
// next to the desired text before the repair runs. A captured failure with the same prompt and
// desired text (up to a final line break) is reused, so one fix never leaves a pending twin.

import * as vscode from 'vscode';
import { promptBefore } from '../completion/provider';
import { MAX_AFTER_CHARS, type Failure } from '../failures/failure';
import type { CompletionReplay } from '../runtime/replay';
import type { Services } from '../services/services';
import type { PredictResult } from '../worker/protocol';
import { errorText, repairWithProgress, requireStores, type CommandSpec } from './common';

/** Programmatic use (tests, other commands): skip the editor and the confirmation. */
export interface RepairFailureArgs {
  prompt?: string;
  desired?: string;
  failureId?: string;
  languageId?: string;
  /** false: do not ask for confirmation. */
  confirm?: boolean;
}

function isArgs(v: unknown): v is RepairFailureArgs {
  return typeof v === 'object' && v !== null && !(v instanceof vscode.Uri) && ('prompt' in v || 'desired' in v || 'failureId' in v || 'confirm' in v);
}

/** The completion settings in force: a manual failure is repaired for the completions the editor shows now. */
function replayNow(s: Services): CompletionReplay {
  const { completions } = s.settings();
  return { heal: true, stop: completions.stop, maxTokens: completions.maxTokens };
}

function visible(t: string): string {
  return t.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}

async function chooseFailure(s: Services, args: RepairFailureArgs | undefined): Promise<Failure | undefined> {
  const stores = requireStores(s);
  if (!stores) return undefined;
  if (args?.failureId) {
    const f = stores.failures.get(args.failureId);
    if (!f) void vscode.window.showErrorMessage(`STAR Repair: failure ${args.failureId} is no longer stored.`);
    return f;
  }
  const budget = Math.min(32_000, (s.model.info?.context ?? 2048) * 4);
  if (args?.prompt !== undefined && args.desired !== undefined) {
    return stores.failures.addOrReuse({ source: 'manual', prompt: args.prompt, desired: args.desired, languageId: args.languageId ?? 'plaintext' });
  }
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showWarningMessage('STAR Repair: open the file with the failure, select the text the model should have written (or put the cursor where it should have completed), then run this command again.');
    return undefined;
  }
  const doc = editor.document;
  const sel = editor.selection;
  if (!sel.isEmpty) {
    const desired = doc.getText(sel);
    const prompt = promptBefore(doc.getText(), doc.offsetAt(sel.start), budget);
    if (prompt.trim() === '') {
      void vscode.window.showWarningMessage('STAR Repair: there is no text before the selection for the model to continue from: select text that follows some code.');
      return undefined;
    }
    // A selection that ends a line ends the completion there: the text after it shows how.
    const rest = doc.getText(new vscode.Range(sel.end, doc.lineAt(Math.min(sel.end.line + 1, doc.lineCount - 1)).range.end));
    return stores.failures.addOrReuse({ source: 'manual', prompt, desired, languageId: doc.languageId, uri: doc.uri.toString(), line: sel.start.line, replay: replayNow(s), ...(rest.startsWith('\n') || desired.endsWith('\n') ? { after: rest.slice(0, MAX_AFTER_CHARS) } : {}) });
  }
  const captured = s.capture.failureAt(doc.uri.toString(), sel.active.line);
  if (captured) return captured;
  const prompt = promptBefore(doc.getText(), doc.offsetAt(sel.active), budget);
  if (prompt.trim() === '') {
    void vscode.window.showWarningMessage('STAR Repair: put the cursor after some code (the model continues the text before the cursor).');
    return undefined;
  }
  const desired = await vscode.window.showInputBox({
    title: 'STAR Repair: what should the model have written here?',
    prompt: `After: …${visible(prompt.slice(-60))}`,
    placeHolder: 'the completion you wanted (use \\n for a new line)',
    ignoreFocusOut: true,
    validateInput: (v) => (v.length === 0 ? 'type the text the model should produce' : undefined),
  });
  if (desired === undefined) return undefined;
  return stores.failures.addOrReuse({ source: 'manual', prompt, desired: desired.replace(/\\n/g, '\n'), languageId: doc.languageId, uri: doc.uri.toString(), line: sel.active.line, replay: replayNow(s) });
}

export const repairFailure: CommandSpec = {
  id: 'starRepair.repairFailure',
  async run(s, arg) {
    const args = isArgs(arg) ? arg : undefined;
    let failure: Failure | undefined;
    try {
      failure = await chooseFailure(s, args);
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: ${errorText(e)}`);
      return undefined;
    }
    if (!failure) return undefined;
    let prediction: PredictResult;
    try {
      prediction = await s.model.request('predict', { prompt: failure.prompt, desired: failure.desired, after: failure.after, ...(failure.suffix !== undefined ? { suffix: failure.suffix } : {}), replay: failure.replay });
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: cannot repair this failure: ${errorText(e)}`);
      return undefined;
    }
    if (prediction.allCorrect) {
      s.model.stores?.failures.update(failure.id, { status: 'repaired' });
      void vscode.window.showInformationMessage(`STAR Repair: the model already completes this with "${visible(failure.desired)}" — nothing to repair.`);
      return undefined;
    }
    if (args?.confirm !== false) {
      const right = prediction.correct.filter(Boolean).length;
      const go = await vscode.window.showInformationMessage(
        'Repair the model on this failure?',
        {
          modal: true,
          detail: `Model now:  ${visible(prediction.prediction) || '(nothing)'}\nDesired:     ${visible(failure.desired)}\n\n` +
            `${right} of ${prediction.desiredTokens.length} desired tokens are already the model's first choice.`,
        },
        'Repair',
      );
      if (go !== 'Repair') return undefined;
    }
    return repairWithProgress(s, [failure], 'STAR Repair: repairing the model');
  },
};
