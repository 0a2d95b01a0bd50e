// Small dense linear algebra for the repair engine (docs/algorithm.md "Semantic basis and steer" and "The STAR step"): row-major
// Float64 matrices, Cholesky, the minimum-norm least-squares patch solve, and
// the numpy-style IQR used to scale steers. Big products (U^T U, activations)
// are computed by the runtime in ORT; only N x N and d x d work happens here.

export type LinalgErrorCode = 'shape' | 'non-finite' | 'not-positive-definite' | 'degenerate' | 'invalid-argument';

/** Typed error for every bad input or numerical failure of the repair maths. */
export class LinalgError extends Error {
  override readonly name = 'LinalgError';
  constructor(readonly code: LinalgErrorCode, message: string) {
    super(message);
  }
}

/** Row-major dense matrix: element (i, j) is data[i * cols + j]. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

function checkDim(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new LinalgError('shape', `${name} must be a non-negative integer, got ${n}`);
  }
}

/** Throws if any entry is NaN or infinite: such values would silently poison patched weights. */
export function assertFinite(what: string, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new LinalgError('non-finite', `${what} has a non-finite entry (${values[i]}) at index ${i}; check the runtime outputs for overflow`);
    }
  }
}

/** A rows x cols matrix; `data` (row-major, any numeric array) is copied, zeros if omitted. */
export function matrix(rows: number, cols: number, data?: ArrayLike<number>): Matrix {
  checkDim('rows', rows);
  checkDim('cols', cols);
  const out = new Float64Array(rows * cols);
  if (data !== undefined) {
    if (data.length !== rows * cols) {
      throw new LinalgError('shape', `matrix(${rows}, ${cols}) needs ${rows * cols} values, got ${data.length}`);
    }
    for (let i = 0; i < out.length; i++) out[i] = data[i];
  }
  return { rows, cols, data: out };
}

function checkMatrix(name: string, a: Matrix): void {
  checkDim(`${name}.rows`, a.rows);
  checkDim(`${name}.cols`, a.cols);
  if (a.data.length !== a.rows * a.cols) {
    throw new LinalgError('shape', `${name} is ${a.rows}x${a.cols} but holds ${a.data.length} values`);
  }
}

export function matmul(a: Matrix, b: Matrix): Matrix {
  checkMatrix('a', a);
  checkMatrix('b', b);
  if (a.cols !== b.rows) {
    throw new LinalgError('shape', `matmul: ${a.rows}x${a.cols} times ${b.rows}x${b.cols} — inner dimensions differ`);
  }
  const n = a.rows, k = a.cols, p = b.cols;
  const out = new Float64Array(n * p);
  // i-k-j order walks b and out row by row (cache friendly in row-major).
  for (let i = 0; i < n; i++) {
    const o = i * p;
    for (let q = 0; q < k; q++) {
      const aiq = a.data[i * k + q];
      if (aiq === 0) continue;
      const bq = q * p;
      for (let j = 0; j < p; j++) out[o + j] += aiq * b.data[bq + j];
    }
  }
  return { rows: n, cols: p, data: out };
}

export function transpose(a: Matrix): Matrix {
  checkMatrix('a', a);
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j];
  }
  return { rows: a.cols, cols: a.rows, data: out };
}

