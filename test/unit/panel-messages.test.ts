// The panel's message contract in plain Node: the validators accept what the contract allows
// and reject the rest with a message naming the bad field; the hub validates both ways,
// re-sends the snapshot on `ready` and folds progress into it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PanelHub } from '../../src/panel/hub';
import {
  applyRepairProgress,
  describeWeights,
  PanelMessageError,
  validateExtensionMessage,
  validateNeuronDetails,
  validatePanelState,
  validateRepairProgress,
  validateWebviewMessage,
  type ExtensionToWebview,
  type PanelState,
  type WebviewToExtension,
} from '../../src/panel/messages';
import { fixtureState } from '../e2e/webview-fixture';

function rejects(v: { ok: boolean; error?: string }, pattern: RegExp): void {
  assert.equal(v.ok, false, 'expected a rejection');
  assert.match(v.error ?? '', pattern);
}

/** A deep copy with one change, for "this single defect is caught" cases. */
function mutate(f: (s: PanelState & Record<string, unknown>) => void): unknown {
  const s = structuredClone(fixtureState()) as PanelState & Record<string, unknown>;
  f(s);
  return s;
}

describe('validatePanelState', () => {
  it('accepts the fixture and returns an equal, fresh value', () => {
    const s = fixtureState();
    const v = validatePanelState(s);
    assert.ok(v.ok);
    assert.deepEqual(v.value, s);
    assert.notEqual(v.value, s);
  });

  it('accepts the empty state and optional fields left out', () => {
    assert.ok(validatePanelState({ model: null, failures: [], repair: null, patches: [] }).ok);
    const v = validatePanelState(
      mutate((s) => {
        delete s.model!.fallbackReason;
        delete s.model!.weights;
        delete s.failures[0].uri;
        delete s.failures[0].line;
        delete s.failures[0].rejected;
        s.repair!.loss = null;
        delete s.repair!.message;
      }),
    );
    assert.ok(v.ok);
    assert.equal('uri' in v.value.failures[0], false, 'absent optionals stay absent');
    assert.equal('weights' in v.value.model!, false, 'a worker that did not say which weights: none shown');
  });

  it('reads the model\'s weights: a format in use (never auto) and a byte count', () => {
    const fixture = validatePanelState(fixtureState());
    assert.ok(fixture.ok);
    assert.deepEqual(fixture.value.model?.weights, { format: 'int8', bytes: 29_884_416 });
    for (const format of ['fp32', 'int8', 'int4'] as const) {
      const v = validatePanelState(mutate((s) => (s.model!.weights = { format, bytes: 1 })));
      assert.ok(v.ok && v.value.model?.weights?.format === format);
    }
    rejects(validatePanelState(mutate((s) => ((s.model!.weights as unknown as Record<string, unknown>).format = 'auto'))), /^state\.model\.weights\.format: expected one of fp32, int8, int4, got "auto"$/);
    rejects(validatePanelState(mutate((s) => ((s.model!.weights as unknown as Record<string, unknown>).format = 'q4_0'))), /^state\.model\.weights\.format: expected one of fp32, int8, int4, got "q4_0"$/);
    rejects(validatePanelState(mutate((s) => ((s.model!.weights as unknown as Record<string, unknown>).bytes = '30 MB'))), /^state\.model\.weights\.bytes: expected an integer ≥ 1, got "30 MB"$/);
    rejects(validatePanelState(mutate((s) => (s.model!.weights!.bytes = 0))), /^state\.model\.weights\.bytes: expected an integer ≥ 1, got 0$/);
    rejects(validatePanelState(mutate((s) => ((s.model as unknown as Record<string, unknown>).weights = 'int8'))), /^state\.model\.weights: expected an object, got "int8"$/);
  });

  it('drops fields it does not know', () => {
    const v = validatePanelState(mutate((s) => ((s.failures[0] as unknown as Record<string, unknown>)['secret'] = 1)));
    assert.ok(v.ok);
    assert.equal('secret' in v.value.failures[0], false);
  });

  it('names the path of the first bad field', () => {
    rejects(validatePanelState(null), /^state: expected an object, got null$/);
    rejects(validatePanelState([]), /^state: expected an object, got an array of 0$/);
    rejects(validatePanelState(mutate((s) => ((s as Record<string, unknown>)['failures'] = 'none'))), /^state\.failures: expected an array, got "none"$/);
    rejects(validatePanelState(mutate((s) => ((s.failures[1] as unknown as Record<string, unknown>)['status'] = 'fixed'))), /^state\.failures\[1\]\.status: expected one of pending, repaired, unfixed, discarded, got "fixed"$/);
    rejects(validatePanelState(mutate((s) => (s.failures[0].createdAt = 'yesterday'))), /failures\[0\]\.createdAt: expected an ISO 8601 timestamp/);
    rejects(validatePanelState(mutate((s) => (s.failures[0].line = 1.5))), /failures\[0\]\.line: expected an integer ≥ 0, got 1\.5/);
    rejects(validatePanelState(mutate((s) => (s.failures[0].id = ''))), /failures\[0\]\.id: expected a non-empty id/);
    rejects(validatePanelState(mutate((s) => (s.model!.params = Number.NaN))), /model\.params: expected an integer ≥ 0, got NaN/);
    rejects(validatePanelState(mutate((s) => (s.model!.layers = 0))), /model\.layers: expected at least 1 layer, got 0/);
    rejects(validatePanelState(mutate((s) => (s.repair!.loss = Number.POSITIVE_INFINITY))), /repair\.loss: expected a finite number, got Infinity/);
    rejects(validatePanelState(mutate((s) => (s.repair!.epoch = 11))), /repair\.epoch: expected at most epochs \(10\), got 11/);
    rejects(validatePanelState(mutate((s) => (s.repair!.positionsFixed = 6))), /repair\.positionsFixed: expected at most positionsTotal \(5\), got 6/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].scores.generalisation!.after = 1.5))), /patches\[1\]\.scores\.generalisation\.after: expected a number in \[0, 1\], got 1\.5/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].positions[2].pBefore = -0.1))), /patches\[1\]\.positions\[2\]\.pBefore: expected a number in \[0, 1\]/);
    rejects(validatePanelState(mutate((s) => (s.patches[0].ms = -1))), /patches\[0\]\.ms: expected a number ≥ 0, got -1/);
    rejects(validatePanelState(mutate((s) => (s.patches[0].enabled = 'yes' as unknown as boolean))), /patches\[0\]\.enabled: expected a boolean/);
  });

  it('checks the neuron map data against the model', () => {
    rejects(validatePanelState(mutate((s) => s.patches[1].layers[0].norms.pop())), /patches\[1\]\.layers\[0\]: rows \(2\) and norms \(1\) must have the same length/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].layers[1].rows[1] = 700))), /patches\[1\]\.layers\[1\]\.rows\[1\]: neuron 700 appears twice in this layer/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].layers[2].layer = 3))), /patches\[1\]\.layers\[2\]\.layer: layer 3 appears twice in this patch/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].layers[2].layer = 8))), /patches\[1\]\.layers\[2\]\.layer: expected a layer below model\.layers \(8\), got 8/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].layers[2].rows[1] = 1536))), /rows\[1\]: expected a neuron below model\.neuronsPerLayer \(1536\), got 1536/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].layers[0].norms[0] = -0.5))), /norms\[0\]: expected a number ≥ 0/);
    // Without a model the ranges cannot be checked, but the shape still is.
    assert.ok(validatePanelState(mutate((s) => ((s.model = null), (s.patches[1].layers[2].layer = 80)))).ok);
  });

  it('refuses duplicate ids', () => {
    rejects(validatePanelState(mutate((s) => s.failures.push(structuredClone(s.failures[0])))), /state\.failures\[4\]\.id: duplicate id "f-sum"/);
    rejects(validatePanelState(mutate((s) => (s.patches[1].id = 'p-older'))), /state\.patches\[1\]\.id: duplicate id "p-older"/);
  });

  it('bounds string sizes', () => {
    rejects(validatePanelState(mutate((s) => (s.failures[0].id = 'x'.repeat(300)))), /failures\[0\]\.id: expected at most 256 characters, got a string of 300 characters/);
  });
});

