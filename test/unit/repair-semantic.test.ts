// Tests for src/repair/semantic.ts (docs/algorithm.md "Semantic basis and steer"): U^T B = I on a random U with
// V > d, rows against a hand-computed inverse and an independent Gauss solve,
// and the steer raising the desired logit against the wrong one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinalgError, gram, iqr, matrix } from '../../src/repair/linalg';
import { BASIS_RIDGE_SCALE, semanticBasis, steer } from '../../src/repair/semantic';
import { seededRandom } from '../../src/util/random';

/** Uniform on [-0.5, 0.5), seeded. */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() - 0.5;
}

/** Reference: solve A x = b by Gaussian elimination with partial pivoting. */
function gaussSolve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(M[i][c]) > Math.abs(M[p][c])) p = i;
    [M[c], M[p]] = [M[p], M[c]];
    for (let i = c + 1; i < n; i++) {
      const f = M[i][c] / M[c][c];
      for (let j = c; j <= n; j++) M[i][j] -= f * M[c][j];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let s = M[i][n];
    for (let j = i + 1; j < n; j++) s -= M[i][j] * x[j];
    x[i] = s / M[i][i];
  }
  return x;
}

const V = 40, d = 6;
const r = rng(11);
const U = Float32Array.from({ length: V * d }, () => 2 * r());
const G = gram(matrix(V, d, U));
const isCode = (code: string) => (e: unknown): boolean => e instanceof LinalgError && e.code === code;

test('basis rows on a hand example: B_t = G^-1 u_t', () => {
  // U = [[1,0],[0,2],[1,1]] -> G = [[2,1],[1,5]], G^-1 = [[5,-1],[-1,2]]/9.
  const u = new Float32Array([1, 0, 0, 2, 1, 1]);
  const basis = semanticBasis(matrix(2, 2, [2, 1, 1, 5]), u, 2);
  assert.equal(basis.vocabSize, 3);
  const expected = [[5 / 9, -1 / 9], [-2 / 9, 4 / 9], [4 / 9, 1 / 9]];
  expected.forEach((row, t) => {
    const b = basis.basisRow(t);
    row.forEach((x, k) => assert.ok(Math.abs(b[k] - x) < 1e-5, `B_${t}[${k}] = ${b[k]}, expected ${x}`));
  });
});

test('U^T B = I (d x d) on a random U with V > d', () => {
  const basis = semanticBasis(G, U, d);
  const prod = new Float64Array(d * d);
  for (let t = 0; t < V; t++) {
    const b = basis.basisRow(t);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) prod[i * d + j] += U[t * d + i] * b[j];
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      assert.ok(Math.abs(prod[i * d + j] - (i === j ? 1 : 0)) < 1e-5, `(U^T B)[${i},${j}] = ${prod[i * d + j]}`);
    }
  }
});

test('basis rows equal an independent solve of (G + ridge·I) x = u_t, and the cache returns copies', () => {
  const basis = semanticBasis(G, U, d);
  const g = Array.from({ length: d }, (_, i) => Array.from(G.data.subarray(i * d, i * d + d)));
  let traceG = 0;
  for (let i = 0; i < d; i++) traceG += g[i][i];
  const ridge = (BASIS_RIDGE_SCALE * traceG) / d;
  const ridged = g.map((row, i) => row.map((x, j) => x + (i === j ? ridge : 0)));
  const first = basis.basisRow(3);
  first.fill(1234); // must not poison the cache
  for (const t of [3, 0, 39, 5, 6, 7, 8, 9, 10, 11, 12, 3]) { // 3 again after evicting it
    const ref = gaussSolve(ridged, Array.from(U.subarray(t * d, t * d + d)));
    const b = basis.basisRow(t);
    ref.forEach((x, k) => assert.ok(Math.abs(b[k] - x) < 1e-10 * (1 + Math.abs(x)), `B_${t}[${k}]`));
  }
});

test('steer raises the desired logit against the wrong one and has unit IQR', () => {
  const basis = semanticBasis(G, U, d);
  for (const [y, a] of [[0, 1], [7, 3], [39, 20], [12, 13]]) {
    const s = steer(basis, y, a);
    const logit = (t: number): number => { let x = 0; for (let k = 0; k < d; k++) x += U[t * d + k] * s[k]; return x; };
    const gap = logit(y) - logit(a);
    assert.ok(gap > 0, `steer ${y} vs ${a}: logit gap ${gap}`);
    assert.ok(Math.abs(iqr(s) - 1) < 1e-6, `IQR of the steer is ${iqr(s)}`);
    // Same direction as B_y - B_a.
    const diff = basis.basisRow(y).map((x, k) => x - basis.basisRow(a)[k]);
    const ratio = s[0] / diff[0];
    assert.ok(ratio > 0);
    diff.forEach((x, k) => assert.ok(Math.abs(s[k] - ratio * x) < 1e-9 * (1 + Math.abs(s[k]))));
  }
});

test('semantic basis rejects bad input with typed errors', () => {
  const basis = semanticBasis(G, U, d);
  assert.throws(() => basis.basisRow(V), isCode('invalid-argument'));
  assert.throws(() => basis.basisRow(-1), isCode('invalid-argument'));
  assert.throws(() => steer(basis, 4, 4), isCode('invalid-argument'));
  assert.throws(() => semanticBasis(G, U.subarray(1), d), isCode('shape'));
  assert.throws(() => semanticBasis(matrix(5, 5), U, d), isCode('shape'));
  assert.throws(() => semanticBasis(matrix(d, d), U, d), isCode('not-positive-definite'));
});
