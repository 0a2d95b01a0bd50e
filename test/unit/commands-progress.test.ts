// "Export Patched Model", "Evaluate Patches", "Undo Last Patch" and a repair, driven against a
// stand-in for VS Code (test/unit/fake-vscode.ts) and for the worker's requests: the progress
// notification (the "exporting…" toast among them) has a Cancel button and ends whenever the work
// ends — done, failed, or cancelled; a cancel is told as a cancel, never as a failure, and never
// hides work that had already landed; a toast's button clicked after it went stale says so.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Services } from '../../src/services/services';
import type { ExportResult } from '../../src/worker/protocol';
import { FakeWindow, installFakeVscode, makeFakeVscode, settle } from './fake-vscode';

const win = new FakeWindow();
let exportModel: typeof import('../../src/commands/export-model').exportModel;
let evaluatePatches: typeof import('../../src/commands/evaluate-patches').evaluatePatches;
let undoLastPatch: typeof import('../../src/commands/undo-last').undoLastPatch;
let WorkerError: typeof import('../../src/worker/client').WorkerError;

before(() => {
  const req = installFakeVscode(makeFakeVscode(win), __filename);
  exportModel = (req('../../src/commands/export-model') as typeof import('../../src/commands/export-model')).exportModel;
  evaluatePatches = (req('../../src/commands/evaluate-patches') as typeof import('../../src/commands/evaluate-patches')).evaluatePatches;
  undoLastPatch = (req('../../src/commands/undo-last') as typeof import('../../src/commands/undo-last')).undoLastPatch;
  WorkerError = (req('../../src/worker/client') as typeof import('../../src/worker/client')).WorkerError;
});

interface Pending<T> {
  resolve(v: T): void;
  reject(e: unknown): void;
}

type TokenLike = { isCancellationRequested: boolean; onCancellationRequested(l: () => void): { dispose(): void } };

/**
 * A worker request as WorkerClient makes it: answered when the test says so, and rejected at once
 * with 'cancelled' when its token is cancelled, whatever the worker is doing (a worker busy
 * writing answers nothing until the write is done).
 */
function request<T>(pending: Pending<T>[], token?: TokenLike): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    pending.push({ resolve, reject });
    token?.onCancellationRequested(() => reject(new WorkerError('cancelled', 'the request was cancelled')));
  });
}

/** Services with a loaded model whose worker answers exports only when the test says so. */
function services(modelDir = '/models/tiny') {
  const calls: { dir: string; token?: TokenLike }[] = [];
  const pending: Pending<ExportResult>[] = [];
  const s = {
    model: {
      stores: {},
      info: { name: 'tiny', dir: modelDir },
      errorMessage: null,
      applicablePatches: () => [{ id: 'p1' }],
    },
    repairs: {
      exportModel(dir: string, _patches: unknown, options: { token?: TokenLike } = {}) {
        calls.push({ dir, token: options.token });
        return request(pending, options.token);
      },
    },
  };
  return { s: s as unknown as Services, calls, pending };
}

function lastProgress() {
  const p = win.progress.at(-1);
  assert.ok(p, 'a progress notification was shown');
  return p;
}

