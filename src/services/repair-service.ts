// Owns the repair rules of the editor side, for the commands, the panel and auto-repair: running
// repairs one at a time in the worker's repair runtime; the sets a patch is judged on (the
// repaired failures; the user's other open failures for generalisation, HELDOUT_LIMIT; accepted
// completions for specificity, REGRESSION_LIMIT, to which the worker adds its built-in samples);
// recording the patch, its report and the failures' new status; the specificity guard; and the
// patch actions (toggle, undo, redo, remove, save, import, export, evaluate). Every action that
// changes the history re-sends the enabled patches. No dialogs: the commands and the panel ask.

import { writeFileSync } from 'node:fs';
import * as vscode from 'vscode';
import type { Failure } from '../failures/failure';
import { checkPatchForModel, patchFromJson, patchSize, patchToJson, stringifyPatch, type Patch } from '../repair/patch';
import type { PatchEntry } from '../repair/patch-store';
import type { Settings, SpecificityGuard } from '../settings';
import { readPatchFile } from '../store/patch-file';
import { WorkerError } from '../worker/client';
import type { EvaluateParams, EvaluateResult, ExportResult, NeuronDetailsResult, RepairProgressEvent, RepairResult, Sample } from '../worker/protocol';
import type { ModelService, ModelStores } from './model-service';
import { pct } from './repair-outcome';

/** A repair cannot start; the message says why and what to do. */
export class RepairUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepairUnavailableError';
  }
}

