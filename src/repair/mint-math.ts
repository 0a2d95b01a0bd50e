// The arithmetic of the MINT baseline (docs/algorithm.md "Baselines"): candidate
// neurons, per-layer tractions, their orthogonalisation against the tractions
// already used in a layer, and the value-vector update v <- (v + f·τ)/(1+f).
// The search loop (simulate every candidate, keep the best) lives in the driver.

import { LinalgError, assertFinite } from './linalg';
import { topNeurons } from './locate';
import type { NeuronScore } from './locate';

/** Residual norms below this fraction of |v| mean v has no direction left outside the used span. */
export const ORTHOGONALISE_TOLERANCE = 1e-8;

/**
 * MINT candidates: the k best neurons by attribution in the upper half of the
 * layers, taken as layers l >= floor(L/2) (for odd L the middle layer counts as upper).
 */
export function mintCandidates(scores: Float64Array[], k = 10): NeuronScore[] {
  const first = Math.floor(scores.length / 2);
  return topNeurons(scores, k, (l) => l >= first);
}

/**
 * r_l = ((l+1)/L)·(B_y - B_a), τ_l = r_l / (max r_l - min r_l).
 * As specified, the positive layer factor cancels in the range normalisation, so
 * every layer's traction has range exactly 1; it is kept so the code reads like
 * the spec. Throws if B_y - B_a is constant (zero range: no direction to push).
 */
export function traction(basisDiff: Float64Array, layer: number, L: number): Float64Array {
  if (!Number.isInteger(L) || L <= 0) throw new LinalgError('invalid-argument', `layer count L must be a positive integer, got ${L}`);
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) {
    throw new LinalgError('invalid-argument', `layer ${layer} is outside [0, ${L})`);
  }
  if (basisDiff.length === 0) throw new LinalgError('shape', 'traction needs a non-empty B_y - B_a');
  assertFinite('B_y - B_a', basisDiff);
  const c = (layer + 1) / L;
  const r = basisDiff.map((x) => c * x);
  let lo = Infinity, hi = -Infinity;
  for (const x of r) { if (x < lo) lo = x; if (x > hi) hi = x; }
  const range = hi - lo;
  if (!(range > 0)) {
    throw new LinalgError('degenerate', 'B_y - B_a has zero range (desired and wrong token have the same basis row); this token cannot get a MINT traction');
  }
  return r.map((x) => x / range);
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * v minus its projection on span(used): Gram–Schmidt against an orthonormal basis
 * built from `used` (dependent or zero entries are skipped), applied twice because
 * a single pass loses orthogonality in floating point. The result is not
 * rescaled. If nothing is left (|residual| <= 1e-8·|v|: v lies in the span of the
 * used tractions, e.g. the same token pair twice in one layer, or d of them are
 * used already) it throws LinalgError 'degenerate': the caller decides whether to
 * reuse v unorthogonalised or skip the layer.
 */
export function orthogonalise(v: Float64Array, used: Float64Array[]): Float64Array {
  if (v.length === 0) throw new LinalgError('shape', 'orthogonalise needs a non-empty vector');
  assertFinite('traction', v);
  const basis: Float64Array[] = [];
  for (const [j, u] of used.entries()) {
    if (u.length !== v.length) throw new LinalgError('shape', `used traction ${j} has length ${u.length}, expected ${v.length}`);
    assertFinite(`used traction ${j}`, u);
    const q = Float64Array.from(u);
    const norm0 = Math.sqrt(dot(q, q));
    if (norm0 === 0) continue;
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) { const p = dot(q, b); for (let i = 0; i < q.length; i++) q[i] -= p * b[i]; }
    }
    const norm = Math.sqrt(dot(q, q));
    if (norm <= ORTHOGONALISE_TOLERANCE * norm0) continue;
    for (let i = 0; i < q.length; i++) q[i] /= norm;
    basis.push(q);
  }
  const out = Float64Array.from(v);
  for (let pass = 0; pass < 2; pass++) {
    for (const b of basis) { const p = dot(out, b); for (let i = 0; i < out.length; i++) out[i] -= p * b[i]; }
  }
  const vNorm = Math.sqrt(dot(v, v));
  if (!(Math.sqrt(dot(out, out)) > ORTHOGONALISE_TOLERANCE * vNorm)) {
    throw new LinalgError('degenerate',
      'the traction lies in the span of the tractions already used in this layer; reuse it unorthogonalised or skip this layer');
  }
  return out;
}

/** `v` scaled to the norm of `like` (the authors rescale an orthogonalised traction to its original norm). */
export function rescaleTo(v: Float64Array, like: Float64Array): Float64Array {
  const nv = Math.sqrt(dot(v, v));
  const nl = Math.sqrt(dot(like, like));
  if (!(nv > 0)) throw new LinalgError('degenerate', 'cannot rescale a zero traction');
  return v.map((x) => (x * nl) / nv);
}

/** MINT patch of one value vector: (v + f·τ)/(1+f), f >= 0 (the paper's default f = 0.01). */
export function mintUpdate(value: ArrayLike<number>, tau: Float64Array, f: number): Float64Array {
  if (value.length !== tau.length) {
    throw new LinalgError('shape', `mintUpdate: value vector has ${value.length} values but the traction has ${tau.length}`);
  }
  if (!Number.isFinite(f) || f < 0) throw new LinalgError('invalid-argument', `MINT factor f must be finite and >= 0, got ${f}`);
  const out = new Float64Array(value.length);
  for (let i = 0; i < out.length; i++) out[i] = (value[i] + f * tau[i]) / (1 + f);
  assertFinite('MINT update', out);
  return out;
}
