// Tests for src/repair/linalg.ts (docs/algorithm.md "The STAR step" least squares, "Semantic basis and steer" IQR) against
// independent references: Gauss–Jordan solves of the normal equations written
// here, numpy's pinv / quantile values, and reconstruction identities.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LinalgError, cholesky, choleskySolve, gram, iqr, matmul, matrix, minNormLeastSquares, quantile, transpose,
} from '../../src/repair/linalg';
import type { Matrix } from '../../src/repair/linalg';
import { seededRandom } from '../../src/util/random';

/** Uniform on [-0.5, 0.5), seeded. */
function rng(seed: number): () => number {
  const u = seededRandom(seed);
  return () => u() - 0.5;
}

function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const r = rng(seed);
  return matrix(rows, cols, Array.from({ length: rows * cols }, () => 2 * r()));
}

/** Reference solver: Gauss–Jordan elimination with partial pivoting on plain arrays. */
function gaussSolve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const M = A.map((row, i) => [...row, ...B[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(M[i][c]) > Math.abs(M[p][c])) p = i;
    [M[c], M[p]] = [M[p], M[c]];
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = M[i][c] / M[c][c];
      for (let j = c; j < M[i].length; j++) M[i][j] -= f * M[c][j];
    }
  }
  return M.map((row, i) => row.slice(n).map((x) => x / M[i][i]));
}

const toRows = (a: Matrix): number[][] => Array.from({ length: a.rows }, (_, i) => Array.from(a.data.subarray(i * a.cols, (i + 1) * a.cols)));
const mul = (a: number[][], b: number[][]): number[][] => a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
const tr = (a: number[][]): number[][] => a[0].map((_, j) => a.map((row) => row[j]));

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

const isCode = (code: string) => (e: unknown): boolean => e instanceof LinalgError && e.code === code;

test('matrix copies its data and checks the length', () => {
  const src = new Float32Array([1, 2, 3, 4, 5, 6]);
  const a = matrix(2, 3, src);
  src[0] = 99;
  assert.equal(a.data[0], 1);
  assert.ok(a.data instanceof Float64Array);
  assert.throws(() => matrix(2, 2, [1, 2, 3]), isCode('shape'));
  assert.deepEqual(Array.from(matrix(2, 2).data), [0, 0, 0, 0]);
});

test('matmul, transpose and gram on a hand example', () => {
  const a = matrix(2, 3, [1, 2, 3, 4, 5, 6]);
  const b = matrix(3, 2, [7, 8, 9, 10, 11, 12]);
  assert.deepEqual(Array.from(matmul(a, b).data), [58, 64, 139, 154]);
  const at = transpose(a);
  assert.deepEqual([at.rows, at.cols], [3, 2]);
  assert.deepEqual(Array.from(at.data), [1, 4, 2, 5, 3, 6]);
  // a^T a by hand: columns (1,4), (2,5), (3,6).
  assert.deepEqual(Array.from(gram(a).data), [17, 22, 27, 22, 29, 36, 27, 36, 45]);
  assert.throws(() => matmul(a, a), isCode('shape'));
});

test('cholesky reconstructs a random SPD matrix with a lower factor', () => {
  const M = randomMatrix(7, 5, 1);
  const A = gram(M);
  for (let i = 0; i < 5; i++) A.data[i * 5 + i] += 0.1;
  const L = cholesky(A);
  for (let i = 0; i < 5; i++) {
    assert.ok(L.data[i * 5 + i] > 0);
    for (let j = i + 1; j < 5; j++) assert.equal(L.data[i * 5 + j], 0);
  }
  assertClose(matmul(L, transpose(L)).data, A.data, 1e-12, 'L L^T');
});

test('cholesky rejects indefinite and singular matrices, and the ridge fixes a singular PSD one', () => {
  assert.throws(() => cholesky(matrix(2, 2, [1, 2, 2, 1])), isCode('not-positive-definite'));
  assert.throws(() => cholesky(matrix(2, 2, [1, 1, 1, 1])), isCode('not-positive-definite'));
  assert.throws(() => cholesky(matrix(2, 2)), isCode('not-positive-definite'));
  assert.throws(() => cholesky(matrix(2, 3)), isCode('shape'));
  assert.throws(() => cholesky(matrix(1, 1, [NaN])), isCode('non-finite'));
  const L = cholesky(matrix(2, 2, [1, 1, 1, 1]), 1e-3);
  assertClose(matmul(L, transpose(L)).data, [1.001, 1, 1, 1.001], 1e-14, 'ridged L L^T');
});

