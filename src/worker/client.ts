// The extension side of the model worker: forks dist/worker.js, sends typed requests with ids,
// routes progress to callers, cancels (AbortSignal or a VS Code CancellationToken), checks every
// answer against the protocol, and restarts the process with exponential backoff when it dies.
// Requests in flight when it dies fail with a WorkerError saying so; requests made while it
// restarts wait for it. After every start the `onStart` hook runs first — the host re-sends
// `load` and `setPatches` there, since it, not the worker, owns the failures and patches.
// Every request ends: with the answer; with a WorkerProtocolError when the answer cannot be read;
// with 'timeout' at its method's deadline (DEFAULT_DEADLINES_MS: short for complete/predict, none
// for repair/evaluate/export, which report progress and can be cancelled instead); with
// 'worker-crashed' when the worker exits. start() rejects with WorkerStartError when the worker
// cannot be started (it crashed maxCrashes times in a row), so callers can report it.
// The worker tells which execution provider it runs on (ProviderNotice); a worker that dies on a
// GPU provider is restarted at once, with no backoff (provider-guard.ts remembers the provider
// first, so the new worker runs on the CPU) — unless the same provider crashed the previous one
// too, when the usual backoff applies.
// No vscode import, so the unit tests drive it with a real forked worker.

import { fork, type ChildProcess } from 'node:child_process';
import {
  parseResult, parseWorkerMessage, PROTOCOL_VERSION, ProtocolError,
  type Method, type ParamsOf, type RepairProgressEvent, type ResultOf,
} from './protocol';

/** The provider a worker ran on, for which model (its last ProviderNotice). */
export interface WorkerProvider {
  provider: string;
  fingerprint: string;
}

export type WorkerErrorCode =
  | 'worker-crashed' | 'worker-stopped' | 'worker-failed' | 'cancelled' | 'timeout' | 'protocol'
  | (string & {});

/** A request did not produce a result: the worker refused it, died, was stopped, or it was cancelled. */
export class WorkerError extends Error {
  constructor(readonly code: WorkerErrorCode, message: string, readonly remoteName?: string) {
    super(message);
    this.name = 'WorkerError';
  }
}

/** The worker cannot be started: it crashed `crashes` times in a row and is not restarted automatically. */
export class WorkerStartError extends WorkerError {
  constructor(readonly crashes: number, readonly lastExit: WorkerExit | null) {
    const tail = lastExit?.stderr.filter((l) => l.trim() !== '').slice(-3).join(' | ');
    super('worker-failed', `the model worker could not be started: it crashed ${crashes} times in a row ` +
      `(${lastExit ? describeExit(lastExit) : 'unknown cause'}${tail ? `; last output: ${tail}` : ''}) and is not restarted ` +
      'automatically: see the STAR Repair output (Show Log), then run "STAR Repair: Restart Model Worker"');
    this.name = 'WorkerStartError';
  }
}

/** The worker's answer to a request could not be read (it breaks the protocol). */
export class WorkerProtocolError extends WorkerError {
  constructor(readonly method: Method, detail: string) {
    super('protocol', `the worker's answer to ${method} could not be read (${detail}): the extension and dist/worker.js ` +
      'may come from different builds; reinstall the extension or run "STAR Repair: Restart Model Worker"');
    this.name = 'WorkerProtocolError';
  }
}

/**
 * How long each method may go unanswered before it fails with 'timeout' (and the worker is told to
 * cancel it). Completions and predictions are short on any model the extension can run; loading a
 * multi-GB model from a slow disk can take minutes. repair, evaluate and export have no deadline:
 * they take as long as the model and data need, report progress, can be cancelled, and end with
 * 'worker-crashed' if the worker exits.
 */
export const DEFAULT_DEADLINES_MS: Readonly<Partial<Record<Method, number>>> = {
  load: 600_000,
  complete: 60_000,
  predict: 60_000,
  setPatches: 120_000,
  neuronDetails: 30_000,
};