describe('describeWeights', () => {
  it('words the format and the size as the panel and the status bar show them', () => {
    assert.equal(describeWeights({ format: 'int8', bytes: 570_000_000 }), 'int8 weights, 0.57 GB');
    assert.equal(describeWeights({ format: 'fp32', bytes: 1_976_000_000 }), 'fp32 weights, 1.98 GB');
    assert.equal(describeWeights({ format: 'int4', bytes: 29_884_416 }), 'int4 weights, 29.9 MB');
    assert.equal(describeWeights({ format: 'fp32', bytes: 100_000_000 }), 'fp32 weights, 0.10 GB');
    assert.equal(describeWeights({ format: 'fp32', bytes: 52_224 }), 'fp32 weights, 52.2 kB');
  });
});

describe('validateExtensionMessage', () => {
  it('accepts each message kind', () => {
    const good: ExtensionToWebview[] = [
      { type: 'state', state: fixtureState() },
      { type: 'repairProgress', progress: { epoch: 1, epochs: 2, loss: null, positionsFixed: 0, positionsTotal: 3 } },
      {
        type: 'neuronDetails',
        details: { patchId: 'p', layer: 0, neuron: 5, deltaNorm: 0.5, up: [{ token: 'a', logit: 1 }], down: [], error: 'LM head not loaded' },
      },
    ];
    for (const m of good) {
      const v = validateExtensionMessage(m);
      assert.ok(v.ok, v.ok ? '' : v.error);
      assert.deepEqual(v.value, m);
    }
  });

  it('rejects unknown kinds and bad payloads', () => {
    rejects(validateExtensionMessage({ type: 'ready' }), /^message\.type: expected one of state, repairProgress, neuronDetails, got "ready"$/);
    rejects(validateExtensionMessage({ type: 'state' }), /^message\.state: expected an object, got nothing$/);
    rejects(validateExtensionMessage('state'), /^message: expected an object/);
    rejects(validateExtensionMessage({ type: 'neuronDetails', details: { patchId: 'p', layer: 0, neuron: 1, deltaNorm: 1, up: [{ token: 'a' }], down: [] } }), /details\.up\[0\]\.logit: expected a finite number, got nothing/);
    rejects(validateRepairProgress({ epoch: -1, epochs: 2, loss: 0, positionsFixed: 0, positionsTotal: 0 }), /^progress\.epoch: expected an integer ≥ 0, got -1$/);
    // The details carry no attribution (issue 18: it was always empty; the patch does not keep one): an old sender's field is dropped.
    const old = validateNeuronDetails({ patchId: 'p', layer: 0, neuron: 1, attribution: 0.5, deltaNorm: 1, up: [], down: [] });
    assert.ok(old.ok && !('attribution' in old.value));
  });
});

