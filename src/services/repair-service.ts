// Running repairs for the commands, the panel and auto-repair: one at a time, in the worker's
// repair runtime. It picks the sets the patch is judged on (the repaired failures; the user's
// other open failures for generalisation; accepted completions for specificity, to which the
// worker adds its built-in samples), records the patch, its report and the failures' new status,
// re-sends the enabled patches, and applies the specificity guard.

import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import { patchFromJson, patchSize, type Patch } from '../repair/patch';
import type { Settings, SpecificityGuard } from '../settings';
import { WorkerError } from '../worker/client';
import type { RepairProgressEvent, RepairResult, Sample } from '../worker/protocol';
import { readSettings } from './config';
import type { ModelService, ModelStores } from './model-service';

/** A repair cannot start; the message says why and what to do. */
export class RepairUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepairUnavailableError';
  }
}

export interface RunningRepair {
  failureIds: string[];
  method: string;
  progress: RepairProgressEvent | null;
  message?: string;
}

export interface RepairSummary {
  patch: Patch;
  result: RepairResult;
  fixed: Failure[];
  unfixed: Failure[];
  /** The guard disabled the patch (specificity below the threshold). */
  undoneByGuard: boolean;
  /** The patch's specificity is below the threshold (undone, or kept with a warning). */
  belowThreshold: boolean;
  threshold: number;
  /** Failures the patch fixed in the editor, whether it stays enabled or not. */
  wouldFix: number;
  /** The patch fixed nothing: it is kept in the history, disabled. */
  keptDisabled: boolean;
}

export interface RepairRunOptions {
  token?: vscode.CancellationToken;
  onProgress?: (p: RepairProgressEvent) => void;
  /** Overrides of the settings (e.g. batch mode for "repair all"). */
  mode?: 'iter' | 'batch';
  /** Override of the specificity guard ("repair all" never keeps a patch below the threshold). */
  guard?: SpecificityGuard;
}

const HELDOUT_LIMIT = 32;
const REGRESSION_LIMIT = 64;

/** A failure as the worker replays it: with the text after it and the completion settings it was captured under. */
function sampleOf(f: Failure): Sample {
  return { id: f.id, prompt: f.prompt, desired: f.desired, after: f.after, ...(f.suffix !== undefined ? { suffix: f.suffix } : {}), replay: f.replay };
}

export class RepairService implements vscode.Disposable {
  private current: RunningRepair | null = null;
  private controller: AbortController | null = null;
  private autoQueue: Promise<void> = Promise.resolve();
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly progressed = new vscode.EventEmitter<RepairProgressEvent>();
  readonly onDidChange = this.changed.event;
  readonly onProgress = this.progressed.event;

  constructor(private readonly model: ModelService, private readonly log: (line: string) => void) {}

  get running(): RunningRepair | null {
    return this.current ? { ...this.current } : null;
  }

  cancel(): boolean {
    if (!this.controller) return false;
    this.controller.abort();
    return true;
  }

  private stores(): ModelStores {
    const s = this.model.stores;
    if (!s || !this.model.info) throw new RepairUnavailableError('the model is not loaded yet: wait until the status bar says it is ready');
    return s;
  }

  /** Repairs the given failures together (one patch). */
  async repair(failureIds: readonly string[], options: RepairRunOptions = {}): Promise<RepairSummary> {
    if (this.current) throw new RepairUnavailableError(`a repair is already running (${this.current.failureIds.length} failure(s)): wait for it or cancel it`);
    const stores = this.stores();
    const failures = failureIds.map((id) => {
      const f = stores.failures.get(id);
      if (!f) throw new RepairUnavailableError(`failure ${id} is no longer in the store: refresh the panel`);
      return f;
    });
    if (failures.length === 0) throw new RepairUnavailableError('no failure to repair');
    const { settings } = readSettings();
    const mode = options.mode ?? (failures.length > 1 ? 'batch' : settings.repair.mode);
    const chosen = new Set(failureIds);
    const heldout = stores.failures.list({ status: ['pending', 'unfixed'] }).filter((f) => !chosen.has(f.id)).slice(-HELDOUT_LIMIT).map(sampleOf);
    const regression = stores.regression.list().slice(-REGRESSION_LIMIT).map((s) => ({ id: s.id, prompt: s.prompt, desired: s.completion }));
    this.controller = new AbortController();
    const controller = this.controller;
    const tokenSub = options.token?.onCancellationRequested(() => controller.abort());
    this.current = { failureIds: [...failureIds], method: settings.repair.method, progress: null };
    this.model.setRepairing(true);
    this.changed.fire();
    try {
      const result = await this.model.request('repair', {
        method: settings.repair.method,
        mode,
        select: settings.repair.select,
        epochs: settings.repair.epochs,
        eta: settings.repair.eta,
        preserveRows: settings.repair.preserveRows === null ? null : Math.round(settings.repair.preserveRows),
        failures: failures.map(sampleOf),
        heldout,
        regression,
      }, {
        signal: controller.signal,
        onProgress: (p) => {
          if (this.current) this.current.progress = p;
          this.progressed.fire(p);
          options.onProgress?.(p);
        },
      });
      return await this.record(stores, result, { ...settings.specificity, guard: options.guard ?? settings.specificity.guard });
    } catch (e) {
      if (e instanceof WorkerError && e.code === 'already-correct') {
        for (const f of failures) stores.failures.update(f.id, { status: 'repaired' });
      }
      throw e;
    } finally {
      tokenSub?.dispose();
      this.current = null;
      this.controller = null;
      this.model.setRepairing(false);
      this.changed.fire();
    }
  }

