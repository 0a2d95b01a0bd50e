// Inline completions from the local model: waits for a pause in typing (debounce), sends the text
// before and after the cursor (cut to character budgets; the worker keeps the nearest part within
// the token budgets and builds the FIM prompt when the model has FIM tokens — runtime/prompt.ts,
// whose PSM layout lets keystrokes on one line reuse the cached prompt) with the latency caps
// and the editor's indentation, and drops the request as soon as the user types on (VS Code cancels
// the token, which aborts the decoding in the worker). An explicit request (Alt+\) skips the
// debounce and may return alternatives. Every item carries a command that reports its acceptance,
// and is reported as shown to the capture with the prompt the model saw (prefix, suffix, replay).

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
/** Alternatives asked for on an explicit request. */
const INVOKE_ALTERNATIVES = 3;

/** The text after `offset`, at most `budget` characters, ending at a line end when it is cut. */
export function suffixAfter(text: string, offset: number, budget: number): string {
  const end = Math.min(text.length, offset + budget);
  if (end === text.length) return text.slice(offset);
  const nl = text.lastIndexOf('\n', end);
  return text.slice(offset, nl > offset ? nl : end);
}

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
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const settings = this.settings();
    if (!completionsEnabledFor(settings, document.languageId) || !this.model.ready) return undefined;
    const c = settings.completions;
    const fimOn = c.fim !== 'off' && (c.fim !== 'auto' || Boolean(this.model.info?.fim));
    // Without FIM the model cannot see what follows: completing inside a word would only guess.
    if (!fimOn && midWord(document.lineAt(position.line).text.slice(position.character))) return undefined;
    const invoked = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
    if (!invoked && !(await sleep(c.debounceMs, token))) return undefined;
    if (token.isCancellationRequested) return undefined;
    const info = this.model.info;
    if (!info) return undefined;
    const budget = Math.min(MAX_PROMPT_CHARS, info.context * CHARS_PER_TOKEN);
    const text = document.getText();
    const offset = document.offsetAt(position);
    const prompt = promptBefore(text, offset, budget);
    const suffix = suffixAfter(text, offset, Math.min(MAX_PROMPT_CHARS, c.suffixTokens * CHARS_PER_TOKEN + 200));
    if (prompt.trim().length === 0) return undefined;
    const editor = vscode.window.visibleTextEditors.find((e) => e.document === document);
    const indent = editor && typeof editor.options.tabSize === 'number' && typeof editor.options.insertSpaces === 'boolean'
      ? { insertSpaces: editor.options.insertSpaces, tabSize: Math.min(16, Math.max(1, editor.options.tabSize)) }
      : undefined;
    let r: Awaited<ReturnType<ModelService['complete']>>;
    try {
      r = await this.model.complete({
        prompt,
        suffix,
        maxTokens: c.maxTokens,
        stop: [],
        stopRule: c.stop,
        temperature: 0,
        fim: c.fim,
        fimOrder: c.fimOrder,
        prefixTokens: c.prefixTokens,
        suffixTokens: c.suffixTokens,
        promptMs: c.promptTimeoutMs,
        generationMs: c.generationTimeoutMs,
        ...(indent ? { indent } : {}),
        ...(invoked ? { alternatives: INVOKE_ALTERNATIVES } : {}),
      }, token);
    } catch (e) {
      if (!(e instanceof WorkerError && e.code === 'cancelled')) this.log(`[completion] ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    const texts = (r.alternatives ?? [r.text]).filter((t) => t.trim().length > 0);
    if (token.isCancellationRequested || texts.length === 0) return undefined;
    // The prompt the model saw, as a failure keeps it.
    const seenPrefix = prompt.slice(r.prefixStart ?? 0);
    const seenSuffix = r.suffixKept !== undefined ? suffix.slice(0, r.suffixKept) : undefined;
    const replay = { heal: true, stop: c.stop, maxTokens: c.maxTokens, fim: r.fim ?? null, ...(indent ? { indent } : {}) };
    return texts.map((t) => {
      const id = randomUUID();
      const item = new vscode.InlineCompletionItem(t, new vscode.Range(position, position), { command: ACCEPT_COMMAND, title: 'Accept completion', arguments: [id] });
      this.capture.shown({
        id, uri: document.uri.toString(), line: position.line, character: position.character,
        prefix: seenPrefix, text: t, languageId: document.languageId, time: Date.now(),
      }, { ...(seenSuffix !== undefined ? { suffix: seenSuffix } : {}), replay });
      return item;
    });
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
