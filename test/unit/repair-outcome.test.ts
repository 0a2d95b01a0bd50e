// How a repair's progress and outcome are told (src/services/repair-outcome.ts): the phase in the
// same words in the progress notification and the panel, the real outcome, and an "Undo Patch"
// offer only while there is something to undo (issue 18: no stale buttons).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressForPanel } from '../../src/services/panel-state';
import { describeRepair, patchTitle, repairProgressText, type OutcomeInput } from '../../src/services/repair-outcome';
import type { RepairProgressEvent } from '../../src/worker/protocol';

const patch = {
  id: '0b4c1f9e-7d1a-4e0f-9a43-2f8d3c6a1b55',
  method: 'star',
  createdAt: '2026-03-04T05:06:07.000Z',
  failureIds: ['f1'],
  scores: { effectiveness: 1, generalisation: 0.5, specificity: 0.8 },
  stats: { neurons: 12, ms: 2400 },
};
const one = [{ desired: 'sum(xs)' }];
const base: OutcomeInput = { patch, fixed: 1, undoneByGuard: false, keptDisabled: false, belowThreshold: false, threshold: 0.95, wouldFix: 1 };

test('a fixed failure: information, no Undo offer', () => {
  const o = describeRepair(base, one);
  assert.equal(o.warn, false);
  assert.deepEqual(o.actions, ['Show in Panel']);
  assert.match(o.text, /^Fixed "sum\(xs\)" — 12 neuron\(s\) changed in 2\.4 s/);
});

test('the guard undid the patch: the toast says so and offers no Undo (there is nothing left to undo)', () => {
  const o = describeRepair({ ...base, undoneByGuard: true, belowThreshold: true, fixed: 0 }, one);
  assert.equal(o.warn, true);
  assert.deepEqual(o.actions, ['Show in Panel']);
  assert.match(o.text, /^Patch undone: it would have fixed 1 of 1, but kept only 80% .* \(threshold 95%\)/);
});

test("guard 'warn': below the threshold and kept, so Undo Patch is offered", () => {
  const o = describeRepair({ ...base, belowThreshold: true }, one);
  assert.equal(o.warn, true);
  assert.deepEqual(o.actions, ['Undo Patch', 'Show in Panel']);
});

test('nothing fixed: kept disabled, no Undo', () => {
  const o = describeRepair({ ...base, keptDisabled: true, fixed: 0, wouldFix: 0 }, one);
  assert.equal(o.warn, true);
  assert.deepEqual(o.actions, ['Show in Panel']);
  assert.match(o.text, /^Could not fix "sum\(xs\)"/);
});

test('a patch is named by method, time and failures, not by its id', () => {
  const t = patchTitle(patch);
  assert.match(t, /^STAR patch of \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(1 failure\)$/);
  assert.doesNotMatch(t, /0b4c1f9e/);
  assert.match(patchTitle({ ...patch, method: 'mint', failureIds: ['a', 'b'] }), /^MINT patch of .* \(2 failures\)$/);
});

test('a repair phase is told in the same words by the progress notification and the panel; a step by its numbers', () => {
  const event = (phase: RepairProgressEvent['phase']): RepairProgressEvent =>
    ({ method: 'star', phase, epoch: 2, epochs: 8, loss: 0.25, positionsFixed: 3, positionsTotal: 5 });
  for (const phase of ['assess', 'locate', 'evaluate'] as const) {
    const panel = progressForPanel(event(phase)).message;
    assert.ok(panel, phase);
    assert.equal(repairProgressText(event(phase)), `${panel}…`);
  }
  assert.equal(repairProgressText(event('step')), 'epoch 2/8 · 3/5 tokens right · loss 0.250');
  assert.equal(repairProgressText({ ...event('step'), loss: null }), 'epoch 2/8 · 3/5 tokens right');
});