/** The id of a reply that could not be read, when it names one (so its request can still be settled). */
export function replyIdOf(raw: unknown): number | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  return m.type === 'response' && typeof m.id === 'number' && Number.isSafeInteger(m.id) ? m.id : undefined;
}

/** Structural view of vscode.CancellationToken, so this file needs no vscode. */
export interface CancellationLike {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

export interface RequestOptions {
  signal?: AbortSignal;
  token?: CancellationLike;
  onProgress?: (p: RepairProgressEvent) => void;
  /**
   * Rejects with code 'timeout' (and cancels in the worker) after this long; null: no deadline.
   * Default: the method's deadline (DEFAULT_DEADLINES_MS, or the client's deadlinesMs).
   */
  timeoutMs?: number | null;
}

export type WorkerStatus = 'stopped' | 'starting' | 'running' | 'restarting' | 'failed';

export interface WorkerExit {
  code: number | null;
  signal: string | null;
  /** Methods that were in flight when it died. */
  during: Method[];
  /** The last lines the worker wrote to stderr. */
  stderr: string[];
  /** The provider it was on when it died (null: it had not said, e.g. before any model was loaded). */
  provider: WorkerProvider | null;
}

/** Whether a worker died on a GPU execution provider (anything but the CPU). */
export function diedOnGpu(exit: WorkerExit): boolean {
  return exit.provider !== null && exit.provider.provider !== 'cpu';
}

export interface WorkerState {
  status: WorkerStatus;
  pid: number | null;
  /** Crashes since the worker last ran stably. */
  crashes: number;
  lastExit: WorkerExit | null;
  /** When status is 'restarting': the delay before the next start. */
  restartInMs: number | null;
}

export type Caller = <M extends Method>(method: M, params: ParamsOf<M>, options?: RequestOptions) => Promise<ResultOf<M>>;

export interface WorkerClientOptions {
  /** Path of the bundled worker (dist/worker.js). */
  workerPath: string;
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Runs after each (re)start, before any waiting request: re-send load and patches here. */
  onStart?: (call: Caller) => Promise<void>;
  log?: (line: string) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Uptime after which earlier crashes are forgiven. */
  stableMs?: number;
  /** Consecutive crashes after which the client stops restarting (status 'failed') until restart(). */
  maxCrashes?: number;
  readyTimeoutMs?: number;
  /** Per-method deadlines replacing DEFAULT_DEADLINES_MS (null: none). */
  deadlinesMs?: Partial<Record<Method, number | null>>;
}

interface Pending {
  method: Method;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (p: RepairProgressEvent) => void;
  cleanup: () => void;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
  /** True once resolved or rejected: a settled gate cannot carry a later outcome. */
  readonly settled: boolean;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  let settled = false;
  const promise = new Promise<void>((res, rej) => {
    resolve = () => { settled = true; res(); };
    reject = (e) => { settled = true; rej(e); };
  });
  // A gate nobody waits on must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject, get settled() { return settled; } };
}

function describeExit(e: WorkerExit): string {
  const how = e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
  return e.during.length ? `${how}, while running ${[...new Set(e.during)].join(', ')}` : how;
}

export class WorkerClient {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private gate: Deferred = deferred();
  private state: WorkerState = { status: 'stopped', pid: null, crashes: 0, lastExit: null, restartInMs: null };
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private disposed = false;
  private stderrTail: string[] = [];
  private provider: WorkerProvider | null = null;
  private readonly stateListeners = new Set<(s: WorkerState) => void>();
  private readonly crashListeners = new Set<(exit: WorkerExit, state: WorkerState) => void>();
  private readonly opts: Required<Omit<WorkerClientOptions, 'env' | 'onStart' | 'execArgv' | 'deadlinesMs'>> & Pick<WorkerClientOptions, 'env' | 'onStart' | 'execArgv' | 'deadlinesMs'>;

  constructor(options: WorkerClientOptions) {
    this.opts = {
      log: () => {},
      initialBackoffMs: 500,
      maxBackoffMs: 30_000,
      stableMs: 60_000,
      maxCrashes: 6,
      readyTimeoutMs: 60_000,
      ...options,
    };
  }

