// The extension's model, as the other services see it: the worker connection (worker-connection.ts:
// the process, the loaded model, its phase and activity, crash and provider handling) and the
// per-model store holder (model-stores.ts: failures, patches, reports, accepted completions per
// model fingerprint). It owns their wiring, and only that: after every worker (re)start the
// connection loads the model, then the model's stores are opened and the enabled patches sent
// again, so nothing that matters lives in the worker.

import * as vscode from 'vscode';
import { patchToJson, type Patch } from '../repair/patch';
import type { Caller, RequestOptions, WorkerState } from '../worker/client';
import type { CompleteParams, CompleteResult, Method, ModelInfo, ParamsOf, ResultOf } from '../worker/protocol';
import type { ReadSettings } from './config';
import { ModelStoreHolder, type ModelStores } from './model-stores';
import { WorkerConnection, type Activity } from './worker-connection';

export type { ModelStores } from './model-stores';
export { TRY_PROVIDER_AGAIN, type Activity, type ModelPhase } from './worker-connection';

export class ModelService implements vscode.Disposable {
  readonly connection: WorkerConnection;
  readonly storeHolder: ModelStoreHolder;
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly disposables: vscode.Disposable[];

  /** The model, its phase, the worker's state or the stores changed. */
  readonly onDidChange = this.changed.event;
  /** Only the activity changed (a completion started or ended, a repair started or ended): cheap, frequent. */
  readonly onDidChangeActivity: vscode.Event<void>;
  /** A model finished loading (also after a worker restart). */
  readonly onDidLoad: vscode.Event<ModelInfo>;

  constructor(context: vscode.ExtensionContext, private readonly log: (line: string) => void, settings: () => ReadSettings) {
    this.storeHolder = new ModelStoreHolder(context.globalStorageUri.fsPath, log);
    this.connection = new WorkerConnection({
      context, log, settings,
      afterLoad: async (info, call) => {
        this.storeHolder.openFor(info);
        await this.pushPatches(call);
      },
    });
    this.onDidChangeActivity = this.connection.onDidChangeActivity;
    this.onDidLoad = this.connection.onDidLoad;
    this.disposables = [
      this.connection.onDidChange(() => this.changed.fire()),
      this.storeHolder.onDidChange(() => this.changed.fire()),
      this.changed,
    ];
  }

  get info(): ModelInfo | null {
    return this.connection.info;
  }

  get stores(): ModelStores | null {
    return this.storeHolder.stores;
  }

  get ready(): boolean {
    return this.connection.ready;
  }

  get errorMessage(): string | null {
    return this.connection.errorMessage;
  }

  get worker(): WorkerState {
    return this.connection.worker;
  }

  get activity(): Activity {
    return this.connection.activity;
  }

  /** The GPU providers that crashed the worker for the model `fingerprint` (the status bar offers each again). */
  crashedProviders(fingerprint: string): string[] {
    return this.connection.providers.crashedFor(fingerprint);
  }

  /** Starts the worker process again (also after it was stopped for crashing); the model is loaded again. */
  restartWorker(): Promise<void> {
    return this.connection.restart();
  }

  setRepairing(on: boolean): void {
    this.connection.setRepairing(on);
  }

  /** Starts the worker, which loads the model (see WorkerConnection.start). */
  start(): Promise<void> {
    return this.connection.start();
  }

  /** Loads the model named by the settings again (after the model folder, provider or threads changed). */
  reload(): Promise<void> {
    return this.connection.reload();
  }

  /** Sends a request; the error is a WorkerError with a message meant for the user. */
  request<M extends Method>(method: M, params: ParamsOf<M>, options?: RequestOptions): Promise<ResultOf<M>> {
    return this.connection.request(method, params, options);
  }

  complete(params: CompleteParams, token: vscode.CancellationToken): Promise<CompleteResult> {
    return this.connection.complete(params, token);
  }

  /** The enabled patches that fit the loaded model (the rest is skipped with the reason logged). */
  applicablePatches(): Patch[] {
    return this.storeHolder.applicablePatches(this.connection.info);
  }

  private async pushPatches(call: Caller): Promise<void> {
    const r = await call('setPatches', { patches: this.applicablePatches().map(patchToJson) });
    if (r.applied.length) this.log(`[patches] ${r.applied.length} patch(es) applied, ${r.neurons} neurons changed`);
  }

  /** Sends the enabled patches to the worker after the history changed. */
  async syncPatches(): Promise<void> {
    if (!this.connection.info) return;
    await this.pushPatches((method, params, options) => this.connection.request(method, params, options));
    this.changed.fire();
  }

  async dispose(): Promise<void> {
    this.storeHolder.dispose();
    for (const d of this.disposables) d.dispose();
    await this.connection.dispose();
  }
}
