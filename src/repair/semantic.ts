// Semantic basis and steer (docs/algorithm.md "Semantic basis and steer"): B = pinv(U^T) row by row as
// B_t = G^{-1} u_t with G = U^T U, without ever forming a V x V object, and the
// IQR-scaled steer s = (B_y - B_a) / (IQR + 1e-8).

import { LinalgError, cholesky, choleskySolve, iqr, matrix, trace } from './linalg';
import type { Matrix } from './linalg';

export interface SemanticBasis {
  d: number;
  vocabSize: number;
  /** Row t of B (length d). A fresh copy each call, so callers may modify it. */
  basisRow(token: number): Float64Array;
}

/** Relative ridge on G (docs/algorithm.md "Semantic basis and steer"): keeps the solve stable if U is (nearly) rank deficient. */
export const BASIS_RIDGE_SCALE = 1e-6;
const ROW_CACHE_SIZE = 8;

/**
 * G (d x d, = U^T U from the runtime) is factored once; rows are solved on demand
 * and the last few are cached, because one repair asks for the same y/a pairs
 * every epoch. lmHead is U, [V, d] row-major, row t = u_t (an array, or rows read on demand from a
 * quantised head); it is kept by reference (V·d floats are too many to copy), so do not modify it afterwards.
 * The factorisation costs d^3/3 multiply-adds in JS, once per model.
 */
export function semanticBasis(G: Matrix, lmHead: { readonly length: number; subarray(begin: number, end: number): Float32Array | Float64Array }, d: number): SemanticBasis {
  if (!Number.isInteger(d) || d <= 0) throw new LinalgError('shape', `hidden size d must be a positive integer, got ${d}`);
  if (G.rows !== d || G.cols !== d || G.data.length !== d * d) {
    throw new LinalgError('shape', `G must be ${d}x${d} (U^T U), got ${G.rows}x${G.cols}`);
  }
  if (lmHead.length === 0 || lmHead.length % d !== 0) {
    throw new LinalgError('shape', `lmHead holds ${lmHead.length} values, not a positive multiple of d = ${d}; pass U as [V, d] row-major`);
  }
  const vocabSize = lmHead.length / d;
  const tr = trace(G);
  if (!(tr > 0)) throw new LinalgError('not-positive-definite', `trace(G) = ${tr}; G = U^T U of a real LM head must have a positive trace`);
  const L = cholesky(G, (BASIS_RIDGE_SCALE * tr) / d);
  const cache = new Map<number, Float64Array>();

  function basisRow(token: number): Float64Array {
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
      throw new LinalgError('invalid-argument', `token id ${token} is outside the vocabulary [0, ${vocabSize})`);
    }
    let row = cache.get(token);
    if (row === undefined) {
      const u = matrix(d, 1, lmHead.subarray(token * d, token * d + d));
      row = choleskySolve(L, u).data;
      if (cache.size >= ROW_CACHE_SIZE) cache.delete(cache.keys().next().value as number);
    } else {
      cache.delete(token); // re-insert below: Map order then tracks recency (LRU)
    }
    cache.set(token, row);
    return Float64Array.from(row);
  }

  return { d, vocabSize, basisRow };
}

/**
 * Steer for a failing position: the residual-stream direction that raises the
 * desired token's logit against the wrong argmax, scaled by the IQR of its
 * components so its size does not depend on the scale of U.
 */
export function steer(basis: SemanticBasis, desired: number, argmax: number): Float64Array {
  if (desired === argmax) {
    throw new LinalgError('invalid-argument', `steer needs desired != argmax (both ${desired}); this position is not failing, skip it`);
  }
  const s = basis.basisRow(desired);
  const a = basis.basisRow(argmax);
  for (let i = 0; i < s.length; i++) s[i] -= a[i];
  const scale = 1 / (iqr(s) + 1e-8);
  for (let i = 0; i < s.length; i++) s[i] *= scale;
  return s;
}
