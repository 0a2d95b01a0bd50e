// The panel snapshot built from the extension's state satisfies the panel's contract
// (validatePanelState), and maps the model (its weights too), patches, reports, failures and a
// running repair faithfully.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPanelState, patchSummary, progressForPanel, PROMPT_TAIL_CHARS } from '../../src/services/panel-state';
import { describeWeights, validatePanelState } from '../../src/panel/messages';
import type { Failure } from '../../src/failures/failure';
import type { Patch } from '../../src/repair/patch';
import type { PatchEntry } from '../../src/repair/patch-store';
import type { ModelInfo } from '../../src/worker/protocol';
import type { PatchReport } from '../../src/services/side-stores';

const info: ModelInfo = {
  name: 'tiny', dir: '/m', architecture: 'LlamaForCausalLM', layers: 2, neurons: 8, hidden: 2, vocab: 10, context: 64, params: 1234,
  dtype: 'F32', executionProvider: 'cpu', fallbacks: [{ provider: 'webgpu', reason: 'no adapter' }], fingerprint: 'fp',
};

function patch(id: string, layers: Patch['layers'], scores: Patch['scores']): Patch {
  return {
    id, modelFingerprint: 'fp', method: 'star', mode: 'iter', options: {}, failureIds: ['f1'], createdAt: '2026-01-01T00:00:00.000Z',
    layers, scores, stats: { ms: 120, peakRssMb: 50, neurons: 2, params: 4 },
  };
}

const failures: Failure[] = [
  { id: 'f1', createdAt: '2026-01-01T00:00:00.000Z', source: 'rejected', languageId: 'python', prompt: 'x'.repeat(3000), rejected: 'bad', desired: ' good', status: 'repaired', uri: 'file:///a.py', line: 3 },
  { id: 'f2', createdAt: '2026-01-02T00:00:00.000Z', source: 'manual', languageId: 'python', prompt: 'def f():', desired: ' pass', status: 'pending' },
];

test('patch summaries: per-neuron delta norms, scores before → after, positions from the report', () => {
  const p = patch('p1', [{ layer: 1, rows: [2, 5], deltas: new Float32Array([3, 4, 0, 1]) }], { effectiveness: 1, generalisation: null, specificity: 0.9 });
  const report: PatchReport = {
    patchId: 'p1', scoresBefore: { effectiveness: 0, generalisation: null, specificity: null },
    positions: [{ failureId: 'f1', token: ' good', pBefore: 0.1, pAfter: 0.8 }], evaluation: null, fixed: ['f1'], unfixed: [],
  };
  const s = patchSummary({ patch: p, enabled: true, addedAt: p.createdAt }, report);
  assert.deepEqual(s.layers, [{ layer: 1, rows: [2, 5], norms: [5, 1] }]);
  assert.equal(s.neurons, 2);
  assert.equal(s.params, 4);
  assert.deepEqual(s.scores, { effectiveness: { before: 0, after: 1 }, generalisation: null, specificity: { before: null, after: 0.9 } });
  assert.deepEqual(s.positions, [{ token: ' good', pBefore: 0.1, pAfter: 0.8 }]);
  // Without a report (e.g. an imported patch) the scores keep no "before".
  assert.deepEqual(patchSummary({ patch: p, enabled: false, addedAt: p.createdAt }, undefined).scores.effectiveness, { before: null, after: 1 });
});

test('the snapshot passes the panel contract: newest first, prompt tails, model summary, running repair', () => {
  const entries: PatchEntry[] = [
    { patch: patch('p1', [{ layer: 0, rows: [1], deltas: new Float32Array([1, 1]) }], { effectiveness: 1, generalisation: 0.5, specificity: 1 }), enabled: true, addedAt: 'x' },
    { patch: patch('p2', [{ layer: 1, rows: [7], deltas: new Float32Array([0, 2]) }], { effectiveness: 0, generalisation: null, specificity: null }), enabled: false, addedAt: 'y' },
  ];
  const state = buildPanelState({
    info, failures, patches: entries, report: () => undefined,
    running: { failureIds: ['f2'], method: 'star', progress: { method: 'star', phase: 'step', epoch: 3, epochs: 10, loss: 1.5, positionsFixed: 1, positionsTotal: 2 } },
  });
  const v = validatePanelState(state);
  assert.ok(v.ok, v.ok ? '' : v.error);
  assert.deepEqual(state.failures.map((f) => f.id), ['f2', 'f1']);
  assert.equal(state.failures[1].prompt.length, PROMPT_TAIL_CHARS);
  // What was left out is counted, so the card can say so (never cut without saying where the rest is).
  assert.equal(state.failures[1].promptOmitted, failures[0].prompt.length - PROMPT_TAIL_CHARS);
  assert.equal('promptOmitted' in state.failures[0], false);
  assert.equal(state.failures[1].line, 3);
  assert.equal('uri' in state.failures[0], false);
  assert.deepEqual(state.patches.map((p) => p.id), ['p2', 'p1']);
  assert.equal(state.model?.activePatches, 1);
  assert.equal(state.model?.neuronsPerLayer, 8);
  assert.equal(state.model?.fallbackReason, 'webgpu: no adapter');
  assert.deepEqual(state.repair && { ...state.repair }, { running: true, failureIds: ['f2'], method: 'star', epoch: 3, epochs: 10, loss: 1.5, positionsFixed: 1, positionsTotal: 2, message: 'patching' });
});

test('the model summary carries the weights the worker runs on; a worker that does not say gives none', () => {
  const state = buildPanelState({ info: { ...info, weights: 'int8', weightBytes: 570_000_000 }, failures: [], patches: [], report: () => undefined, running: null });
  const v = validatePanelState(state);
  assert.ok(v.ok, v.ok ? '' : v.error);
  assert.deepEqual(state.model?.weights, { format: 'int8', bytes: 570_000_000 });
  assert.equal(describeWeights(state.model!.weights!), 'int8 weights, 0.57 GB');
  const older = buildPanelState({ info, failures: [], patches: [], report: () => undefined, running: null });
  assert.ok(validatePanelState(older).ok);
  assert.equal('weights' in older.model!, false);
});

test('no model yet: an empty, valid snapshot; a patch outside the model is left off the map', () => {
  const empty = buildPanelState({ info: null, failures: [], patches: [], report: () => undefined, running: null });
  assert.deepEqual(empty, { model: null, failures: [], repair: null, patches: [] });
  const outside = buildPanelState({
    info, failures: [], report: () => undefined, running: null,
    patches: [{ patch: patch('big', [{ layer: 5, rows: [1], deltas: new Float32Array([1, 1]) }], { effectiveness: 1, generalisation: null, specificity: null }), enabled: true, addedAt: 'x' }],
  });
  assert.equal(outside.patches.length, 0);
  assert.ok(validatePanelState(outside).ok);
});

test('progress for the panel never breaks its invariants', () => {
  assert.deepEqual(progressForPanel(null), { epoch: 0, epochs: 0, loss: null, positionsFixed: 0, positionsTotal: 0, message: 'starting' });
  // An iter repair can run more epochs than one target's budget: epochs grows with them.
  const p = progressForPanel({ method: 'star', phase: 'step', epoch: 12, epochs: 10, loss: Number.NaN, positionsFixed: 5, positionsTotal: 3 });
  assert.equal(p.epochs, 12);
  assert.equal(p.loss, null);
  assert.equal(p.positionsFixed, 3);
});