test('choleskySolve matches an independent Gauss–Jordan solve for many right-hand sides', () => {
  const A = gram(randomMatrix(9, 6, 2));
  const B = randomMatrix(6, 3, 3);
  const X = choleskySolve(cholesky(A), B);
  assertClose(X.data, gaussSolve(toRows(A), toRows(B)).flat(), 1e-9, 'X');
  assertClose(matmul(A, X).data, B.data, 1e-10, 'A X');
});

test('min-norm least squares, underdetermined, λ = 0: exact fit, pseudo-inverse formula, row space, minimal norm', () => {
  const Z = randomMatrix(3, 7, 4);
  const S = randomMatrix(3, 4, 5);
  const D = minNormLeastSquares(Z, S, 0);
  assert.deepEqual([D.rows, D.cols], [7, 4]);
  assertClose(matmul(Z, D).data, S.data, 1e-10, 'Z Δ');
  const z = toRows(Z);
  const ref = mul(tr(z), gaussSolve(mul(z, tr(z)), toRows(S)));
  assertClose(D.data, ref.flat(), 1e-10, 'Δ vs Z^T (Z Z^T)^-1 S');
  // A vector of the null space of Z: w minus its projection on the row space.
  const w = Array.from({ length: 7 }, (_, i) => Math.sin(i + 1));
  const coef = gaussSolve(mul(z, tr(z)), mul(z, w.map((x) => [x])));
  const proj = mul(tr(z), coef).map((r) => r[0]);
  const nullVec = w.map((x, i) => x - proj[i]);
  assertClose(mul(z, nullVec.map((x) => [x])).flat(), [0, 0, 0], 1e-12, 'Z w_null');
  const norm2 = (a: ArrayLike<number>) => Array.from(a).reduce((s, x) => s + x * x, 0);
  for (let c = 0; c < 4; c++) {
    let dotc = 0;
    for (let i = 0; i < 7; i++) dotc += nullVec[i] * D.data[i * 4 + c];
    assert.ok(Math.abs(dotc) < 1e-12, `column ${c} of Δ has a null-space component ${dotc}`);
  }
  const other = D.data.map((x, k) => x + 0.1 * nullVec[Math.floor(k / 4)]);
  assert.ok(norm2(other) > norm2(D.data), 'another exact solution must have a larger norm');
});

test('min-norm least squares, overdetermined (r < N form), default λ equals ridge regression', () => {
  const Z = randomMatrix(8, 3, 6);
  const S = randomMatrix(8, 2, 7);
  const D = minNormLeastSquares(Z, S);
  const z = toRows(Z);
  const zzt = mul(z, tr(z));
  const lambda = (1e-6 * zzt.reduce((s, row, i) => s + row[i], 0)) / 8;
  const ztz = mul(tr(z), z).map((row, i) => row.map((x, j) => x + (i === j ? lambda : 0)));
  assertClose(D.data, gaussSolve(ztz, mul(tr(z), toRows(S))).flat(), 1e-9, 'Δ vs ridge normal equations');
  const plain = gaussSolve(mul(tr(z), z), mul(tr(z), toRows(S)));
  assertClose(D.data, plain.flat(), 1e-4, 'Δ vs plain normal equations');
});

test('min-norm least squares, r < N and rank deficient: ridge formula of docs/algorithm.md and no null-space component', () => {
  const base = randomMatrix(5, 2, 8);
  // Third column = first + second, so (1, 1, -1) spans the null space of Z.
  const Z = matrix(5, 3, Array.from({ length: 5 }, (_, i) => [base.data[2 * i], base.data[2 * i + 1], base.data[2 * i] + base.data[2 * i + 1]]).flat());
  const S = randomMatrix(5, 4, 9);
  const D = minNormLeastSquares(Z, S);
  const z = toRows(Z);
  const zzt = mul(z, tr(z));
  const lambda = (1e-6 * zzt.reduce((a, row, i) => a + row[i], 0)) / 5;
  const dual = mul(tr(z), gaussSolve(zzt.map((row, i) => row.map((x, j) => x + (i === j ? lambda : 0))), toRows(S)));
  assertClose(D.data, dual.flat(), 1e-8, 'Δ vs Z^T (Z Z^T + λI)^-1 S');
  for (let c = 0; c < 4; c++) {
    const along = D.data[c] + D.data[4 + c] - D.data[8 + c];
    assert.ok(Math.abs(along) < 1e-9, `column ${c} has a null-space component ${along}`);
  }
});