/** a^T a (cols x cols), exactly symmetric. */
export function gram(a: Matrix): Matrix {
  checkMatrix('a', a);
  const n = a.cols;
  const out = new Float64Array(n * n);
  for (let r = 0; r < a.rows; r++) {
    const base = r * n;
    for (let i = 0; i < n; i++) {
      const ai = a.data[base + i];
      if (ai === 0) continue;
      for (let j = 0; j <= i; j++) out[i * n + j] += ai * a.data[base + j];
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[j * n + i] = out[i * n + j];
  return { rows: n, cols: n, data: out };
}

export function trace(a: Matrix): number {
  checkMatrix('a', a);
  if (a.rows !== a.cols) throw new LinalgError('shape', `trace needs a square matrix, got ${a.rows}x${a.cols}`);
  let t = 0;
  for (let i = 0; i < a.rows; i++) t += a.data[i * a.cols + i];
  return t;
}

/**
 * Lower-triangular L with L L^T = (A + A^T)/2 + ridge·I.
 * Symmetrising (rather than reading one triangle) absorbs the float32 asymmetry of
 * Grams computed by ORT. A pivot at or below n·eps·max|diag| counts as not positive
 * definite: past that point the factor is rounding noise.
 */
export function cholesky(a: Matrix, ridge = 0): Matrix {
  checkMatrix('a', a);
  if (a.rows !== a.cols) throw new LinalgError('shape', `cholesky needs a square matrix, got ${a.rows}x${a.cols}`);
  if (!Number.isFinite(ridge) || ridge < 0) {
    throw new LinalgError('invalid-argument', `cholesky ridge must be finite and >= 0, got ${ridge}`);
  }
  assertFinite('cholesky input', a.data);
  const n = a.rows;
  const L = new Float64Array(n * n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a.data[i * n + i] + ridge));
  const tol = n * Number.EPSILON * maxDiag;
  for (let j = 0; j < n; j++) {
    let pivot = a.data[j * n + j] + ridge;
    for (let k = 0; k < j; k++) pivot -= L[j * n + k] * L[j * n + k];
    if (!(pivot > tol)) {
      throw new LinalgError('not-positive-definite',
        `matrix is not positive definite (pivot ${pivot} at ${j} of ${n}); add a larger ridge or drop linearly dependent rows`);
    }
    const ljj = Math.sqrt(pivot);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = 0.5 * (a.data[i * n + j] + a.data[j * n + i]);
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  return { rows: n, cols: n, data: L };
}

/** Solves (L L^T) X = B for every column of B (n x k), by forward then backward substitution. */
export function choleskySolve(L: Matrix, b: Matrix): Matrix {
  checkMatrix('L', L);
  checkMatrix('b', b);
  const n = L.rows, k = b.cols;
  if (L.cols !== n) throw new LinalgError('shape', `choleskySolve: L must be square, got ${L.rows}x${L.cols}`);
  if (b.rows !== n) throw new LinalgError('shape', `choleskySolve: L is ${n}x${n} but b has ${b.rows} rows`);
  const x = new Float64Array(b.data);
  // Forward: L Y = B, row by row so each step is a row-vector update over k columns.
  for (let i = 0; i < n; i++) {
    const xi = i * k;
    for (let j = 0; j < i; j++) {
      const lij = L.data[i * n + j];
      if (lij === 0) continue;
      const xj = j * k;
      for (let c = 0; c < k; c++) x[xi + c] -= lij * x[xj + c];
    }
    const lii = L.data[i * n + i];
    for (let c = 0; c < k; c++) x[xi + c] /= lii;
  }
  // Backward: L^T X = Y.
  for (let i = n - 1; i >= 0; i--) {
    const xi = i * k;
    for (let j = i + 1; j < n; j++) {
      const lji = L.data[j * n + i];
      if (lji === 0) continue;
      const xj = j * k;
      for (let c = 0; c < k; c++) x[xi + c] -= lji * x[xj + c];
    }
    const lii = L.data[i * n + i];
    for (let c = 0; c < k; c++) x[xi + c] /= lii;
  }
  return { rows: n, cols: k, data: x };
}

/**
 * docs/algorithm.md "The STAR step": Δ = Z^T (Z Z^T + λI)^{-1} S with λ = lambdaScale · trace(Z Z^T) / N.
 * Z is N x r (activations of the located rows at N positions), S is N x d (steers);
 * the result is r x d.
 * - Rows of Z that are all zero are dropped first: with the same λ (N still counts
 *   them) Δ is unchanged, since they decouple and contribute nothing through Z^T,
 *   and the solve stays well posed when lambdaScale is 0. All-zero Z gives Δ = 0.
 * - When r < N the identical (push-through identity) r x r form
 *   (Z^T Z + λI)^{-1} Z^T S is solved instead: cheaper, and it avoids dividing a
 *   rank-deficient N x N system by λ (e.g. global top-K with fewer rows than positions).
 * With the spec's λ the rounding amplification is about N·1e6·eps; a much smaller
 * lambdaScale on rank-deficient Z trades bias for rounding noise.
 */
export function minNormLeastSquares(Z: Matrix, S: Matrix, lambdaScale = 1e-6): Matrix {
  checkMatrix('Z', Z);
  checkMatrix('S', S);
  if (Z.rows !== S.rows) {
    throw new LinalgError('shape', `minNormLeastSquares: Z has ${Z.rows} rows (positions) but S has ${S.rows}`);
  }
  if (!Number.isFinite(lambdaScale) || lambdaScale < 0) {
    throw new LinalgError('invalid-argument', `lambdaScale must be finite and >= 0, got ${lambdaScale}`);
  }
  assertFinite('Z', Z.data);
  assertFinite('S', S.data);
  const N = Z.rows, r = Z.cols, d = S.cols;
  const keep: number[] = [];
  let tr = 0;
  for (let i = 0; i < N; i++) {
    let sq = 0;
    for (let j = 0; j < r; j++) sq += Z.data[i * r + j] * Z.data[i * r + j];
    if (sq > 0) keep.push(i);
    tr += sq;
  }
  if (keep.length === 0) return matrix(r, d);
  const n = keep.length;
  const lambda = (lambdaScale * tr) / N;
  const Zk: Matrix = { rows: n, cols: r, data: new Float64Array(n * r) };
  const Sk: Matrix = { rows: n, cols: d, data: new Float64Array(n * d) };
  keep.forEach((i, a) => {
    Zk.data.set(Z.data.subarray(i * r, i * r + r), a * r);
    Sk.data.set(S.data.subarray(i * d, i * d + d), a * d);
  });
  const Zt = transpose(Zk);
  if (r < n) return choleskySolve(cholesky(gram(Zk), lambda), matmul(Zt, Sk));
  const alpha = choleskySolve(cholesky(gram(Zt), lambda), Sk);
  return matmul(Zt, alpha);
}

/**
 * Quantile by linear interpolation between order statistics, numpy's default
 * ("linear", Hyndman–Fan type 7): position h = (n-1)·q in the sorted values.
 */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new LinalgError('invalid-argument', 'quantile of an empty array is undefined');
  if (!(q >= 0 && q <= 1)) throw new LinalgError('invalid-argument', `quantile q must be in [0, 1], got ${q}`);
  assertFinite('quantile input', values);
  const sorted = Float64Array.from(values).sort();
  return quantileSorted(sorted, q);
}

function quantileSorted(sorted: Float64Array, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Inter-quartile range Q(0.75) - Q(0.25), quantiles as numpy.quantile's default (linear). */
export function iqr(values: ArrayLike<number>): number {
  if (values.length === 0) throw new LinalgError('invalid-argument', 'IQR of an empty array is undefined');
  assertFinite('IQR input', values);
  const sorted = Float64Array.from(values).sort();
  return quantileSorted(sorted, 0.75) - quantileSorted(sorted, 0.25);
}
