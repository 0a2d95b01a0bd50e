// Tests for src/repair/locate.ts (docs/algorithm.md "Locating neurons" attribution and selection, "The STAR step" Z,
// §5 row gradient and sign alignment): a hand-computed attribution, the row
// gradient against an explicit double loop and finite differences of a toy loss.

import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinalgError } from '../../src/repair/linalg';
import {
  attributionFromGradient, fittingSelect, fromLinear, fromRowsMajor, gatherActivations, gradientRows, mostHarmfulLayer, selectNeurons, selectionRows, signAlign,
  topLayers, topNeurons, SELECT_MODES,
  type DownProjection,
} from '../../src/repair/locate';
import { loadConfig, parseConfig } from '../../src/model/config';
import { MAX_PATCH_PARAMS } from '../../src/repair/patch';
import { seededRandom } from '../../src/util/random';

/** Uniform on [-0.5, 0.5), seeded. */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() - 0.5;
}

const isCode = (code: string) => (e: unknown): boolean => e instanceof LinalgError && e.code === code;
const entries = (m: Map<number, number[]>): [number, number[]][] => [...m.entries()];

/** Attribution formed through the value vectors, T·m·d: score_i = sqrt(Σ_t (z_{t,i} · dPdh_t · W_i)²). The reference attributionFromGradient is checked against. */
function attributionThroughRows(z: Float32Array, dPdh: Float32Array, down: DownProjection, T: number): Float64Array {
  const { m, d } = down;
  const scores = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const w = down.row(i);
    let sumSq = 0;
    for (let t = 0; t < T; t++) {
      let g = 0;
      for (let k = 0; k < d; k++) g += dPdh[t * d + k] * w[k];
      sumSq += (z[t * m + i] * g) ** 2;
    }
    scores[i] = Math.sqrt(sumSq);
  }
  return scores;
}

test('attribution on a hand-built case', () => {
  // W rows (value vectors): W_0 = (1, 2), W_1 = (0, -1). T = 2, m = 2, d = 2, P = 0.5.
  const z = new Float32Array([1, 2, 3, 0]);
  const dPdh = new Float32Array([0.5, -1, 2, 1]);
  // dP/dz = dPdh · W_i: t0 (-1.5, 1), t1 (4, -1); dL/dz = −dP/dz / P: t0 (3, -2), t1 (-8, 2).
  // neuron 0: 1·(-1.5), 3·4 -> sqrt(2.25 + 144); neuron 1: 2·1, 0 -> 2
  const expected = [Math.sqrt(146.25), 2];
  assert.deepEqual(Array.from(attributionFromGradient(z, new Float32Array([3, -2, -8, 2]), 2, 2, 0.5)), expected);
  assert.deepEqual(Array.from(attributionThroughRows(z, dPdh, fromRowsMajor(new Float32Array([1, 2, 0, -1]), 2, 2), 2)), expected);
  assert.deepEqual(Array.from(attributionThroughRows(z, dPdh, fromLinear(new Float32Array([1, 0, 2, -1]), 2, 2), 2)), expected);
  assert.throws(() => attributionFromGradient(z, new Float32Array(4), 2, 3, 0.5), isCode('shape'));
  assert.throws(() => fromLinear(new Float32Array(5), 2, 2), isCode('shape'));
  assert.throws(() => fromRowsMajor(new Float32Array(4), 2, 2).row(2), isCode('invalid-argument'));
});

test('fromLinear reads the transpose of the rows-major layout', () => {
  const r = rng(21);
  const m = 5, d = 3;
  const rows = Float32Array.from({ length: m * d }, r);
  const linear = new Float32Array(d * m);
  for (let i = 0; i < m; i++) for (let k = 0; k < d; k++) linear[k * m + i] = rows[i * d + k];
  const a = fromRowsMajor(rows, m, d), b = fromLinear(linear, m, d);
  for (let i = 0; i < m; i++) assert.deepEqual(Array.from(b.row(i)), Array.from(a.row(i)));
});

