// Capture of rejected completions: adapts VS Code's editor events (document changes, cursor
// moves, closed documents), the completion provider's "shown" items and the accept command into
// the pure RejectionTracker, and stores what it produces — rejected suggestions as pending
// failures, accepted ones as regression samples — in the loaded model's stores. A failure keeps
// the prompt the model saw: the prefix, the suffix and the replay (FIM format, indentation) the
// provider reported with the shown item (issue 15, item 3), from which runtime/prompt.ts rebuilds
// the same token layout for repair and every "is it fixed?" check.

import * as vscode from 'vscode';
import { RejectionTracker, type CapturedFailure, type RegressionSample, type ShownEvent } from '../completion/tracker';
import { MAX_AFTER_CHARS, type Failure } from '../failures/failure';
import type { CompletionReplay } from '../runtime/replay';
import type { Settings } from '../settings';
import type { ModelService } from './model-service';
import type { RepairService } from './repair-service';

/**
 * What follows a finished line in its document: the line break and the next line (which tells
 * how the model tokenises the completion's end there), or a bare line break at the end of the file.
 */
export function textAfterLine(uri: string, line: number): string {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
  if (!doc || line + 1 >= doc.lineCount) return '\n';
  return ('\n' + doc.lineAt(line + 1).text).slice(0, MAX_AFTER_CHARS);
}

/** What the model saw besides the prefix, per shown item: kept until the item is resolved. */
interface ShownPrompt {
  suffix?: string;
  replay?: CompletionReplay;
}

const SHOWN_PROMPTS = 256;

export class CaptureService implements vscode.Disposable {
  readonly tracker: RejectionTracker;
  private readonly prompts = new Map<string, ShownPrompt>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly captured = new vscode.EventEmitter<Failure>();
  /** A rejected completion became a pending failure. */
  readonly onDidCapture = this.captured.event;

  constructor(private readonly model: ModelService, private readonly repairs: RepairService, private readonly log: (line: string) => void, private readonly settings: () => Settings) {
    this.tracker = new RejectionTracker({
      lineText: (uri, line) => {
        const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
        return doc && line < doc.lineCount ? doc.lineAt(line).text : undefined;
      },
      regressionLimit: 200,
    });
    this.tracker.onFailure((f) => this.storeFailure(f));
    this.tracker.onRegressionSample((s) => this.storeSample(s));
    this.disposables.push(
      this.captured,
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length === 0 || this.tracker.pendingIds().length === 0) return;
        const uri = e.document.uri.toString();
        const time = Date.now();
        // VS Code lists the changes of one event from the end of the document backwards, so each
        // range is valid against the text left by the previous one (the tracker's contract).
        for (const c of e.contentChanges) {
          this.tracker.handle({
            type: 'edit', uri, text: c.text, time,
            range: { startLine: c.range.start.line, startChar: c.range.start.character, endLine: c.range.end.line, endChar: c.range.end.character },
          });
        }
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (this.tracker.pendingIds().length === 0) return;
        const active = e.selections[0]?.active;
        if (!active) return;
        this.tracker.handle({ type: 'cursor', uri: e.textEditor.document.uri.toString(), line: active.line, character: active.character, time: Date.now() });
      }),
      vscode.workspace.onDidCloseTextDocument((doc) => {
        if (this.tracker.pendingIds().length) this.tracker.handle({ type: 'closed', uri: doc.uri.toString(), time: Date.now() });
      }),
    );
  }

  /** The completion provider returned an item that VS Code shows as ghost text. */
  shown(event: Omit<ShownEvent, 'type'>, prompt: ShownPrompt = {}): void {
    this.prompts.set(event.id, prompt);
    while (this.prompts.size > SHOWN_PROMPTS) this.prompts.delete(this.prompts.keys().next().value as string);
    this.tracker.handle({ type: 'shown', ...event });
  }

  /** The user dismissed the ghost text on this line (Escape) before typing: not a rejection. */
  dismissed(uri: string, line: number): void {
    this.tracker.handle({ type: 'dismissed', uri, line, time: Date.now() });
  }

  /** The item's command ran: the user accepted it. */
  accepted(id: string): void {
    this.tracker.handle({ type: 'accepted', id, time: Date.now() });
  }

  private storeFailure(f: CapturedFailure): void {
    const stores = this.model.stores;
    if (!stores || !this.settings().capture.enabled) return;
    try {
      const { completions } = this.settings();
      const seen = this.prompts.get(f.suggestionId) ?? {};
      const failure = stores.failures.add({
        source: 'rejected', prompt: f.prompt, rejected: f.rejected, desired: f.desired, after: textAfterLine(f.uri, f.line),
        ...(seen.suffix !== undefined ? { suffix: seen.suffix } : {}),
        replay: seen.replay ?? { heal: true, stop: completions.stop, maxTokens: completions.maxTokens },
        languageId: f.languageId, uri: f.uri, line: f.line, createdAt: new Date(f.finishedAt).toISOString(),
      });
      this.log(`[capture] rejected completion kept as failure ${failure.id}: ${JSON.stringify(f.rejected.split('\n', 1)[0])} → ${JSON.stringify(f.desired)}`);
      this.captured.fire(failure);
      if (this.settings().repair.auto) this.repairs.enqueueAuto(failure.id);
    } catch (e) {
      this.log(`[capture] could not keep a rejected completion: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private storeSample(s: RegressionSample): void {
    const stores = this.model.stores;
    if (!stores) return;
    try {
      stores.regression.add({ id: s.suggestionId, languageId: s.languageId, prompt: s.prompt, completion: s.completion, time: new Date(s.time).toISOString() });
    } catch (e) {
      this.log(`[capture] could not keep an accepted completion: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The newest open failure captured on `line` of `uri`, if any. */
  failureAt(uri: string, line: number): Failure | undefined {
    const list = this.model.stores?.failures.list({ uri, status: ['pending', 'unfixed'] }) ?? [];
    return list.filter((f) => f.line === line).at(-1);
  }

  flush(): void {
    this.tracker.flush();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
