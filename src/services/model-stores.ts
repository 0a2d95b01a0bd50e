// The per-model store holder: the loaded model's failures, patches, reports and accepted
// completions in global storage, opened per model fingerprint (switching models keeps the other
// model's stores on disk), and which enabled patches fit the loaded model. It knows nothing of
// the worker: ModelService opens the stores after a load and sends the patches.

import * as vscode from 'vscode';
import { FailureStore } from '../failures/store';
import { checkPatchForModel, type Patch } from '../repair/patch';
import { PatchStore } from '../repair/patch-store';
import type { ModelInfo } from '../worker/protocol';
import { PatchReportStore, RegressionStore } from './side-stores';

export interface ModelStores {
  fingerprint: string;
  failures: FailureStore;
  patches: PatchStore;
  reports: PatchReportStore;
  regression: RegressionStore;
}

export class ModelStoreHolder implements vscode.Disposable {
  private openStores: ModelStores | null = null;
  private storeUnsubscribers: (() => void)[] = [];
  private readonly changed = new vscode.EventEmitter<void>();
  /** The failures or the patches of the open stores changed, or other stores were opened. */
  readonly onDidChange = this.changed.event;

  /** `dir`: the extension's global storage folder. */
  constructor(private readonly dir: string, private readonly log: (line: string) => void) {}

  get stores(): ModelStores | null {
    return this.openStores;
  }

  /** Opens the stores of the model `info` (nothing to do when they are open already). */
  openFor(info: ModelInfo): void {
    if (this.openStores?.fingerprint === info.fingerprint) return;
    const dir = this.dir;
    for (const off of this.storeUnsubscribers) off();
    const stores: ModelStores = {
      fingerprint: info.fingerprint,
      failures: FailureStore.open(dir, info.fingerprint),
      patches: PatchStore.open(dir, info.fingerprint, { hiddenSize: info.hidden }),
      reports: PatchReportStore.open(dir, info.fingerprint),
      regression: RegressionStore.open(dir, info.fingerprint),
    };
    const problems = [...stores.failures.problems, ...stores.patches.problems, ...stores.reports.problems, ...stores.regression.problems];
    for (const p of problems) this.log(`[stores] ${p}`);
    if (problems.length) {
      void vscode.window.showWarningMessage(`STAR Repair recovered its saved data with ${problems.length} problem(s); damaged files were kept aside. See the STAR Repair output for details.`);
    }
    this.storeUnsubscribers = [
      stores.failures.onDidChange(() => this.changed.fire()),
      stores.patches.onDidChange(() => this.changed.fire()),
    ];
    const previous = this.openStores;
    this.openStores = stores;
    if (previous) {
      this.log(`[stores] switched from model ${previous.fingerprint.slice(0, 8)}… to ${info.fingerprint.slice(0, 8)}…: the other model's failures and patches are kept and come back when it is loaded again`);
    }
  }

  /** The enabled patches that fit the model `info` (the rest is skipped with the reason logged). */
  applicablePatches(info: ModelInfo | null): Patch[] {
    const stores = this.openStores;
    if (!info || !stores) return [];
    const target = { fingerprint: info.fingerprint, hiddenSize: info.hidden, numLayers: info.layers, intermediateSize: info.neurons };
    return stores.patches.active().filter((p) => {
      try {
        checkPatchForModel(p, target);
        return true;
      } catch (e) {
        this.log(`[patches] patch ${p.id} not applied: ${e instanceof Error ? e.message : String(e)}`);
        return false;
      }
    });
  }

  dispose(): void {
    for (const off of this.storeUnsubscribers) off();
    this.changed.dispose();
  }
}