  get status(): WorkerState {
    return { ...this.state };
  }

  get pid(): number | null {
    return this.state.pid;
  }

  /** The provider the running worker said it runs on (null before it said, or when none runs). */
  get workerProvider(): WorkerProvider | null {
    return this.provider ? { ...this.provider } : null;
  }

  onStateChange(listener: (s: WorkerState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Called on every unexpected exit, with the crash count (the host tells the user from the second on). */
  onCrash(listener: (exit: WorkerExit, state: WorkerState) => void): () => void {
    this.crashListeners.add(listener);
    return () => this.crashListeners.delete(listener);
  }

  /**
   * Starts the worker if it is not running; resolves once it is ready and onStart has run.
   * Rejects with WorkerStartError when it cannot be started (status 'failed'): call restart().
   */
  start(): Promise<void> {
    if (this.disposed) return Promise.reject(new WorkerError('worker-stopped', 'the model worker has been shut down'));
    if (this.state.status === 'failed') return Promise.reject(new WorkerStartError(this.state.crashes, this.state.lastExit));
    if (this.state.status === 'stopped') this.spawn();
    return this.gate.promise;
  }

  /** Starts again after 'failed' (or restarts a running worker), with a clean crash count. */
  restart(): Promise<void> {
    if (this.disposed) return Promise.reject(new WorkerError('worker-stopped', 'the model worker has been shut down'));
    this.clearRestartTimer();
    this.state.crashes = 0;
    // A gate already opened (running) or broken (failed) must not let requests past the new start.
    if (this.state.status === 'failed' || this.state.status === 'running') this.gate = deferred();
    if (this.child) {
      // The exit handler sees status 'restarting' and starts a new one at once.
      this.setState({ status: 'restarting', restartInMs: 0 });
      this.child.kill('SIGKILL');
    } else {
      this.spawn();
    }
    return this.gate.promise;
  }

  request<M extends Method>(method: M, params: ParamsOf<M>, options: RequestOptions = {}): Promise<ResultOf<M>> {
    if (this.disposed) return Promise.reject(new WorkerError('worker-stopped', 'the model worker has been shut down'));
    if (this.state.status === 'failed') {
      return Promise.reject(new WorkerError('worker-failed', `the model worker crashed ${this.state.crashes} times in a row and was not restarted again (${this.state.lastExit ? describeExit(this.state.lastExit) : 'unknown cause'}): see the STAR Repair output, then run "STAR Repair: Restart model worker"`));
    }
    if (this.state.status === 'stopped') this.spawn();
    const gate = this.gate.promise;
    return gate.then(() => this.send(method, params, options));
  }

  /** Stops the worker for good; requests in flight fail with 'worker-stopped'. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.clearRestartTimer();
    this.gate.reject(new WorkerError('worker-stopped', 'the model worker has been shut down'));
    this.rejectAll(() => new WorkerError('worker-stopped', 'the model worker was shut down before it answered'));
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    }
    this.setState({ status: 'stopped', pid: null, restartInMs: null });
  }

  private setState(patch: Partial<WorkerState>): void {
    this.state = { ...this.state, ...patch };
    const snapshot = this.status;
    for (const l of [...this.stateListeners]) l(snapshot);
  }

  private clearRestartTimer(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
  }

  private spawn(): void {
    if (this.disposed) return;
    this.clearRestartTimer();
    this.stderrTail = [];
    this.provider = null;
    const child = fork(this.opts.workerPath, [], {
      execArgv: this.opts.execArgv ?? [],
      env: this.opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.startedAt = Date.now();
    this.setState({ status: 'starting', pid: child.pid ?? null, restartInMs: null });
    const lines = (stream: NodeJS.ReadableStream | null, tag: string, keep: boolean) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.opts.log(`[worker ${tag}] ${line}`);
          if (keep) {
            this.stderrTail.push(line);
            if (this.stderrTail.length > 20) this.stderrTail.shift();
          }
        }
      });
    };
    lines(child.stdout, 'stdout', false);
    lines(child.stderr, 'stderr', true);
    const readyTimer = setTimeout(() => {
      this.opts.log(`[worker] no ready message within ${this.opts.readyTimeoutMs} ms: killing it`);
      child.kill('SIGKILL');
    }, this.opts.readyTimeoutMs);
    child.on('message', (raw: unknown) => this.onMessage(child, raw, readyTimer));
    child.on('error', (e) => {
      this.opts.log(`[worker] process error: ${e.message}`);
      // The process could not be created at all: no 'exit' follows, so count it as one.
      if (child.pid === undefined) {
        clearTimeout(readyTimer);
        this.stderrTail.push(e.message);
        this.onExit(child, null, null);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(readyTimer);
      this.onExit(child, code, signal);
    });
  }

  private onMessage(child: ChildProcess, raw: unknown, readyTimer: NodeJS.Timeout): void {
    if (child !== this.child) return;
    let m;
    try {
      m = parseWorkerMessage(raw);
    } catch (e) {
      this.onUnreadable(raw, e instanceof Error ? e.message : String(e));
      return;
    }
    switch (m.type) {
      case 'ready':
        clearTimeout(readyTimer);
        if (m.protocol !== PROTOCOL_VERSION) {
          this.opts.log(`[worker] speaks protocol ${m.protocol}, expected ${PROTOCOL_VERSION}: the extension and dist/worker.js come from different builds`);
        }
        void this.runStartHook(child);
        return;
      case 'log':
        this.opts.log(`[worker] ${m.message}`);
        return;
      case 'provider':
        this.provider = { provider: m.provider, fingerprint: m.fingerprint };
        return;
      case 'progress':
        this.pending.get(m.id)?.onProgress?.(m.progress);
        return;
      case 'response': {
        const p = this.pending.get(m.id);
        if (!p) return; // cancelled or timed out meanwhile
        this.pending.delete(m.id);
        p.cleanup();
        if (!m.ok) {
          p.reject(new WorkerError(m.error.code, m.error.message, m.error.name));
          return;
        }
        try {
          p.resolve(parseResult(p.method, m.result));
        } catch (e) {
          p.reject(new WorkerProtocolError(p.method, e instanceof ProtocolError ? e.message : String(e)));
        }
      }
    }
  }

  /** A message that breaks the protocol: settles the request it answers, if it names one; else logged. */
  private onUnreadable(raw: unknown, detail: string): void {
    const id = replyIdOf(raw);
    const p = id === undefined ? undefined : this.pending.get(id);
    if (id === undefined || !p) {
      this.opts.log(`[worker] dropped an unreadable message that answers no pending request${id === undefined ? '' : ` (id ${id})`}: ${detail}`);
      return;
    }
    this.pending.delete(id);
    p.cleanup();
    p.reject(new WorkerProtocolError(p.method, detail));
  }

  private async runStartHook(child: ChildProcess): Promise<void> {
    if (this.opts.onStart) {
      try {
        await this.opts.onStart((method, params, options) => this.send(method, params, options ?? {}));
      } catch (e) {
        this.opts.log(`[worker] start-up step failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (child !== this.child || this.disposed) return;
    this.setState({ status: 'running' });
    this.gate.resolve();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = null;
    const during = [...this.pending.values()].map((p) => p.method);
    const exit: WorkerExit = { code, signal, during, stderr: [...this.stderrTail], provider: this.provider };
    this.provider = null;
    const previousExit = this.state.lastExit;
    if (this.disposed) {
      this.setState({ status: 'stopped', pid: null, lastExit: exit });
      return;
    }
    const wanted = this.state.status === 'restarting' && this.state.restartInMs === 0;
    this.rejectAll((p) => new WorkerError('worker-crashed',
      `the model worker stopped (${describeExit(exit)}) before answering ${p.method}; it is being restarted — your failures and patches are safe, try again in a moment`));
    if (wanted) {
      this.setState({ lastExit: exit });
      this.spawn();
      return;
    }
    const uptime = Date.now() - this.startedAt;
    const crashes = uptime >= this.opts.stableMs ? 1 : this.state.crashes + 1;
    this.opts.log(`[worker] exited unexpectedly (${describeExit(exit)}) after ${uptime} ms; crash ${crashes}`);
    if (crashes >= this.opts.maxCrashes) {
      // The gate may already be open (it crashed while running): start() and requests waiting
      // from now on must see the failure, not the old success.
      if (this.gate.settled) this.gate = deferred();
      this.setState({ status: 'failed', pid: null, crashes, lastExit: exit, restartInMs: null });
      this.gate.reject(new WorkerStartError(crashes, exit));
    } else {
      // A first crash on a GPU provider: the crash listeners remember the provider (synchronously,
      // below) and the new worker runs on the CPU, so it starts at once.
      const sameGpuAgain = previousExit !== null && diedOnGpu(previousExit) && previousExit.provider?.provider === exit.provider?.provider
        && previousExit.provider?.fingerprint === exit.provider?.fingerprint;
      const delay = diedOnGpu(exit) && !sameGpuAgain ? 0 : Math.min(this.opts.maxBackoffMs, this.opts.initialBackoffMs * 2 ** (crashes - 1));
      // Requests made from now on wait for the new process.
      if (this.state.status === 'running') this.gate = deferred();
      this.setState({ status: 'restarting', pid: null, crashes, lastExit: exit, restartInMs: delay });
      this.restartTimer = setTimeout(() => this.spawn(), delay);
    }
    for (const l of [...this.crashListeners]) l(exit, this.status);
  }

  private rejectAll(error: (p: Pending) => Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      p.cleanup();
      p.reject(error(p));
    }
  }

  /** The request's own timeout, else the client's or the default deadline of its method; null: none. */
  private deadlineOf(method: Method, options: RequestOptions): number | null {
    if (options.timeoutMs !== undefined) return options.timeoutMs;
    const configured = this.opts.deadlinesMs?.[method];
    if (configured !== undefined) return configured;
    return DEFAULT_DEADLINES_MS[method] ?? null;
  }

  private send<M extends Method>(method: M, params: ParamsOf<M>, options: RequestOptions): Promise<ResultOf<M>> {
    const child = this.child;
    if (!child || !child.connected) {
      return Promise.reject(new WorkerError('worker-crashed', `the model worker is not running (it is ${this.state.status}); try again in a moment`));
    }
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const disposers: (() => void)[] = [];
      const cancel = (code: 'cancelled' | 'timeout', message: string) => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        for (const d of disposers) d();
        if (child.connected) child.send({ type: 'cancel', id });
        reject(new WorkerError(code, message));
      };
      const cancelled = () => cancel('cancelled', `${method} was cancelled`);
      if (options.signal?.aborted || options.token?.isCancellationRequested) {
        reject(new WorkerError('cancelled', `${method} was cancelled`));
        return;
      }
      if (options.signal) {
        options.signal.addEventListener('abort', cancelled, { once: true });
        disposers.push(() => options.signal?.removeEventListener('abort', cancelled));
      }
      if (options.token) {
        const sub = options.token.onCancellationRequested(cancelled);
        disposers.push(() => void sub.dispose());
      }
      const deadline = this.deadlineOf(method, options);
      if (deadline !== null) {
        const t = setTimeout(() => cancel('timeout', `${method} got no answer from the model worker within ${deadline / 1000} s and was stopped: ` +
          'try again; if it keeps happening the worker may be stuck — run "STAR Repair: Restart Model Worker"'), deadline);
        disposers.push(() => clearTimeout(t));
      }
      this.pending.set(id, {
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
        onProgress: options.onProgress,
        cleanup: () => {
          for (const d of disposers) d();
        },
      });
      child.send({ type: 'request', id, method, params }, (err) => {
        if (err && this.pending.has(id)) {
          this.pending.get(id)!.cleanup();
          this.pending.delete(id);
          reject(new WorkerError('worker-crashed', `could not send ${method} to the model worker: ${err.message}`));
        }
      });
    });
  }
}