describe('Export Patched Model: the progress notification', () => {
  it('ends when the export is written, before the outcome is told', async () => {
    const { s, pending } = services();
    const run = exportModel.run(s, '/out/tiny-repaired') as Promise<ExportResult | undefined>;
    await settle();
    const p = lastProgress();
    assert.match(p.title, /exporting/);
    assert.equal(p.up, true);
    pending[0].resolve({ dir: '/out/tiny-repaired', neurons: 3 });
    assert.deepEqual(await run, { dir: '/out/tiny-repaired', neurons: 3 });
    assert.equal(p.up, false);
    assert.ok(win.toast(/exported tiny with 1 patch\(es\) \(3 neurons changed\) to \/out\/tiny-repaired/));
  });

  it('ends when the export fails, and says why', async () => {
    const { s, pending } = services();
    const run = exportModel.run(s, '/proc/x') as Promise<unknown>;
    await settle();
    const p = lastProgress();
    pending[0].reject(new WorkerError('export-failed', '/proc is not writable'));
    assert.equal(await run, undefined);
    assert.equal(p.up, false);
    const t = win.toast(/export failed/);
    assert.equal(t?.severity, 'error');
    assert.match(t!.text, /\/proc is not writable/);
  });

  it('can be cancelled: the export is asked to stop, and the notification ends with its request', async () => {
    const { s, calls } = services();
    const run = exportModel.run(s, '/out/big') as Promise<unknown>;
    await settle();
    const p = lastProgress();
    assert.equal(p.cancellable, true, 'the notification has a Cancel button');
    p.cancel();
    await settle();
    assert.equal(p.up, false, 'the notification is gone although the worker never answered');
    assert.equal(calls[0].token?.isCancellationRequested, true, 'the export was asked to stop');
    assert.equal(await run, undefined);
    const t = win.toast(/export/i);
    assert.notEqual(t?.severity, 'error', 'a cancel the user asked for is not an error');
    assert.match(t!.text, /cancelled/);
  });

  it('ends when the worker dies mid-export', async () => {
    const { s, pending } = services();
    const run = exportModel.run(s, '/out/crash') as Promise<unknown>;
    await settle();
    const p = lastProgress();
    pending[0].reject(new WorkerError('worker-crashed', 'the model worker stopped before answering export'));
    assert.equal(await run, undefined);
    assert.equal(p.up, false);
  });
});

describe('Export Patched Model: the outcome toast', () => {
  it('"Use This Model" switches to the exported folder', async () => {
    const { s, pending } = services();
    const run = exportModel.run(s, '/out/a') as Promise<unknown>;
    await settle();
    pending[0].resolve({ dir: '/out/a', neurons: 1 });
    await run;
    const t = win.toast(/exported tiny/)!;
    assert.deepEqual(t.buttons, ['Use This Model']);
    win.executed.length = 0;
    t.click('Use This Model');
    await settle();
    assert.deepEqual(win.executed, [{ command: 'starRepair.selectModelFolder', args: ['/out/a'] }]);
  });

  it('"Use This Model" clicked after that model was loaded another way does not reload it', async () => {
    const { s, pending } = services();
    const run = exportModel.run(s, '/out/b') as Promise<unknown>;
    await settle();
    pending[0].resolve({ dir: '/out/b', neurons: 1 });
    await run;
    const t = win.toast(/exported tiny/)!;
    (s.model as unknown as { info: { dir: string } }).info = { ...s.model.info!, dir: '/out/b' };
    win.executed.length = 0;
    t.click('Use This Model');
    await settle();
    assert.deepEqual(win.executed, [], 'no second load of the model already in use');
    assert.match(win.toasts.at(-1)!.text, /already/);
  });
});

describe('Evaluate Patches: cancelling', () => {
  it('ends the progress at once and is told as a cancel, not a failure', async () => {
    const pending: Pending<unknown>[] = [];
    const s = {
      model: { stores: {}, info: { name: 'tiny', dir: '/m' }, errorMessage: null },
      repairs: {
        evaluationPlan: () => ({ items: [{}], regression: [] }),
        evaluate: (_plan: unknown, options: { token?: TokenLike } = {}) => request(pending, options.token),
      },
    } as unknown as Services;
    const run = evaluatePatches.run(s) as Promise<unknown>;
    await settle();
    const p = lastProgress();
    p.cancel();
    await settle();
    assert.equal(p.up, false);
    assert.equal(await run, undefined);
    const t = win.toasts.at(-1)!;
    assert.notEqual(t.severity, 'error');
    assert.match(t.text, /cancelled/);
  });
});

describe('Undo Last Patch: the Redo button', () => {
  it('clicked after the patch left the history says so instead of doing nothing silently', async () => {
    const patch = { id: 'p3', method: 'star', createdAt: '2026-03-04T06:06:00Z', failureIds: ['f1'], stats: { neurons: 4 } };
    const history = new Map([[patch.id, { patch, enabled: true }]]);
    const s = {
      model: { stores: {}, info: { name: 'tiny', dir: '/m' }, errorMessage: null },
      repairs: {
        undoLast: async () => {
          const e = history.get(patch.id)!;
          e.enabled = false;
          return e;
        },
        redo: async (id: string) => {
          const e = history.get(id);
          if (e) e.enabled = true;
          return e !== undefined;
        },
      },
    } as unknown as Services;
    assert.equal(await undoLastPatch.run(s), 'p3');
    const t = win.toast(/undid the STAR patch/)!;
    assert.deepEqual(t.buttons, ['Redo']);
    history.delete(patch.id); // removed in Manage Patches while the toast was up
    const before = win.toasts.length;
    t.click('Redo');
    await settle();
    assert.equal(win.toasts.length, before + 1, 'the click is answered');
    assert.match(win.toasts.at(-1)!.text, /no longer in the history; nothing to redo/);
  });
});