describe('validateWebviewMessage', () => {
  it('accepts every message the webview may send', () => {
    const good: WebviewToExtension[] = [
      { type: 'ready' },
      { type: 'repair', failureIds: ['a'] },
      { type: 'repairBatch', failureIds: ['a', 'b'] },
      { type: 'discard', failureId: 'a' },
      { type: 'openFailure', failureId: 'a' },
      { type: 'cancelRepair' },
      { type: 'togglePatch', patchId: 'p', enabled: false },
      { type: 'undoPatch', patchId: 'p' },
      { type: 'exportPatch', patchId: 'p' },
      { type: 'selectNeuron', patchId: 'p', layer: 3, neuron: 700 },
    ];
    for (const m of good) {
      const v = validateWebviewMessage({ ...m, extra: 'dropped' });
      assert.ok(v.ok, v.ok ? '' : v.error);
      assert.deepEqual(v.value, m);
    }
  });

  it('rejects malformed ones', () => {
    rejects(validateWebviewMessage({ type: 'eval', code: '1' }), /^message\.type: expected one of ready, repair, /);
    rejects(validateWebviewMessage({ type: 'repair', failureIds: [] }), /^message\.failureIds: expected at least one failure id/);
    rejects(validateWebviewMessage({ type: 'repair', failureIds: ['a', 'a'] }), /^message\.failureIds: expected distinct failure ids/);
    rejects(validateWebviewMessage({ type: 'repairBatch', failureIds: [1] }), /^message\.failureIds\[0\]: expected a string, got 1$/);
    rejects(validateWebviewMessage({ type: 'discard' }), /^message\.failureId: expected a string, got nothing$/);
    rejects(validateWebviewMessage({ type: 'togglePatch', patchId: 'p', enabled: 'true' }), /^message\.enabled: expected a boolean/);
    rejects(validateWebviewMessage({ type: 'selectNeuron', patchId: 'p', layer: -1, neuron: 0 }), /^message\.layer: expected an integer ≥ 0, got -1$/);
    rejects(validateWebviewMessage(undefined), /^message: expected an object, got nothing$/);
  });
});

describe('applyRepairProgress', () => {
  it('folds progress into a running repair and replaces the message', () => {
    const s = fixtureState();
    const next = applyRepairProgress(s, { epoch: 5, epochs: 10, loss: 0.25, positionsFixed: 3, positionsTotal: 5 });
    assert.ok(next);
    assert.deepEqual(next.repair, { running: true, failureIds: ['f-sum', 'f-join'], method: 'STAR', epoch: 5, epochs: 10, loss: 0.25, positionsFixed: 3, positionsTotal: 5 });
    assert.equal(s.repair!.epoch, 3, 'the input is not modified');
  });

  it('ignores progress when no repair is running', () => {
    const s = fixtureState();
    s.repair!.running = false;
    assert.equal(applyRepairProgress(s, { epoch: 5, epochs: 10, loss: 0.25, positionsFixed: 3, positionsTotal: 5 }), null);
    s.repair = null;
    assert.equal(applyRepairProgress(s, { epoch: 5, epochs: 10, loss: 0.25, positionsFixed: 3, positionsTotal: 5 }), null);
  });
});