test('gradientRows equals the explicit double loop and finite differences of a toy loss', () => {
  const r = rng(22);
  const T = 5, m = 7, d = 3;
  const z = Float32Array.from({ length: T * m }, () => 2 * r());
  const W = Float64Array.from({ length: m * d }, () => 2 * r());
  const hOf = (w: Float64Array, t: number, k: number): number => { let h = 0; for (let i = 0; i < m; i++) h += z[t * m + i] * w[i * d + k]; return h; };
  // Toy loss L = Σ_t Σ_k sin(h_tk) with h_t = W^T z_t, so dL/dh_tk = cos(h_tk).
  const loss = (w: Float64Array): number => { let s = 0; for (let t = 0; t < T; t++) for (let k = 0; k < d; k++) s += Math.sin(hOf(w, t, k)); return s; };
  const dLdh = new Float32Array(T * d);
  for (let t = 0; t < T; t++) for (let k = 0; k < d; k++) dLdh[t * d + k] = Math.cos(hOf(W, t, k));
  const rows = [6, 1, 3];
  const Gr = gradientRows(z, dLdh, rows, T, m, d);
  rows.forEach((i, ri) => {
    for (let k = 0; k < d; k++) {
      let loopSum = 0;
      for (let t = 0; t < T; t++) loopSum += z[t * m + i] * dLdh[t * d + k];
      assert.ok(Math.abs(Gr[ri * d + k] - loopSum) < 1e-12, 'double loop');
      const eps = 1e-5;
      const wp = Float64Array.from(W), wm = Float64Array.from(W);
      wp[i * d + k] += eps; wm[i * d + k] -= eps;
      const fd = (loss(wp) - loss(wm)) / (2 * eps);
      assert.ok(Math.abs(Gr[ri * d + k] - fd) < 1e-5, `finite difference ${fd} vs ${Gr[ri * d + k]}`);
    }
  });
  assert.throws(() => gradientRows(z, dLdh, [7], T, m, d), isCode('invalid-argument'));
  assert.throws(() => gradientRows(z, dLdh.subarray(1), rows, T, m, d), isCode('shape'));
});

test('gatherActivations builds Z at the chosen positions and rows', () => {
  const z = new Float32Array([0, 1, 2, 10, 11, 12, 20, 21, 22]); // T = 3, m = 3, z[t,i] = 10t + i
  const Z = gatherActivations(z, 3, 3, [2, 0], [1, 2]);
  assert.deepEqual([Z.rows, Z.cols], [2, 2]);
  assert.deepEqual(Array.from(Z.data), [21, 22, 1, 2]);
  assert.throws(() => gatherActivations(z, 3, 3, [3], [0]), isCode('invalid-argument'));
});

test('sign alignment: magnitudes from Δ, signs from -Gr, Δ kept where Gr is zero', () => {
  const delta = new Float64Array([1, -2, 3, -4, 0, 5, -6, 0.5]);
  const grad = new Float64Array([2, 2, -1, -1, 3, 0, -0, 1e-300]);
  const out = signAlign(delta, grad);
  const expected = [-1, -2, 3, 4, 0, 5, -6, -0.5];
  expected.forEach((x, i) => assert.ok(out[i] === x, `index ${i}: ${out[i]} vs ${x}`));
  assert.throws(() => signAlign(delta, new Float64Array(3)), isCode('shape'));
  assert.throws(() => signAlign(new Float64Array([NaN]), new Float64Array([1])), isCode('non-finite'));
});

test('topNeurons and global selection pick the best K over all layers with deterministic ties', () => {
  const scores = [new Float64Array([0.1, 5, 0.3]), new Float64Array([5, 0.2]), new Float64Array([4, 0, 9, 1])];
  assert.deepEqual(topNeurons(scores, 3), [
    { layer: 2, neuron: 2, score: 9 }, { layer: 0, neuron: 1, score: 5 }, { layer: 1, neuron: 0, score: 5 },
  ]);
  assert.deepEqual(entries(selectNeurons(scores, 'global', { topK: 4 })), [[0, [1]], [1, [0]], [2, [0, 2]]]);
  assert.deepEqual(entries(selectNeurons(scores, 'global', { topK: 2 })), [[0, [1]], [2, [2]]]);
  assert.equal(topNeurons(scores, 100).length, 9);
  assert.deepEqual(topNeurons(scores, 2, (l) => l === 1).map((c) => c.neuron), [0, 1]);
  assert.throws(() => selectNeurons(scores, 'global', {}), isCode('invalid-argument'));
  assert.throws(() => topNeurons(scores, 0), isCode('invalid-argument'));
  assert.throws(() => topNeurons([new Float64Array([NaN])], 1), isCode('non-finite'));
});