describe('Repairs behind a progress notification', () => {
  let repairWithProgress: typeof import('../../src/services/repair-ui').repairWithProgress;
  before(() => {
    const req = installFakeVscode(makeFakeVscode(win), __filename);
    repairWithProgress = (req('../../src/services/repair-ui') as typeof import('../../src/services/repair-ui')).repairWithProgress;
  });

  const failure = { id: 'f1', desired: 'return x' } as unknown as import('../../src/failures/failure').Failure;

  const summary = {
    patch: { id: 'p9', method: 'star', createdAt: '2026-03-04T06:06:00Z', failureIds: ['f1'], scores: { generalisation: 1, specificity: 0.5 }, stats: { neurons: 2, ms: 900 } },
    fixed: [failure], unfixed: [], undoneByGuard: false, keptDisabled: false, belowThreshold: true, threshold: 0.9, wouldFix: 1,
  };

  /** Services whose repair reports one step, then ends as `answer` says (given the repair's token). */
  function repairServices(answer: (token: TokenLike) => Promise<unknown>) {
    const state = { enabled: true };
    const s = {
      repairs: {
        repair: (_ids: string[], options: { token: TokenLike; onProgress?: (p: unknown) => void }) => {
          options.onProgress?.({ phase: 'step', epoch: 1, epochs: 4, positionsFixed: 1, positionsTotal: 2, loss: 0.5 });
          return answer(options.token);
        },
        undo: async () => {
          const was = state.enabled;
          state.enabled = false;
          return was;
        },
      },
      showPanel: async () => undefined,
    } as unknown as Services;
    return { s, state };
  }

  it('Cancel while the worker repairs ends the notification and says the model is unchanged', async () => {
    const pending: Pending<unknown>[] = [];
    const { s } = repairServices((token) => request(pending, token));
    const run = repairWithProgress(s, [failure], 'STAR Repair: repairing the model');
    await settle();
    const p = lastProgress();
    assert.match(p.reports[0]?.message ?? '', /epoch 1\/4 · 1\/2 tokens right · loss 0\.500/);
    p.cancel();
    assert.equal(await run, undefined);
    assert.equal(p.up, false);
    assert.match(win.toasts.at(-1)!.text, /repair cancelled; the model is unchanged/);
  });

  it('Cancel pressed after the worker answered (the patch being recorded) does not hide the patch that landed', async () => {
    // RepairService records the patch and re-sends the enabled ones after the worker's answer; a
    // cancel then no longer stops anything, so the outcome is the repair, not "unchanged".
    let answered!: (v: unknown) => void;
    const { s } = repairServices(() => new Promise((resolve) => (answered = resolve)));
    const run = repairWithProgress(s, [failure], 'STAR Repair: repairing the model');
    await settle();
    const p = lastProgress();
    p.cancel();
    await settle();
    answered(summary);
    assert.equal(await run, summary);
    assert.equal(p.up, false);
    assert.ok(win.toast(/Fixed "return x"/), 'the repair is told');
    assert.doesNotMatch(win.toasts.at(-1)!.text, /cancelled/);
  });

  it('"Undo Patch" clicked after the patch was undone another way says so and changes nothing', async () => {
    const { s, state } = repairServices(async () => summary);
    assert.equal(await repairWithProgress(s, [failure], 'STAR Repair: repairing the model'), summary);
    assert.equal(lastProgress().up, false);
    const t = win.toast(/Fixed "return x"/)!;
    assert.deepEqual(t.buttons, ['Undo Patch', 'Show in Panel']);
    state.enabled = false; // undone from the panel while the toast was up
    t.click('Undo Patch');
    await settle();
    assert.equal(state.enabled, false);
    assert.match(win.toasts.at(-1)!.text, /was already undone/);
  });
});
