// Inline completions from the local model: waits for a pause in typing (debounce), sends the text
// before the cursor (cut to a character budget) to the worker, and drops the request as soon as
// the user types on (VS Code cancels the token, which aborts the decoding in the worker). Every
// item carries a command that reports its acceptance, and is reported as shown to the capture.

import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { completionsEnabledFor, type Settings } from '../settings';
import { WorkerError } from '../worker/client';
import type { CaptureService } from '../services/capture';
import type { ModelService } from '../services/model-service';

export const ACCEPT_COMMAND = 'starRepair.completionAccepted';
/** Bound to Escape while ghost text is visible (package.json keybindings): tells capture, then hides it. */
export const DISMISS_COMMAND = 'starRepair.dismissInlineSuggestion';

/** Characters of prompt per token of context: code averages 3–4, so this rarely overflows. */
const CHARS_PER_TOKEN = 4;
const MAX_PROMPT_CHARS = 32_000;

/** The text before `offset`, at most `budget` characters, starting at a line start when it is cut. */
export function promptBefore(text: string, offset: number, budget: number): string {
  const start = Math.max(0, offset - budget);
  if (start === 0) return text.slice(0, offset);
  const nl = text.indexOf('\n', start);
  return text.slice(nl >= 0 && nl < offset ? nl + 1 : start, offset);
}

/** The rest of the line holds a word: completing here would insert into the middle of code. */
export function midWord(lineSuffix: string): boolean {
  return /^\s*[\w$]/.test(lineSuffix);
}

function sleep(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(!token.isCancellationRequested);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sub.dispose();
      resolve(!token.isCancellationRequested);
    }, ms);
    const sub = token.onCancellationRequested(() => {
      clearTimeout(t);
      sub.dispose();
      resolve(false);
    });
  });
}

export class StarInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  constructor(
    private readonly model: ModelService,
    private readonly capture: CaptureService,
    private readonly settings: () => Settings,
    private readonly log: (line: string) => void,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    _context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const settings = this.settings();
    if (!completionsEnabledFor(settings, document.languageId) || !this.model.ready) return undefined;
    if (midWord(document.lineAt(position.line).text.slice(position.character))) return undefined;
    if (!(await sleep(settings.completions.debounceMs, token))) return undefined;
    const info = this.model.info;
    if (!info) return undefined;
    const budget = Math.min(MAX_PROMPT_CHARS, info.context * CHARS_PER_TOKEN);
    const prompt = promptBefore(document.getText(), document.offsetAt(position), budget);
    if (prompt.trim().length === 0) return undefined;
    let text: string;
    try {
      const r = await this.model.complete({
        prompt,
        maxTokens: settings.completions.maxTokens,
        stop: [],
        stopRule: settings.completions.stop,
        temperature: 0,
      }, token);
      text = r.text;
    } catch (e) {
      if (!(e instanceof WorkerError && e.code === 'cancelled')) this.log(`[completion] ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    if (token.isCancellationRequested || text.trim().length === 0) return undefined;
    const id = randomUUID();
    const item = new vscode.InlineCompletionItem(text, new vscode.Range(position, position), { command: ACCEPT_COMMAND, title: 'Accept completion', arguments: [id] });
    this.capture.shown({
      id, uri: document.uri.toString(), line: position.line, character: position.character,
      prefix: prompt, text, languageId: document.languageId, time: Date.now(),
    });
    return [item];
  }
}

/** Registers the provider for every language; it checks the configured languages itself, so a settings change needs no re-registration. */
export function registerInlineCompletions(provider: StarInlineCompletionProvider, capture: CaptureService): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, provider),
    vscode.commands.registerCommand(ACCEPT_COMMAND, (id: unknown) => {
      if (typeof id === 'string') capture.accepted(id);
    }),
    // Escape dismisses without rejecting (completion/tracker.ts): the suggestion is dropped, then hidden as usual.
    vscode.commands.registerCommand(DISMISS_COMMAND, async () => {
      const editor = vscode.window.activeTextEditor;
      if (editor) capture.dismissed(editor.document.uri.toString(), editor.selection.active.line);
      await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    }),
  );
}
