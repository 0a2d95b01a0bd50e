// The provider guard, on the extension side of the worker: when the worker dies on a GPU
// execution provider it remembers that provider for the model on this machine (provider memory,
// provider-memory.json, and in this process too, so a failed write cannot bring the crash back),
// the client restarts the worker at once, and the next `load` carries the crashed providers
// (LoadParams.guard.avoid), so the worker runs on the CPU. The user is told what happened, with a
// way back: retry() forgets the crash and the check verdict, and restarts the worker.
// No vscode here: ModelService shows the notice; the tests drive it with a real worker.

import type { AvoidedProvider, ProviderGuardParams } from './protocol';
import { diedOnGpu, type WorkerClient, type WorkerExit } from './client';
import { ProviderMemory, providerName } from './provider-memory';

/** What the user is told after a provider crashed the worker. */
export interface ProviderCrashNotice {
  provider: string;
  fingerprint: string;
  model: string;
  how: string;
  /** The notification text: what happened, that completions now come from the CPU. */
  message: string;
  /** The label of the way back ("Try WebGPU Again"). */
  retryLabel: string;
}

export interface ProviderGuardOptions {
  client: WorkerClient;
  /** provider-memory.json in the extension's global storage; null: remembered in this process only. */
  memoryFile: string | null;
  notify: (notice: ProviderCrashNotice) => void;
  /** The loaded model's name for a fingerprint, when known (for messages). */
  modelName?: (fingerprint: string) => string | undefined;
  log?: (line: string) => void;
}

function describeHow(exit: WorkerExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

export function retryLabel(provider: string): string {
  return `Try ${providerName(provider)} Again`;
}

/** The fallback reason the worker reports for a provider that crashed it (status bar tooltip, panel). */
export function crashReason(provider: string, how: string, at: string): string {
  const name = providerName(provider);
  return `${name} crashed the model worker (${how}) on ${at.slice(0, 10)}, so the CPU is used for this model on this machine; choose "${retryLabel(provider)}" to use ${name} again`;
}

export function crashMessage(provider: string, model: string, how: string): string {
  const name = providerName(provider);
  return `STAR Repair: the model worker crashed on ${name} (${how}) while running ${model}. It was restarted on the CPU at once: completions now come from the CPU, and ${name} is not used for this model on this machine until you try it again.`;
}

export class ProviderGuard {
  /** Crashes seen by this process, key provider + fingerprint (kept even when the file cannot be written). */
  private readonly seen = new Map<string, AvoidedProvider>();
  /** What the last load was told to avoid (crashedFor() answers from it without reading the file). */
  private lastAvoid: AvoidedProvider[] = [];
  private readonly memory: ProviderMemory | null;
  private readonly log: (line: string) => void;
  private readonly off: () => void;

  constructor(private readonly options: ProviderGuardOptions) {
    this.log = options.log ?? (() => {});
    this.memory = options.memoryFile ? new ProviderMemory(options.memoryFile, this.log) : null;
    this.off = options.client.onCrash((exit) => this.onCrash(exit));
  }

  /** LoadParams.guard: where verdicts are kept and every provider that crashed the worker here. */
  loadParams(): ProviderGuardParams {
    const avoid = new Map(this.seen);
    try {
      for (const c of this.memory?.crashes() ?? []) {
        const key = `${c.provider} ${c.fingerprint}`;
        if (!avoid.has(key)) avoid.set(key, { provider: c.provider, fingerprint: c.fingerprint, reason: crashReason(c.provider, c.how, c.at) });
      }
    } catch (e) {
      this.log(`[providers] could not read ${this.options.memoryFile}: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.lastAvoid = [...avoid.values()];
    return { memoryFile: this.options.memoryFile, avoid: this.lastAvoid };
  }

  private onCrash(exit: WorkerExit): void {
    if (!diedOnGpu(exit) || !exit.provider) return;
    const { provider, fingerprint } = exit.provider;
    const how = describeHow(exit);
    const model = this.options.modelName?.(fingerprint) ?? `model ${fingerprint.slice(0, 12)}…`;
    this.seen.set(`${provider} ${fingerprint}`, { provider, fingerprint, reason: crashReason(provider, how, new Date().toISOString()) });
    try {
      this.memory?.recordCrash({ provider, fingerprint, how, model });
    } catch (e) {
      this.log(`[providers] could not remember the crash in ${this.options.memoryFile}: ${e instanceof Error ? e.message : String(e)} (remembered until VS Code restarts)`);
    }
    this.log(`[providers] the worker died on ${providerName(provider)} (${how}) with ${model}; it restarts on the CPU and ${providerName(provider)} is not used for this model on this machine`);
    this.options.notify({ provider, fingerprint, model, how, message: crashMessage(provider, model, how), retryLabel: retryLabel(provider) });
  }

  /** Providers that crashed the worker for a model on this machine, as of the last load (no file read: the status bar asks often). */
  crashedFor(fingerprint: string): string[] {
    const all = [...this.lastAvoid, ...this.seen.values()].filter((a) => a.fingerprint === fingerprint).map((a) => a.provider);
    return [...new Set(all)];
  }

  /** The way back: forgets the crash and the check verdict, then restarts the worker (which checks the provider again). */
  async retry(provider: string, fingerprint: string): Promise<void> {
    this.seen.delete(`${provider} ${fingerprint}`);
    this.lastAvoid = this.lastAvoid.filter((a) => !(a.provider === provider && a.fingerprint === fingerprint));
    try {
      this.memory?.forget(fingerprint, provider);
    } catch (e) {
      this.log(`[providers] could not clear ${this.options.memoryFile}: ${e instanceof Error ? e.message : String(e)}`);
      throw new Error(`${providerName(provider)} could not be tried again: ${this.options.memoryFile} could not be changed (${e instanceof Error ? e.message : String(e)}); delete it and restart the model worker`);
    }
    this.log(`[providers] trying ${providerName(provider)} again for model ${fingerprint.slice(0, 12)}…: it is checked in a separate process first`);
    await this.options.client.restart();
  }

  dispose(): void {
    this.off();
  }
}