/** The worker could not explain a neuron; the delta's norm is known all the same. */
export class NeuronDetailsError extends Error {
  constructor(message: string, readonly deltaNorm: number) {
    super(message);
    this.name = 'NeuronDetailsError';
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

/** At most this many of the user's other open failures measure generalisation (the newest). */
export const HELDOUT_LIMIT = 32;
/** At most this many accepted completions measure (and preserve) specificity (the newest). */
export const REGRESSION_LIMIT = 64;

/** What a patch action does to one patch in the history. */
export type PatchAction = 'toggle' | 'enable' | 'disable' | 'remove';

/**
 * The generalisation set: the newest open failures (pending or unfixed), without those the patch
 * is made from. The worker takes it as given (it does not filter it again).
 */
function heldoutFailures(stores: ModelStores, own: ReadonlySet<string>): Failure[] {
  return stores.failures.list({ status: ['pending', 'unfixed'] }).filter((f) => !own.has(f.id)).slice(-HELDOUT_LIMIT);
}

/** The specificity set: the newest accepted completions. */
function regressionSamples(stores: ModelStores): Sample[] {
  return stores.regression.list().slice(-REGRESSION_LIMIT).map((r) => ({ id: r.id, prompt: r.prompt, desired: r.completion }));
}

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

  constructor(private readonly model: ModelService, private readonly log: (line: string) => void, private readonly settings: () => Settings) {}

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
    const settings = this.settings();
    const mode = options.mode ?? (failures.length > 1 ? 'batch' : settings.repair.mode);
    const heldout = heldoutFailures(stores, new Set(failureIds)).map(sampleOf);
    const regression = regressionSamples(stores);
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
    stores.patches.addNew(patch, { enabled: !keptDisabled && !undoneByGuard });
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

  // ---- Patch actions: each changes the history, then the worker gets the enabled patches again.

  /** Applies one action to one patch. Returns the entry after it (undefined when removed). */
  async applyPatchAction(patchId: string, action: PatchAction): Promise<PatchEntry | undefined> {
    const stores = this.stores();
    let after: PatchEntry | undefined;
    switch (action) {
      case 'toggle': after = stores.patches.toggle(patchId); break;
      case 'enable': after = stores.patches.toggle(patchId, true); break;
      case 'disable': after = stores.patches.toggle(patchId, false); break;
      case 'remove':
        stores.patches.remove(patchId);
        stores.reports.retain(stores.patches.list().map((e) => e.patch.id));
        break;
    }
    await this.model.syncPatches();
    return after;
  }

  /** Disables the newest enabled patch (it stays in the history); undefined when none is enabled. */
  async undoLast(): Promise<PatchEntry | undefined> {
    const undone = this.stores().patches.undoLast();
    if (undone) await this.model.syncPatches();
    return undone;
  }

  /**
   * Undoes one patch if it is still enabled (it may have been undone another way meanwhile).
   * Returns whether it did.
   */
  async undo(patchId: string): Promise<boolean> {
    const stores = this.model.stores;
    if (!stores?.patches.get(patchId)?.enabled) return false;
    stores.patches.toggle(patchId, false);
    await this.model.syncPatches();
    return true;
  }

  /** Enables an undone patch again if it is still in the history. Returns whether it did. */
  async redo(patchId: string): Promise<boolean> {
    const stores = this.model.stores;
    if (!stores?.patches.get(patchId)) return false;
    stores.patches.toggle(patchId, true);
    await this.model.syncPatches();
    return true;
  }

  /** Writes one patch of the history as a JSON file. */
  savePatch(patchId: string, file: string): PatchEntry {
    const entry = this.stores().patches.get(patchId);
    if (!entry) throw new Error(`no patch ${patchId} in the history`);
    writeFileSync(file, stringifyPatch(entry.patch));
    return entry;
  }

  /** Reads a patch file for the loaded model; throws (with the reason) when it is malformed or made for another model. */
  readPatchFile(file: string): Patch {
    this.stores();
    const info = this.model.info!;
    const patch = readPatchFile(file);
    checkPatchForModel(patch, { fingerprint: info.fingerprint, hiddenSize: info.hidden, numLayers: info.layers, intermediateSize: info.neurons });
    return patch;
  }

  /** Adds a patch (read by readPatchFile) to the history, enabled. */
  async importPatch(patch: Patch): Promise<void> {
    this.stores().patches.add(patch);
    await this.model.syncPatches();
  }

  /**
   * Folds patches (default: the enabled ones that fit the loaded model) into a new model folder
   * `dir`. A cancel stops the wait; a write the worker has begun still completes (atomically).
   */
  exportModel(dir: string, patches: readonly Patch[] = this.model.applicablePatches(), options: { token?: vscode.CancellationToken } = {}): Promise<ExportResult> {
    this.stores();
    return this.model.request('export', { dir, patches: patches.map(patchToJson) }, options);
  }

  /**
   * What evaluate() measures: every patch of the history that still has one of its failures in
   * the store (the others are logged and left out), each with its generalisation set, and the
   * specificity set. Empty items: nothing to evaluate.
   */
  evaluationPlan(): EvaluateParams {
    const stores = this.stores();
    const items = stores.patches.list().flatMap((e) => {
      const failures = e.patch.failureIds.flatMap((id) => {
        const f = stores.failures.get(id);
        return f ? [sampleOf(f)] : [];
      });
      if (failures.length === 0) {
        this.log(`[evaluate] patch ${e.patch.id}: none of its failures is stored any more; skipped`);
        return [];
      }
      return [{ patch: patchToJson(e.patch), failures, heldout: heldoutFailures(stores, new Set(e.patch.failureIds)).map(sampleOf) }];
    });
    return { items, regression: items.length ? regressionSamples(stores) : [] };
  }

  /**
   * Measures the patches of a plan again — effectiveness on their failures, generalisation on the
   * other open failures, specificity on accepted completions and the built-in samples, each
   * against the other enabled patches — and records the new scores and reports.
   */
  async evaluate(plan: EvaluateParams, options: { token?: vscode.CancellationToken } = {}): Promise<EvaluateResult> {
    const stores = this.stores();
    const result = await this.model.request('evaluate', plan, options);
    for (const r of result.results) {
      stores.patches.setScores(r.patchId, r.scores);
      const old = stores.reports.get(r.patchId);
      stores.reports.put({ patchId: r.patchId, scoresBefore: r.scoresBefore, positions: old?.positions ?? [], evaluation: r.evaluation, fixed: old?.fixed ?? [], unfixed: old?.unfixed ?? [] });
      this.log(`[evaluate] patch ${r.patchId}: effectiveness ${pct(r.scores.effectiveness)}, generalisation ${pct(r.scores.generalisation)}, specificity ${pct(r.scores.specificity)}`);
    }
    return result;
  }

  /**
   * What one neuron of a patch does: its delta's norm and the tokens the delta pushes up and down
   * through the LM head. Undefined when the patch does not change that neuron.
   */
  async neuronDetails(patchId: string, layer: number, neuron: number): Promise<NeuronDetailsResult | undefined> {
    const entry = this.model.stores?.patches.get(patchId);
    const l = entry?.patch.layers.find((x) => x.layer === layer);
    const i = l ? l.rows.indexOf(neuron) : -1;
    if (!l || i < 0) return undefined;
    const d = l.deltas.length / l.rows.length;
    const delta = Array.from(l.deltas.subarray(i * d, (i + 1) * d));
    try {
      return await this.model.request('neuronDetails', { layer, neuron, delta });
    } catch (e) {
      throw new NeuronDetailsError(e instanceof Error ? e.message : String(e), Math.sqrt(delta.reduce((a, x) => a + x * x, 0)));
    }
  }

  /** Auto-repair of a freshly captured failure (when the setting is on): queued, silent unless it fails badly. */
  enqueueAuto(failureId: string): void {
    this.autoQueue = this.autoQueue.then(async () => {
      if (!this.settings().repair.auto) return;
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
