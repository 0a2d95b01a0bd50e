// The extension's model: the worker process (through WorkerClient), which model is loaded, and
// the per-model stores in global storage. It owns what must survive a worker crash — failures,
// patches, reports, accepted completions — and after every worker (re)start it sends `load` and
// the enabled patches again. It also says what the status bar shows (loading, ready, completing,
// repairing, error). A GPU provider that crashes the worker is remembered and the worker restarts
// on the CPU (ProviderGuard, src/worker/provider-guard.ts); the user is told, with a way back.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { FailureStore } from '../failures/store';
import { checkPatchForModel, patchToJson, type Patch } from '../repair/patch';
import { PatchStore } from '../repair/patch-store';
import type { Settings } from '../settings';
import { WorkerClient, WorkerError, type Caller, type RequestOptions, type WorkerExit, type WorkerState } from '../worker/client';
import type { CompleteParams, CompleteResult, Method, ModelInfo, ParamsOf, ResultOf } from '../worker/protocol';
import { ProviderGuard, type ProviderCrashNotice } from '../worker/provider-guard';
import { PROVIDER_MEMORY_FILE } from '../worker/provider-memory';
import { readSettings } from './config';
import { PatchReportStore, RegressionStore } from './side-stores';

export type ModelPhase = 'idle' | 'loading' | 'ready' | 'error';
/** Forgets that a provider crashed the worker for the loaded model and restarts it (argument: the provider). */
export const TRY_PROVIDER_AGAIN = 'starRepair.tryProviderAgain';
export type Activity = 'loading' | 'ready' | 'completing' | 'repairing' | 'error';

export interface ModelStores {
  fingerprint: string;
  failures: FailureStore;
  patches: PatchStore;
  reports: PatchReportStore;
  regression: RegressionStore;
}

export class ModelService implements vscode.Disposable {
  readonly client: WorkerClient;
  /** Remembers GPU providers that crashed the worker; the worker then runs on the CPU. */
  readonly providers: ProviderGuard;
  private phase: ModelPhase = 'idle';
  private error: string | null = null;
  private modelInfo: ModelInfo | null = null;
  private openStores: ModelStores | null = null;
  private completing = 0;
  private repairing = false;
  private loadSeq = 0;
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly activityChanged = new vscode.EventEmitter<void>();
  private readonly loaded = new vscode.EventEmitter<ModelInfo>();
  private readonly disposables: vscode.Disposable[] = [];
  private lastNotifiedError: string | null = null;
  /** start() calls in progress: they report a worker that cannot start themselves. */
  private starting = 0;
  private storeUnsubscribers: (() => void)[] = [];

