// Tests for src/repair/mint-math.ts (docs/algorithm.md "Baselines"): traction
// scaling, orthogonality of successive tractions in a layer, the degenerate
// case, the value-vector update and the candidate layers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinalgError } from '../../src/repair/linalg';
import { mintCandidates, mintUpdate, orthogonalise, rescaleTo, traction } from '../../src/repair/mint-math';
import { seededRandom } from '../../src/util/random';

/** Uniform on [-0.5, 0.5), seeded. */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() - 0.5;
}

const isCode = (code: string) => (e: unknown): boolean => e instanceof LinalgError && e.code === code;
const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, x, i) => s + x * b[i], 0);
const norm = (a: Float64Array): number => Math.sqrt(dot(a, a));

test('traction: r = ((l+1)/L)·diff normalised to unit range, so every layer gets diff / range(diff)', () => {
  const diff = new Float64Array([1, -1, 3, 0]); // range 4
  for (const layer of [0, 1, 3]) {
    assert.deepEqual(Array.from(traction(diff, layer, 4)), [0.25, -0.25, 0.75, 0]);
  }
  const r = rng(31);
  const big = Float64Array.from({ length: 50 }, () => 10 * r());
  const tau = traction(big, 5, 12);
  assert.ok(Math.abs(Math.max(...tau) - Math.min(...tau) - 1) < 1e-14, 'unit range');
  const ratio = tau[0] / big[0];
  assert.ok(ratio > 0);
  big.forEach((x, i) => assert.ok(Math.abs(tau[i] - ratio * x) < 1e-14));
  assert.throws(() => traction(new Float64Array([2, 2, 2]), 0, 4), isCode('degenerate'));
  assert.throws(() => traction(diff, 4, 4), isCode('invalid-argument'));
  assert.throws(() => traction(diff, 0, 0), isCode('invalid-argument'));
});

test('orthogonalise on a hand case and with non-orthogonal, zero and dependent used vectors', () => {
  assert.deepEqual(Array.from(orthogonalise(new Float64Array([1, 1, 0]), [new Float64Array([2, 0, 0])])), [0, 1, 0]);
  assert.deepEqual(Array.from(orthogonalise(new Float64Array([1, 2, 3]), [])), [1, 2, 3]);
  const used = [new Float64Array([1, 1, 0, 0]), new Float64Array([0, 0, 0, 0]), new Float64Array([1, 0, 1, 0]), new Float64Array([2, 1, 1, 0])];
  const v = new Float64Array([0.3, -2, 5, 1]);
  const out = orthogonalise(v, used);
  for (const u of used) assert.ok(Math.abs(dot(out, u)) < 1e-12, `not orthogonal to ${Array.from(u)}`);
  // v - out lies in span(used), so it is orthogonal to out.
  assert.ok(Math.abs(dot(v, out) - dot(out, out)) < 1e-12);
});

test('successive tractions in a layer are mutually orthogonal, and the (d+1)-th degenerates', () => {
  const r = rng(32);
  const d = 6, L = 8, layer = 6;
  const used: Float64Array[] = [];
  for (let k = 0; k < d; k++) {
    const diff = Float64Array.from({ length: d }, () => r());
    used.push(orthogonalise(traction(diff, layer, L), used));
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      assert.ok(Math.abs(dot(used[i], used[j])) < 1e-12 * norm(used[i]) * norm(used[j]), `tractions ${i} and ${j}`);
    }
  }
  const extra = traction(Float64Array.from({ length: d }, () => r()), layer, L);
  assert.throws(() => orthogonalise(extra, used), isCode('degenerate'));
  assert.throws(() => orthogonalise(used[0].map((x) => 3 * x), used.slice(0, 2)), isCode('degenerate'));
  assert.throws(() => orthogonalise(new Float64Array(d), []), isCode('degenerate'));
  assert.throws(() => orthogonalise(extra, [new Float64Array(2)]), isCode('shape'));
});

test('mintUpdate is (v + f·τ)/(1+f)', () => {
  const out = mintUpdate(new Float32Array([1, 2]), new Float64Array([0.5, -1]), 0.01);
  assert.ok(Math.abs(out[0] - 1.005 / 1.01) < 1e-15);
  assert.ok(Math.abs(out[1] - 1.99 / 1.01) < 1e-15);
  assert.deepEqual(Array.from(mintUpdate([1, 2], new Float64Array([3, 4]), 0)), [1, 2]);
  assert.deepEqual(Array.from(mintUpdate([1, 2], new Float64Array([3, 4]), 1)), [2, 3]);
  assert.throws(() => mintUpdate([1, 2], new Float64Array([3, 4]), -0.5), isCode('invalid-argument'));
  assert.throws(() => mintUpdate([1], new Float64Array([3, 4]), 0.01), isCode('shape'));
});

test('mintCandidates takes the top neurons of the upper half of the layers only', () => {
  const scores = [new Float64Array([100, 90]), new Float64Array([80, 1]), new Float64Array([3, 7]), new Float64Array([5, 2])];
  assert.deepEqual(mintCandidates(scores, 3).map((c) => [c.layer, c.neuron]), [[2, 1], [3, 0], [2, 0]]);
  const five = [...scores, new Float64Array([0, 0.5])];
  assert.deepEqual(mintCandidates(five).map((c) => c.layer).sort(), [2, 2, 3, 3, 4, 4]); // k = 10 > 6 candidates
});

test('rescaleTo gives an orthogonalised traction back its original norm (the authors\' MINT)', () => {
  const tau = Float64Array.from([3, 4, 0]);
  const used = [Float64Array.from([1, 0, 0])];
  const orth = orthogonalise(tau, used);
  assert.deepEqual([...orth], [0, 4, 0]);
  const back = rescaleTo(orth, tau);
  assert.ok(Math.abs(Math.hypot(...back) - 5) < 1e-12);
  assert.ok(Math.abs(back[0]) < 1e-12 && back[1] > 0, 'same direction as the orthogonalised traction');
  assert.throws(() => rescaleTo(new Float64Array(3), tau), LinalgError);
});