  /**
   * Stores the patch and its report, and the failures' new status. The specificity guard decides
   * here, before anything is re-sent to the worker: in 'undo' a patch below the threshold is kept in
   * the history disabled, and the failures it fixed are not marked repaired (the editor does not
   * show their fix). The caller tells the user (commands/common.ts reportRepair).
   */
  private async record(stores: ModelStores, result: RepairResult, guard: Settings['specificity']): Promise<RepairSummary> {
    const patch = patchFromJson(result.patch, this.model.info?.hidden);
    const spec = patch.scores.specificity;
    const keptDisabled = result.fixed.length === 0;
    const belowThreshold = guard.guard !== 'off' && spec !== null && spec < guard.threshold;
    const undoneByGuard = !keptDisabled && belowThreshold && guard.guard === 'undo';
    stores.patches.add(patch, { enabled: !keptDisabled && !undoneByGuard });
    stores.reports.put({
      patchId: patch.id,
      scoresBefore: result.scoresBefore,
      positions: result.positions,
      evaluation: result.evaluation,
      fixed: result.fixed,
      unfixed: result.unfixed,
    });
    const fixed: Failure[] = [];
    const unfixed: Failure[] = [];
    const active = !keptDisabled && !undoneByGuard;
    for (const id of result.fixed) if (stores.failures.get(id)) (active ? fixed : unfixed).push(stores.failures.update(id, { status: active ? 'repaired' : 'unfixed' }));
    for (const id of result.unfixed) if (stores.failures.get(id)) unfixed.push(stores.failures.update(id, { status: 'unfixed' }));
    for (const s of result.skipped) {
      if (!stores.failures.get(s.id)) continue;
      // Already right (e.g. thanks to an earlier patch) counts as repaired; the rest could not be tried.
      stores.failures.update(s.id, { status: s.code === 'already-correct' ? 'repaired' : 'unfixed' });
      this.log(`[repair] failure ${s.id} skipped: ${s.message}`);
    }
    await this.model.syncPatches();
    const size = patchSize(patch);
    this.log(`[repair] patch ${patch.id}: ${result.fixed.length} fixed, ${result.unfixed.length} not fixed, ${size.neurons} neurons, ${patch.stats.ms} ms, ` +
      `scores ${JSON.stringify(patch.scores)}${undoneByGuard ? ' — undone by the specificity guard' : ''}`);
    return { patch, result, fixed, unfixed, undoneByGuard, keptDisabled, belowThreshold, threshold: guard.threshold, wouldFix: result.fixed.length };
  }

  /** Auto-repair of a freshly captured failure (when the setting is on): queued, silent unless it fails badly. */
  enqueueAuto(failureId: string): void {
    this.autoQueue = this.autoQueue.then(async () => {
      if (!readSettings().settings.repair.auto) return;
      while (this.current) await new Promise((r) => setTimeout(r, 500));
      const f = this.model.stores?.failures.get(failureId);
      if (!f || f.status !== 'pending') return;
      try {
        const s = await this.repair([failureId]);
        vscode.window.setStatusBarMessage(`STAR Repair: ${s.fixed.length ? 'fixed' : 'could not fix'} "${f.desired.slice(0, 40)}" (${s.patch.stats.neurons} neurons)`, 5000);
      } catch (e) {
        this.log(`[repair] auto-repair of ${failureId} failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  }

  dispose(): void {
    this.cancel();
    this.changed.dispose();
    this.progressed.dispose();
  }
}