  /** The model, its phase, the worker's state or the stores changed. */
  readonly onDidChange = this.changed.event;
  /** Only the activity changed (a completion started or ended, a repair started or ended): cheap, frequent. */
  readonly onDidChangeActivity = this.activityChanged.event;
  /** A model finished loading (also after a worker restart). */
  readonly onDidLoad = this.loaded.event;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: (line: string) => void,
  ) {
    this.client = new WorkerClient({
      workerPath: context.asAbsolutePath('dist/worker.js'),
      log,
      onStart: (call) => this.loadWith(call),
    });
    this.client.onStateChange(() => this.changed.fire());
    this.providers = new ProviderGuard({
      client: this.client,
      memoryFile: join(context.globalStorageUri.fsPath, PROVIDER_MEMORY_FILE),
      modelName: (fingerprint) => (this.modelInfo?.fingerprint === fingerprint ? this.modelInfo.name : undefined),
      notify: (notice) => this.onProviderCrash(notice),
      log,
    });
    // The way back after the notification is gone: the status-bar tooltip links here with the provider.
    this.disposables.push(vscode.commands.registerCommand(TRY_PROVIDER_AGAIN, (provider: unknown) => {
      const fingerprint = this.modelInfo?.fingerprint;
      if (typeof provider !== 'string' || !fingerprint) return;
      this.providers.retry(provider, fingerprint).catch((e: unknown) => {
        void vscode.window.showErrorMessage(`STAR Repair: ${e instanceof Error ? e.message : String(e)}`);
      });
    }));
    this.client.onCrash((exit, state) => this.onCrash(exit, state));
    this.disposables.push(this.changed, this.activityChanged, this.loaded);
  }

  get info(): ModelInfo | null {
    return this.modelInfo;
  }

  get stores(): ModelStores | null {
    return this.openStores;
  }

  get ready(): boolean {
    return this.phase === 'ready' && this.modelInfo !== null && this.client.status.status === 'running';
  }

  get errorMessage(): string | null {
    return this.error;
  }

  get worker(): WorkerState {
    return this.client.status;
  }

  get activity(): Activity {
    const w = this.client.status.status;
    if (this.phase === 'error' || w === 'failed') return 'error';
    if (this.phase === 'loading' || this.phase === 'idle' || w !== 'running') return 'loading';
    if (this.repairing) return 'repairing';
    if (this.completing > 0) return 'completing';
    return 'ready';
  }

  setRepairing(on: boolean): void {
    this.repairing = on;
    this.activityChanged.fire();
  }

  /**
   * Starts the worker (which loads the model through onStart). When it cannot be started
   * (WorkerStartError) the model is marked broken and the user is told, with Restart Worker.
   */
  async start(): Promise<void> {
    this.starting++;
    try {
      await this.client.start();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.log(`[model] worker did not start: ${message}`);
      this.phase = 'error';
      this.error = message;
      this.changed.fire();
      if (this.lastNotifiedError !== message) {
        this.lastNotifiedError = message;
        void vscode.window.showErrorMessage(`STAR Repair: ${message}`, 'Restart Worker', 'Show Log').then((pick) => {
          if (pick === 'Restart Worker') void vscode.commands.executeCommand('starRepair.restartWorker');
          if (pick === 'Show Log') void vscode.commands.executeCommand('starRepair.showLog');
        });
      }
    } finally {
      this.starting--;
    }
  }

  /** Loads the model named by the settings again (after the model folder, provider or threads changed). */
  async reload(): Promise<void> {
    if (this.client.status.status !== 'running') {
      await this.start();
      return;
    }
    await this.loadWith((method, params, options) => this.client.request(method, params, options));
  }

  /** Sends a request; the error is a WorkerError with a message meant for the user. */
  request<M extends Method>(method: M, params: ParamsOf<M>, options?: RequestOptions): Promise<ResultOf<M>> {
    return this.client.request(method, params, options);
  }

  async complete(params: CompleteParams, token: vscode.CancellationToken): Promise<CompleteResult> {
    this.completing++;
    this.activityChanged.fire();
    try {
      return await this.client.request('complete', params, { token });
    } finally {
      this.completing--;
      this.activityChanged.fire();
    }
  }

  /** The model folder the settings ask for, resolved ('' = the embedded model). */
  modelDir(settings: Settings): string {
    if (settings.modelPath) return settings.modelPath;
    const embedded = this.context.asAbsolutePath('models/tiny-coder');
    return existsSync(`${embedded}/config.json`) ? embedded : '';
  }

  private async loadWith(call: Caller): Promise<void> {
    const seq = ++this.loadSeq;
    const { settings, modelPathBlocked } = readSettings();
    if (modelPathBlocked) {
      this.log(`[model] this workspace sets starRepair.modelPath to ${modelPathBlocked}, ignored because the workspace is not trusted`);
    }
    this.phase = 'loading';
    this.error = null;
    this.changed.fire();
    try {
      const info = await call('load', { modelDir: this.modelDir(settings), provider: settings.executionProvider, threads: settings.threads, guard: this.providers.loadParams() });
      if (seq !== this.loadSeq) return;
      this.modelInfo = info;
      this.openStoresFor(info);
      await this.pushPatches(call);
      this.phase = 'ready';
      this.lastNotifiedError = null;
      this.log(`[model] ${info.name} ready on ${info.executionProvider}${info.fallbacks.length ? ` (not used: ${info.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')})` : ''}`);
      this.changed.fire();
      this.loaded.fire(info);
    } catch (e) {
      if (seq !== this.loadSeq) return;
      const message = e instanceof Error ? e.message : String(e);
      // A crash mid-load is handled by the restart; do not leave the model marked broken.
      if (e instanceof WorkerError && e.code === 'worker-crashed') throw e;
      this.phase = 'error';
      this.error = message;
      this.changed.fire();
      this.log(`[model] could not load the model: ${message}`);
      if (this.lastNotifiedError !== message) {
        this.lastNotifiedError = message;
        void vscode.window.showErrorMessage(`STAR Repair could not load the model: ${message}`, 'Select Model Folder').then((pick) => {
          if (pick) void vscode.commands.executeCommand('starRepair.selectModelFolder');
        });
      }
    }
  }

  private openStoresFor(info: ModelInfo): void {
    if (this.openStores?.fingerprint === info.fingerprint) return;
    const dir = this.context.globalStorageUri.fsPath;
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

  /** The enabled patches that fit the loaded model (the rest is skipped with the reason logged). */
  applicablePatches(): Patch[] {
    const info = this.modelInfo;
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

  private async pushPatches(call: Caller): Promise<void> {
    const r = await call('setPatches', { patches: this.applicablePatches().map(patchToJson) });
    if (r.applied.length) this.log(`[patches] ${r.applied.length} patch(es) applied, ${r.neurons} neurons changed`);
  }

  /** Sends the enabled patches to the worker after the history changed. */
  async syncPatches(): Promise<void> {
    if (!this.modelInfo) return;
    await this.pushPatches((method, params, options) => this.client.request(method, params, options));
    this.changed.fire();
  }

  private onCrash(exit: WorkerExit, state: WorkerState): void {
    const why = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    this.log(`[worker] crashed (${why})${exit.stderr.length ? `; last output: ${exit.stderr.slice(-5).join(' | ')}` : ''}`);
    if (state.status === 'failed') {
      // A start() in progress reports it itself (with the worker's last output).
      if (this.starting === 0) void vscode.window.showErrorMessage(`STAR Repair: the model worker keeps crashing (${why}) and was stopped. Your failures and patches are saved.`, 'Restart Worker', 'Show Log').then((pick) => {
        if (pick === 'Restart Worker') void vscode.commands.executeCommand('starRepair.restartWorker');
        if (pick === 'Show Log') void vscode.commands.executeCommand('starRepair.showLog');
      });
    } else if (state.crashes >= 2) {
      void vscode.window.showWarningMessage(`STAR Repair: the model worker crashed again (${why}); restarting in ${Math.round((state.restartInMs ?? 0) / 100) / 10} s. Your failures and patches are saved.`, 'Show Log').then((pick) => {
        if (pick) void vscode.commands.executeCommand('starRepair.showLog');
      });
    }
  }

  /** A GPU provider crashed the worker: it is restarting on the CPU; say so, offer the provider again. */
  private onProviderCrash(notice: ProviderCrashNotice): void {
    void vscode.window.showWarningMessage(notice.message, notice.retryLabel, 'Show Log').then((pick) => {
      if (pick === 'Show Log') void vscode.commands.executeCommand('starRepair.showLog');
      if (pick === notice.retryLabel) {
        this.providers.retry(notice.provider, notice.fingerprint).catch((e: unknown) => {
          void vscode.window.showErrorMessage(`STAR Repair: ${e instanceof Error ? e.message : String(e)}`);
        });
      }
    });
  }

  async dispose(): Promise<void> {
    this.providers.dispose();
    for (const off of this.storeUnsubscribers) off();
    for (const d of this.disposables) d.dispose();
    await this.client.dispose();
  }
}
