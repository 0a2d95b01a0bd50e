// The connection to the model worker: the process (WorkerClient: start, restart with backoff,
// requests), which model it has loaded and in which phase (loading, ready, error), the activity
// the status bar shows (completing, repairing), and what the user is told when the worker cannot
// start, crashes or cannot load the model. A GPU provider that crashes the worker is remembered and
// the worker restarts on the CPU (ProviderGuard, src/worker/provider-guard.ts); the user is told,
// with a way back (TRY_PROVIDER_AGAIN). After every load it calls `afterLoad` (ModelService: open
// the model's stores, send the enabled patches) before the model counts as ready.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { WorkerClient, WorkerError, type Caller, type RequestOptions, type WorkerExit, type WorkerState } from '../worker/client';
import type { CompleteParams, CompleteResult, Method, ModelInfo, ParamsOf, ResultOf } from '../worker/protocol';
import { ProviderGuard, type ProviderCrashNotice } from '../worker/provider-guard';
import { PROVIDER_MEMORY_FILE } from '../worker/provider-memory';
import type { ReadSettings } from './config';
import { describeWeights } from '../panel/messages';

export type ModelPhase = 'idle' | 'loading' | 'ready' | 'error';
/** Forgets that a provider crashed the worker for the loaded model and restarts it (argument: the provider). */
export const TRY_PROVIDER_AGAIN = 'starRepair.tryProviderAgain';
export type Activity = 'loading' | 'ready' | 'completing' | 'repairing' | 'error';

export interface WorkerConnectionOptions {
  context: vscode.ExtensionContext;
  log: (line: string) => void;
  /** The settings (and a model folder that workspace trust held back), read at each load. */
  settings: () => ReadSettings;
  /** Runs after each successful load, before the model counts as ready; `call` reaches the worker being started. */
  afterLoad: (info: ModelInfo, call: Caller) => Promise<void>;
}

export class WorkerConnection implements vscode.Disposable {
  private readonly client: WorkerClient;
  /** Remembers GPU providers that crashed the worker; the worker then runs on the CPU. */
  readonly providers: ProviderGuard;
  private phase: ModelPhase = 'idle';
  private error: string | null = null;
  private modelInfo: ModelInfo | null = null;
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
  private readonly context: vscode.ExtensionContext;
  private readonly log: (line: string) => void;

  /** The model, its phase or the worker's state changed. */
  readonly onDidChange = this.changed.event;
  /** Only the activity changed (a completion started or ended, a repair started or ended): cheap, frequent. */
  readonly onDidChangeActivity = this.activityChanged.event;
  /** A model finished loading (also after a worker restart). */
  readonly onDidLoad = this.loaded.event;

  constructor(private readonly options: WorkerConnectionOptions) {
    const { context, log } = options;
    this.context = context;
    this.log = log;
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

  get ready(): boolean {
    return this.phase === 'ready' && this.modelInfo !== null && this.client.status.status === 'running';
  }

  get errorMessage(): string | null {
    return this.error;
  }

  get worker(): WorkerState {
    return this.client.status;
  }

  /** The worker process's id (null while none runs). */
  get pid(): number | null {
    return this.client.pid;
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

  /** Starts the worker process again (also after it was stopped for crashing); the model is loaded again. */
  restart(): Promise<void> {
    return this.client.restart();
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
  private modelDir(modelPath: string): string {
    if (modelPath) return modelPath;
    const embedded = this.context.asAbsolutePath('models/tiny-coder');
    return existsSync(`${embedded}/config.json`) ? embedded : '';
  }

  private async loadWith(call: Caller): Promise<void> {
    const seq = ++this.loadSeq;
    const { settings, modelPathBlocked } = this.options.settings();
    if (modelPathBlocked) {
      this.log(`[model] this workspace sets starRepair.modelPath to ${modelPathBlocked}, ignored because the workspace is not trusted`);
    }
    this.phase = 'loading';
    this.error = null;
    this.changed.fire();
    try {
      const info = await call('load', { modelDir: this.modelDir(settings.modelPath), provider: settings.executionProvider, threads: settings.threads, weights: settings.weights, guard: this.providers.loadParams() });
      if (seq !== this.loadSeq) return;
      this.modelInfo = info;
      await this.options.afterLoad(info, call);
      this.phase = 'ready';
      this.lastNotifiedError = null;
      this.log(`[model] ${info.name} ready on ${info.executionProvider}${info.weights ? ` (${describeWeights({ format: info.weights, bytes: info.weightBytes })})` : ''}${info.fallbacks.length ? ` (not used: ${info.fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ')})` : ''}`);
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
    for (const d of this.disposables) d.dispose();
    await this.client.dispose();
  }
}
