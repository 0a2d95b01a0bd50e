// The extension side of the panel's conversation, without `vscode`: it keeps the last
// snapshot, validates what goes out (a contract breach throws) and what comes in (dropped
// and logged), and re-sends the snapshot whenever a webview (re)loads and says `ready`.
// provider.ts wires it to a real WebviewView; the unit tests drive it directly.

import {
  applyRepairProgress,
  PanelMessageError,
  validateNeuronDetails,
  validatePanelState,
  validateRepairProgress,
  validateWebviewMessage,
  type ExtensionToWebview,
  type NeuronDetails,
  type PanelState,
  type RepairProgressView,
  type WebviewToExtension,
} from './messages';

export type PostToWebview = (message: ExtensionToWebview) => void;
export type PanelListener = (message: WebviewToExtension) => void;

export class PanelHub {
  private snapshot: PanelState | null = null;
  private post: PostToWebview | null = null;
  /** A webview's script drops what arrives before it listens, so wait for its `ready`. */
  private ready = false;
  private readonly listeners = new Set<PanelListener>();

  constructor(private readonly log: (line: string) => void) {}

  /** The last snapshot, with any progress folded in. */
  get state(): PanelState | null {
    return this.snapshot;
  }

  get connected(): boolean {
    return this.post !== null && this.ready;
  }

  /** A webview exists and can be posted to once it says `ready`. */
  attach(post: PostToWebview): void {
    this.post = post;
    this.ready = false;
  }

  /** The webview's document is gone (hidden without retained context, or disposed). */
  suspend(): void {
    this.ready = false;
  }

  detach(): void {
    this.post = null;
    this.ready = false;
  }

  /** Raw input from `webview.onDidReceiveMessage`. */
  receive(raw: unknown): void {
    const v = validateWebviewMessage(raw);
    if (!v.ok) {
      this.log(`[panel] dropped a malformed message from the webview: ${v.error}`);
      return;
    }
    if (v.value.type === 'ready') {
      this.ready = true;
      if (this.snapshot) this.send({ type: 'state', state: this.snapshot });
    }
    for (const l of [...this.listeners]) {
      try {
        l(v.value);
      } catch (e) {
        this.log(`[panel] a listener failed on ${v.value.type}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  onMessage(listener: PanelListener): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Replaces the snapshot. Throws PanelMessageError if `state` breaks the contract. */
  postState(state: PanelState): void {
    const v = validatePanelState(state);
    if (!v.ok) throw new PanelMessageError(`postState: ${v.error}`);
    this.snapshot = v.value;
    this.send({ type: 'state', state: v.value });
  }

  /**
   * Sends progress of the running repair and folds it into the snapshot, so a webview that
   * reloads meanwhile shows the latest numbers. Progress with no running repair in the
   * snapshot is dropped (it raced the final snapshot); returns whether it was sent.
   */
  postProgress(progress: RepairProgressView): boolean {
    const v = validateRepairProgress(progress);
    if (!v.ok) throw new PanelMessageError(`postProgress: ${v.error}`);
    const next = this.snapshot ? applyRepairProgress(this.snapshot, v.value) : null;
    if (!next) {
      this.log('[panel] dropped repair progress: no repair is running in the last state (send a state with repair.running first)');
      return false;
    }
    this.snapshot = next;
    this.send({ type: 'repairProgress', progress: v.value });
    return true;
  }

  /** The answer to a `selectNeuron` request. */
  postNeuronDetails(details: NeuronDetails): void {
    const v = validateNeuronDetails(details);
    if (!v.ok) throw new PanelMessageError(`postNeuronDetails: ${v.error}`);
    this.send({ type: 'neuronDetails', details: v.value });
  }

  private send(message: ExtensionToWebview): void {
    if (this.post && this.ready) this.post(message);
  }
}
