// The repair panel's connection to the extension: a fresh snapshot whenever the model, the stores
// or the running repair change (coalesced), live progress while a repair runs, and the panel's
// requests served by the same services as the commands (RepairService; the shared user flows in
// repair-ui.ts).

import * as vscode from 'vscode';
import type { WebviewToExtension } from '../panel/messages';
import { buildPanelState, progressForPanel } from './panel-state';
import { errorText, repairWithProgress, savePatchAs } from './repair-ui';
import { NeuronDetailsError } from './repair-service';
import type { Services } from './services';

export class PanelBridge implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private scheduled: NodeJS.Timeout | null = null;

  constructor(private readonly s: Services) {
    const refresh = () => this.schedule();
    this.disposables.push(
      s.model.onDidChange(refresh),
      // At once, so that progress that follows finds the running repair in the panel's snapshot.
      s.repairs.onDidChange(() => this.postNow()),
      s.repairs.onProgress((p) => {
        if (s.repairs.running) s.panel.postProgress(progressForPanel(p));
      }),
      s.panel.onMessage((m) => void this.onMessage(m)),
    );
    this.postNow();
  }

  /** Many store writes in a row (a batch repair updates each failure) become one snapshot. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = setTimeout(() => {
      this.scheduled = null;
      this.postNow();
    }, 50);
  }

  postNow(): void {
    const stores = this.s.model.stores;
    try {
      this.s.panel.postState(buildPanelState({
        info: this.s.model.info,
        failures: stores?.failures.list() ?? [],
        patches: stores?.patches.list() ?? [],
        report: (id) => stores?.reports.get(id),
        running: this.s.repairs.running,
      }));
    } catch (e) {
      this.s.log(`[panel] state not sent: ${errorText(e)}`);
    }
  }

  private async onMessage(m: WebviewToExtension): Promise<void> {
    const s = this.s;
    const stores = s.model.stores;
    try {
      switch (m.type) {
        case 'ready':
          return;
        case 'repair':
        case 'repairBatch': {
          if (!stores) throw new Error('the model is not loaded yet');
          const failures = m.failureIds.map((id) => stores.failures.get(id)).filter((f) => f !== undefined);
          if (m.type === 'repairBatch') {
            await repairWithProgress(s, failures, `STAR Repair: repairing ${failures.length} failure(s) together`, 'batch');
          } else {
            // One patch per failure, one after the other.
            for (const f of failures) {
              if (!(await repairWithProgress(s, [f], 'STAR Repair: repairing the model'))) break;
            }
          }
          return;
        }
        case 'discard':
          stores?.failures.update(m.failureId, { status: 'discarded' });
          return;
        case 'openFailure': {
          const f = stores?.failures.get(m.failureId);
          if (!f?.uri) {
            void vscode.window.showInformationMessage('STAR Repair: this failure was not captured in a file.');
            return;
          }
          const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(f.uri));
          const line = Math.min(f.line ?? 0, Math.max(0, doc.lineCount - 1));
          const pos = new vscode.Position(line, doc.lineAt(line).text.length);
          await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos) });
          return;
        }
        case 'cancelRepair':
          s.repairs.cancel();
          return;
        case 'togglePatch':
          await s.repairs.applyPatchAction(m.patchId, m.enabled ? 'enable' : 'disable');
          return;
        case 'undoPatch':
          await s.repairs.applyPatchAction(m.patchId, 'disable');
          return;
        case 'exportPatch':
          await savePatchAs(s, m.patchId);
          return;
        case 'selectNeuron': {
          const base = { patchId: m.patchId, layer: m.layer, neuron: m.neuron };
          try {
            const r = await s.repairs.neuronDetails(m.patchId, m.layer, m.neuron);
            s.panel.postNeuronDetails(r ? { ...base, ...r } : { ...base, deltaNorm: 0, up: [], down: [], error: 'this patch does not change that neuron' });
          } catch (e) {
            if (!(e instanceof NeuronDetailsError)) throw e;
            s.panel.postNeuronDetails({ ...base, deltaNorm: e.deltaNorm, up: [], down: [], error: e.message });
          }
          return;
        }
      }
    } catch (e) {
      void vscode.window.showErrorMessage(`STAR Repair: ${errorText(e)}`);
    }
  }

  dispose(): void {
    if (this.scheduled) clearTimeout(this.scheduled);
    for (const d of this.disposables) d.dispose();
  }
}