describe('PanelHub', () => {
  function setup() {
    const logs: string[] = [];
    const sent: ExtensionToWebview[] = [];
    const got: WebviewToExtension[] = [];
    const hub = new PanelHub((l) => logs.push(l));
    hub.onMessage((m) => got.push(m));
    return { hub, logs, sent, got, attach: () => hub.attach((m) => sent.push(m)) };
  }

  it('waits for ready, then sends the last snapshot; again after each reload', () => {
    const { hub, sent, got, attach } = setup();
    hub.postState(fixtureState());
    attach();
    assert.equal(sent.length, 0, 'nothing before ready');
    hub.receive({ type: 'ready' });
    assert.equal(sent.length, 1);
    assert.equal(sent[0].type, 'state');
    assert.deepEqual(got, [{ type: 'ready' }]);
    hub.suspend(); // hidden: the document is gone
    hub.postProgress({ epoch: 4, epochs: 10, loss: 0.3, positionsFixed: 3, positionsTotal: 5 });
    assert.equal(sent.length, 1, 'nothing sent while hidden');
    hub.receive({ type: 'ready' }); // shown again
    assert.equal(sent.length, 2);
    const again = sent[1];
    assert.ok(again.type === 'state');
    assert.equal(again.state.repair?.epoch, 4, 'the re-sent snapshot carries the progress made while hidden');
  });

  it('sends progress while connected and drops it when no repair runs', () => {
    const { hub, sent, logs, attach } = setup();
    attach();
    hub.receive({ type: 'ready' });
    assert.equal(hub.postProgress({ epoch: 1, epochs: 10, loss: 1, positionsFixed: 0, positionsTotal: 5 }), false, 'no state yet');
    hub.postState(fixtureState());
    assert.equal(hub.postProgress({ epoch: 4, epochs: 10, loss: 0.3, positionsFixed: 3, positionsTotal: 5 }), true);
    assert.deepEqual(sent.map((m) => m.type), ['state', 'repairProgress']);
    assert.match(logs[0], /dropped repair progress: no repair is running/);
  });

  it('drops and logs malformed messages from the webview', () => {
    const { hub, logs, got, attach } = setup();
    attach();
    hub.receive({ type: 'repair', failureIds: 'all' });
    hub.receive('ready');
    assert.deepEqual(got, []);
    assert.equal(logs.length, 2);
    assert.match(logs[0], /^\[panel\] dropped a malformed message from the webview: message\.failureIds: expected an array, got "all"$/);
    hub.receive({ type: 'undoPatch', patchId: 'p-star' });
    assert.deepEqual(got, [{ type: 'undoPatch', patchId: 'p-star' }]);
  });

  it('refuses to send what breaks the contract', () => {
    const { hub, attach, sent } = setup();
    attach();
    hub.receive({ type: 'ready' });
    assert.throws(() => hub.postState({ ...fixtureState(), failures: [{}] } as unknown as PanelState), (e: unknown) => e instanceof PanelMessageError && /^postState: state\.failures\[0\]\.id/.test(e.message));
    assert.throws(() => hub.postNeuronDetails({ patchId: 'p', layer: 0, neuron: 0, deltaNorm: Number.NaN, up: [], down: [] }), PanelMessageError);
    assert.equal(sent.length, 0);
    assert.equal(hub.state, null, 'a refused state does not replace the snapshot');
  });

  it('keeps going when a listener throws', () => {
    const { hub, logs, got } = setup();
    hub.onMessage(() => {
      throw new Error('boom');
    });
    hub.receive({ type: 'cancelRepair' });
    assert.deepEqual(got, [{ type: 'cancelRepair' }]);
    assert.match(logs[0], /a listener failed on cancelRepair: boom/);
  });

  it('stops sending once detached', () => {
    const { hub, sent, attach } = setup();
    attach();
    hub.receive({ type: 'ready' });
    hub.detach();
    hub.postState(fixtureState());
    assert.equal(sent.length, 0);
    assert.equal(hub.connected, false);
    assert.ok(hub.state);
  });
});
