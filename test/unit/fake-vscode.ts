// A stand-in for the `vscode` module (the real one exists only inside VS Code) for driving the
// commands and the shared user flows in Node: notifications are recorded with their buttons, a
// test answers them (`click`), and progress notifications stay "up" until their task settles,
// as VS Code does. install() makes `require('vscode')` return it for modules loaded afterwards.

import Module, { createRequire } from 'node:module';
import { join } from 'node:path';

type Listener<T> = (e: T) => void;

export class FakeEmitter<T> {
  private listeners = new Set<Listener<T>>();
  readonly event = (l: Listener<T>) => {
    this.listeners.add(l);
    return { dispose: () => this.listeners.delete(l) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class FakeCancellationTokenSource {
  private readonly emitter = new FakeEmitter<void>();
  isCancellationRequested = false;
  readonly token: { readonly isCancellationRequested: boolean; onCancellationRequested: FakeEmitter<void>['event'] };
  constructor() {
    const owner = this;
    this.token = {
      get isCancellationRequested(): boolean {
        return owner.isCancellationRequested;
      },
      onCancellationRequested: this.emitter.event,
    };
  }
  cancel(): void {
    if (this.isCancellationRequested) return;
    this.isCancellationRequested = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

/** A toast the code showed: its text, its buttons, and a way to answer it as the user would. */
export interface Toast {
  severity: 'info' | 'warning' | 'error';
  text: string;
  buttons: string[];
  /** Answers the toast (a button, or undefined: closed without one). */
  click(button: string | undefined): void;
}

/** A progress notification: up until its task settles; `cancel` is the user pressing Cancel. */
export interface ProgressToast {
  title: string;
  cancellable: boolean;
  up: boolean;
  reports: { message?: string; increment?: number }[];
  cancel(): void;
}

export class FakeWindow {
  readonly toasts: Toast[] = [];
  readonly progress: ProgressToast[] = [];
  readonly executed: { command: string; args: unknown[] }[] = [];

  private show(severity: Toast['severity'], text: string, rest: unknown[]): Promise<string | undefined> {
    const buttons = rest.filter((x): x is string => typeof x === 'string');
    return new Promise((resolve) => this.toasts.push({ severity, text, buttons, click: resolve }));
  }

  readonly api = {
    showInformationMessage: (text: string, ...rest: unknown[]) => this.show('info', text, rest),
    showWarningMessage: (text: string, ...rest: unknown[]) => this.show('warning', text, rest),
    showErrorMessage: (text: string, ...rest: unknown[]) => this.show('error', text, rest),
    setStatusBarMessage: () => ({ dispose() {} }),
    withProgress: <R>(options: { title?: string; cancellable?: boolean }, task: (progress: { report(v: { message?: string; increment?: number }): void }, token: FakeCancellationTokenSource['token']) => Thenable<R>): Promise<R> => {
      const cts = new FakeCancellationTokenSource();
      const p: ProgressToast = {
        title: options.title ?? '',
        cancellable: options.cancellable === true,
        up: true,
        reports: [],
        // VS Code shows no Cancel button on a notification that is not cancellable.
        cancel: () => {
          if (p.cancellable && p.up) cts.cancel();
        },
      };
      this.progress.push(p);
      const done = Promise.resolve(task({ report: (v) => p.reports.push(v) }, cts.token));
      done.then(() => (p.up = false), () => (p.up = false));
      return done;
    },
  };

  /** The newest toast whose text matches. */
  toast(match: RegExp): Toast | undefined {
    return [...this.toasts].reverse().find((t) => match.test(t.text));
  }
}

export function makeFakeVscode(win: FakeWindow) {
  return {
    EventEmitter: FakeEmitter,
    CancellationTokenSource: FakeCancellationTokenSource,
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    Uri: { file: (path: string) => ({ fsPath: path, path, toString: () => `file://${path}` }), parse: (s: string) => ({ fsPath: s, path: s, toString: () => s }) },
    Disposable: class {
      constructor(private readonly f: () => void) {}
      static from(...ds: { dispose(): void }[]) {
        return { dispose: () => ds.forEach((d) => d.dispose()) };
      }
      dispose(): void {
        this.f();
      }
    },
    window: win.api,
    commands: {
      executeCommand: async (command: string, ...args: unknown[]) => {
        win.executed.push({ command, args });
        return undefined;
      },
      registerCommand: () => ({ dispose() {} }),
    },
  };
}

/** Makes `vscode` resolve to `fake` for everything required from now on; returns a require for the tests' modules. */
export function installFakeVscode(fake: unknown, from: string): NodeJS.Require {
  const mod = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolve = mod._resolveFilename;
  const fakePath = join(__dirname, '__fake_vscode__.js');
  mod._resolveFilename = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? fakePath : resolve.call(this, request, ...rest);
  };
  const req = createRequire(from);
  req.cache[fakePath] = { id: fakePath, filename: fakePath, loaded: true, exports: fake } as unknown as NodeJS.Module;
  return req;
}

/** Lets pending promise callbacks run. */
export async function settle(times = 5): Promise<void> {
  for (let i = 0; i < times; i++) await new Promise((r) => setImmediate(r));
}