test('topNeurons agrees with a full sort on a large random case', () => {
  const r = rng(23);
  const scores = Array.from({ length: 6 }, () => Float64Array.from({ length: 500 }, () => Math.round(100 * (r() + 0.5)) / 10));
  const all = scores.flatMap((s, layer) => Array.from(s, (score, neuron) => ({ layer, neuron, score })));
  all.sort((a, b) => b.score - a.score || a.layer - b.layer || a.neuron - b.neuron);
  assert.deepEqual(topNeurons(scores, 37), all.slice(0, 37));
});

test('dense and one-layer selection', () => {
  const scores = [new Float64Array([1, 2]), new Float64Array(Array.from({ length: 30 }, (_, i) => (i * 7) % 30))];
  assert.deepEqual(entries(selectNeurons(scores, 'dense', {})), [[0, [0, 1]], [1, Array.from({ length: 30 }, (_, i) => i)]]);
  // Layer 1 scores 7i mod 30 are a permutation of 0..29: the top 10% (3 rows) have
  // scores 29 (i = 17: 119 = 90 + 29), 28 (i = 4) and 27 (i = 21: 147 = 120 + 27).
  const top = selectNeurons(scores, 'one-layer', { layer: 1, fraction: 0.1 });
  assert.deepEqual(entries(top), [[1, [4, 17, 21]]]);
  assert.deepEqual([...top.get(1) ?? []].map((i) => scores[1][i]).sort(), [27, 28, 29]);
  assert.equal(selectNeurons(scores, 'one-layer', { layer: 1, fraction: 0.101 }).get(1)?.length, 4); // ceil(3.03)
  assert.equal(selectNeurons(scores, 'one-layer', { layer: 0, fraction: 0.01 }).get(0)?.length, 1); // at least one
  assert.equal(selectNeurons(scores, 'one-layer', { layer: 1, topK: 5 }).get(1)?.length, 5);
  assert.throws(() => selectNeurons(scores, 'one-layer', { fraction: 0.1 }), isCode('invalid-argument'));
  assert.throws(() => selectNeurons(scores, 'one-layer', { layer: 2, fraction: 0.1 }), isCode('invalid-argument'));
  assert.throws(() => selectNeurons(scores, 'one-layer', { layer: 1, fraction: 0 }), isCode('invalid-argument'));
  assert.throws(() => selectNeurons(scores, 'one-layer', { layer: 1, fraction: 0.1, topK: 3 }), isCode('invalid-argument'));
  assert.equal(mostHarmfulLayer([1.5, 3.2, 3.2, 0.1]), 1);
  assert.throws(() => mostHarmfulLayer([]), isCode('invalid-argument'));
});

test('layer selection (the authors\' layer-wise sparsity): the top quarter of layers by the loss rise when their MLP is skipped, dense within them', () => {
  const scores = Array.from({ length: 8 }, () => new Float64Array(3));
  // Intact loss 2; skipping layer 5 raises it most, then layer 2; a quarter of 8 layers is 2.
  const skipped = [2.1, 2.0, 3.5, 1.9, 2.2, 4.0, 2.05, 2.3];
  const layers = topLayers(skipped, 2, 0.25);
  assert.deepEqual(layers, [2, 5]);
  assert.deepEqual(entries(selectNeurons(scores, 'layer', { layers })), [[2, [0, 1, 2]], [5, [0, 1, 2]]]);
  assert.deepEqual(topLayers([1, 2, 3], 0, 0.25), [2], 'at least one layer');
  assert.deepEqual(topLayers([1, 1, 1, 1], 0, 0.5), [0, 1], 'ties go to the lower layer');
  assert.throws(() => topLayers([], 0), isCode('invalid-argument'));
  assert.throws(() => topLayers([1, NaN], 0), LinalgError);
  assert.throws(() => selectNeurons(scores, 'layer', { layers: [] }), isCode('invalid-argument'));
  assert.throws(() => selectNeurons(scores, 'layer', { layers: [8] }), isCode('invalid-argument'));
});

