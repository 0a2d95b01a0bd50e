// The repair panel as a VS Code webview view: builds the page (strict CSP, nonce, local
// resources only), connects it to a PanelHub, and exposes what the extension needs —
// postState / postProgress / postNeuronDetails and an onMessage event. The only file of the
// panel that touches the `vscode` API.

import * as vscode from 'vscode';
import { PanelHub } from './hub';
import { makeNonce, renderPanelHtml } from './html';
import type { NeuronDetails, PanelState, RepairProgressView, WebviewToExtension } from './messages';

export class RepairPanelProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  /** The id in package.json's `contributes.views` (a view of `"type": "webview"`). */
  static readonly viewType = 'starRepair.panel';

  private readonly hub: PanelHub;
  private readonly emitter = new vscode.EventEmitter<WebviewToExtension>();
  private view: vscode.WebviewView | undefined;
  private viewDisposables: vscode.Disposable[] = [];

  /** Every valid message the webview posts (malformed ones are dropped and logged). */
  readonly onMessage: vscode.Event<WebviewToExtension> = this.emitter.event;

  constructor(
    private readonly extensionUri: vscode.Uri,
    log: (line: string) => void,
  ) {
    this.hub = new PanelHub(log);
    this.hub.onMessage((m) => this.emitter.fire(m));
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.releaseView();
    this.view = view;
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    view.webview.html = renderPanelHtml({
      cspSource: view.webview.cspSource,
      nonce: makeNonce(),
      scriptUri: view.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
      styleUri: view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'panel.css')).toString(),
    });
    // Without retainContextWhenHidden the document is torn down when hidden and reloaded when
    // shown; it restores itself from getState() and says `ready`, and the hub then re-sends.
    this.hub.attach((m) => void view.webview.postMessage(m));
    this.viewDisposables = [
      view.webview.onDidReceiveMessage((raw: unknown) => this.hub.receive(raw)),
      view.onDidChangeVisibility(() => {
        if (!view.visible) this.hub.suspend();
      }),
      view.onDidDispose(() => {
        if (this.view === view) this.releaseView();
      }),
    ];
  }

  /** The last snapshot sent (with progress folded in), or null before the first. */
  get state(): PanelState | null {
    return this.hub.state;
  }

  /** Sends a full snapshot. Throws PanelMessageError if it breaks the contract in messages.ts. */
  postState(state: PanelState): void {
    this.hub.postState(state);
  }

  /** Sends progress of the running repair; false if no running repair is in the last snapshot. */
  postProgress(progress: RepairProgressView): boolean {
    return this.hub.postProgress(progress);
  }

  /** Answers a `selectNeuron` message. */
  postNeuronDetails(details: NeuronDetails): void {
    this.hub.postNeuronDetails(details);
  }

  /** Brings the view forward, e.g. when a repair starts from a command. */
  reveal(preserveFocus = true): void {
    this.view?.show(preserveFocus);
  }

  dispose(): void {
    this.releaseView();
    this.emitter.dispose();
  }

  private releaseView(): void {
    for (const d of this.viewDisposables) d.dispose();
    this.viewDisposables = [];
    this.view = undefined;
    this.hub.detach();
  }
}

/** Creates the provider, registers it, and ties both to the extension's lifetime. */
export function registerRepairPanel(context: vscode.ExtensionContext, log: (line: string) => void): RepairPanelProvider {
  const provider = new RepairPanelProvider(context.extensionUri, log);
  context.subscriptions.push(vscode.window.registerWebviewViewProvider(RepairPanelProvider.viewType, provider), provider);
  return provider;
}