test('min-norm least squares on a rank-deficient inconsistent case matches numpy pinv(Z) @ S', () => {
  const Z = matrix(3, 4, [1, 2, 0, -1, 2, 4, 0, -2, 0, 1, 3, 1]);
  const S = matrix(3, 2, [1, 0.5, -1, 2, 0.25, 3]);
  // np.linalg.pinv(Z) @ S, numpy 1.24
  const pinv = [
    -0.03769230769230741, 0.10615384615384914, -0.04923076923076937, 0.47538461538461424,
    0.07846153846153847, 0.7892307692307693, 0.06384615384615393, 0.15692307692307755,
  ];
  // Smaller λ: less bias, but the singular direction of Z Z^T is divided by λ, so rounding grows.
  assertClose(minNormLeastSquares(Z, S, 1e-9).data, pinv, 1e-5, 'small λ');
  assertClose(minNormLeastSquares(Z, S).data, pinv, 1e-4, 'default λ');
  assert.throws(() => minNormLeastSquares(Z, S, 0), isCode('not-positive-definite'));
});

test('min-norm least squares with one position is z s^T / |z|^2', () => {
  const z = [0.5, -2, 1, 3];
  const s = [1, -1, 0.25];
  const nz = z.reduce((a, x) => a + x * x, 0);
  const expected = z.flatMap((zi) => s.map((sj) => (zi * sj) / nz));
  assertClose(minNormLeastSquares(matrix(1, 4, z), matrix(1, 3, s), 0).data, expected, 1e-14, 'λ = 0');
  assertClose(minNormLeastSquares(matrix(1, 4, z), matrix(1, 3, s)).data, expected.map((x) => x / (1 + 1e-6)), 1e-14, 'default λ');
});

test('min-norm least squares with zero rows: same as the full ridge formula, and exact without ridge', () => {
  const Z = matrix(3, 4, [1, 2, 0, -1, 0, 0, 0, 0, 0, 1, 3, 1]);
  const S = matrix(3, 2, [1, 0.5, -1, 2, 0.25, 3]);
  const z = toRows(Z);
  const zzt = mul(z, tr(z));
  const lambda = (1e-6 * zzt.reduce((a, row, i) => a + row[i], 0)) / 3;
  const full = mul(tr(z), gaussSolve(zzt.map((row, i) => row.map((x, j) => x + (i === j ? lambda : 0))), toRows(S)));
  assertClose(minNormLeastSquares(Z, S).data, full.flat(), 1e-12, 'with ridge');
  const z2 = [z[0], z[2]];
  const s2 = [toRows(S)[0], toRows(S)[2]];
  const exact = mul(tr(z2), gaussSolve(mul(z2, tr(z2)), s2));
  assertClose(minNormLeastSquares(Z, S, 0).data, exact.flat(), 1e-12, 'without ridge');
  const zero = minNormLeastSquares(matrix(2, 3), matrix(2, 5, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  assert.deepEqual([zero.rows, zero.cols], [3, 5]);
  assert.ok(zero.data.every((x) => x === 0));
  assert.throws(() => minNormLeastSquares(matrix(2, 3), matrix(3, 1)), isCode('shape'));
  assert.throws(() => minNormLeastSquares(matrix(1, 1, [Infinity]), matrix(1, 1)), isCode('non-finite'));
});

test('IQR and quantile follow numpy linear interpolation (values computed by hand)', () => {
  assert.equal(iqr([1, 2, 3, 4]), 1.5); // Q1 at h=0.75 -> 1.75, Q3 at h=2.25 -> 3.25
  assert.equal(iqr([7, 1, 3, 5, 9]), 4); // sorted 1 3 5 7 9: Q1 = 3, Q3 = 7
  assert.equal(iqr([1, 2]), 0.5); // 1.25 .. 1.75
  assert.equal(iqr([5]), 0);
  assert.equal(iqr(new Float64Array([-3.5, 10, 0, 2, 2, 8, -1])), 5.5); // Q1 = -1 + 0.5·1, Q3 = 2 + 0.5·6
  assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75);
  assert.equal(quantile([10, -10], 0.5), 0);
  assert.equal(quantile([3, 1, 2], 1), 3);
  assert.throws(() => iqr([]), isCode('invalid-argument'));
  assert.throws(() => iqr([1, NaN]), isCode('non-finite'));
  assert.throws(() => quantile([1], 1.5), isCode('invalid-argument'));
});