test('selectionRows bounds what each selection locates, from the shape alone', () => {
  const rand = seededRandom(5);
  for (const [L, m] of [[4, 30], [7, 12], [1, 5], [9, 40]] as const) {
    const scores = Array.from({ length: L }, () => Float64Array.from({ length: m }, () => rand()));
    const loss = Array.from({ length: L }, () => rand());
    const sizing = { layers: L, intermediate: m, topK: 17, fraction: 0.13, layerShare: 0.25 };
    const located = (mode: (typeof SELECT_MODES)[number]) => {
      const opts = mode === 'layer' ? { layers: topLayers(loss, 0, sizing.layerShare) } : mode === 'one-layer' ? { layer: L - 1, fraction: sizing.fraction } : { topK: sizing.topK };
      return [...selectNeurons(scores, mode, opts).values()].reduce((n, rows) => n + rows.length, 0);
    };
    for (const mode of SELECT_MODES) assert.equal(selectionRows(mode, sizing), located(mode), `${mode} on ${L}×${m}`);
  }
});

test('without a tuned selection a repair takes the first of dense, layer, global whose patch fits: dense on the embedded model, global on Qwen2.5-Coder', () => {
  const pick = (c: { layers: number; intermediate: number; hidden: number }) =>
    fittingSelect({ layers: c.layers, intermediate: c.intermediate, topK: 64, fraction: 0.05, layerShare: 0.25 }, c.hidden, MAX_PATCH_PARAMS);
  assert.equal(pick(loadConfig('models/tiny-coder')), 'dense');
  const qwen = (file: string) => parseConfig(JSON.parse(readFileSync(file, 'utf8')));
  assert.equal(pick(qwen('bench/configs/qwen2.5-coder-0.5b.json')), 'global');
  assert.equal(pick(qwen('bench/configs/qwen2.5-coder-1.5b.json')), 'global');
  // 9 layers of 2048 × 512: dense (9.4 M values) is over, the top 3 layers (3.1 M) fit; 8 layers' dense is exactly the bound.
  assert.equal(pick({ layers: 9, intermediate: 2048, hidden: 512 }), 'layer');
  assert.equal(pick({ layers: 8, intermediate: 2048, hidden: 512 }), 'dense');
});

test('attribution from the activations\' gradient equals attribution through the value vectors', () => {
  const rand = seededRandom(9);
  const [T, m, d] = [7, 13, 5];
  const z = Float32Array.from({ length: T * m }, () => rand() - 0.5);
  z[3] = 0; // a neuron that is off at one position
  const W = Float64Array.from({ length: m * d }, () => rand() - 0.5); // rows = neurons
  const dh = Float32Array.from({ length: T * d }, () => rand() - 0.5);
  const P = 0.37;
  const dLdz = new Float32Array(T * m);
  for (let t = 0; t < T; t++) for (let i = 0; i < m; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += dh[t * d + k] * W[i * d + k];
    dLdz[t * m + i] = s;
  }
  const viaRows = attributionThroughRows(z, dh.map((g) => -P * g), fromRowsMajor(W, m, d), T);
  const viaGradient = attributionFromGradient(z, dLdz, T, m, P);
  for (let i = 0; i < m; i++) assert.ok(Math.abs(viaRows[i] - viaGradient[i]) <= 1e-6 * Math.max(1, viaRows[i]), `neuron ${i}: ${viaRows[i]} vs ${viaGradient[i]}`);
  assert.throws(() => attributionFromGradient(z, dLdz.subarray(1), T, m, P), isCode('shape'));
  assert.throws(() => attributionFromGradient(z, dLdz.map((v, i) => (i === 4 ? Number.NaN : v)), T, m, P), isCode('non-finite'));
});
