// explainNeuronDelta (src/repair/explain.ts): the LM head applied to a neuron's delta, the tokens it
// pushes up and down, and the delta's norm — on a hand-made head where every logit is known.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainNeuronDelta } from '../../src/repair/explain';

// 6 tokens, d = 2: token v's head row is [v - 2, 1] → logit change = (v - 2)·δ0 + δ1.
const V = 6;
const head = Float32Array.from(Array.from({ length: V }, (_, v) => [v - 2, 1]).flat());
const names = ['a', 'b', 'c', 'd', 'e', 'f'];

test('explainNeuronDelta: logits are the LM head times the delta; up largest first, down most lowered first', () => {
  const r = explainNeuronDelta(head, V, [2, 0.5], (v) => names[v], 2);
  assert.deepEqual(r.up, [{ token: 'f', logit: 6.5 }, { token: 'e', logit: 4.5 }]);
  assert.deepEqual(r.down, [{ token: 'a', logit: -3.5 }, { token: 'b', logit: -1.5 }]);
  assert.equal(r.deltaNorm, Math.sqrt(4.25));
});

test('explainNeuronDelta: five each way by default; a negated delta swaps up and down', () => {
  const r = explainNeuronDelta(head, V, [1, 0], (v) => names[v]);
  assert.equal(r.up.length, 5);
  assert.equal(r.down.length, 5);
  const n = explainNeuronDelta(head, V, [-1, 0], (v) => names[v]);
  assert.deepEqual(n.up.map((x) => x.token), r.down.map((x) => x.token));
  assert.deepEqual(n.up.map((x) => x.logit), r.down.map((x) => -x.logit + 0)); // + 0: no -0
});

test('explainNeuronDelta: a zero delta has norm 0 and moves no logit', () => {
  const r = explainNeuronDelta(head, V, [0, 0], (v) => names[v], 3);
  assert.equal(r.deltaNorm, 0);
  assert.ok([...r.up, ...r.down].every((x) => x.logit === 0));
});
