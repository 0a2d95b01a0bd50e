// Locating buggy neurons (docs/algorithm.md "Locating neurons": attribution scores and the dense / global /
// layer selection modes) and the per-row quantities of the STAR step (docs/algorithm.md "The STAR step"
// and §5: gathering Z, the exact gradient of the located rows, sign alignment).
// Layouts from the runtime: z_l is [T, m], dL/dh_l is [T, d], both row-major.

import { LinalgError, assertFinite } from './linalg';
import type { Matrix } from './linalg';

/**
 * dense: every neuron of every layer; global: the top-K neurons over all layers; layer: the
 * authors' layer-wise sparsity (the top quarter of layers by MLP-skip occlusion, dense within
 * them); one-layer: the most harmful layer's top ρ of neurons (this project's first variant).
 */
export type SelectMode = 'dense' | 'global' | 'layer' | 'one-layer';
export const SELECT_MODES: readonly SelectMode[] = ['dense', 'global', 'layer', 'one-layer'];
/** What a setting or a repair request may ask for: a mode, or 'model' — the model's tuned selection (star-repair.json), else the first that fits (fittingSelect). */
export type SelectSetting = 'model' | SelectMode;
export const SELECT_SETTINGS: readonly SelectSetting[] = ['model', ...SELECT_MODES];

export interface NeuronScore {
  layer: number;
  neuron: number;
  score: number;
}

/** Read access to the value vectors (rows of W_l, m x d) whatever the stored layout. */
export interface DownProjection {
  m: number;
  d: number;
  /** Value vector of neuron i (length d). May be a view into the weights: do not modify. */
  row(i: number): Float32Array | Float64Array;
}

function checkSizes(m: number, d: number): void {
  if (!Number.isInteger(m) || m <= 0 || !Number.isInteger(d) || d <= 0) {
    throw new LinalgError('shape', `m and d must be positive integers, got m=${m}, d=${d}`);
  }
}

function checkLength(what: string, arr: ArrayLike<number>, expected: number, shape: string): void {
  if (arr.length !== expected) {
    throw new LinalgError('shape', `${what} must be ${shape} = ${expected} values, got ${arr.length}`);
  }
}

function checkNeuron(i: number, m: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= m) {
    throw new LinalgError('invalid-argument', `neuron index ${i} is outside [0, ${m})`);
  }
}

/** W stored as [m, d] (rows = neurons, e.g. GPT-2 Conv1D c_proj). Rows are zero-copy views. */
export function fromRowsMajor(data: Float32Array | Float64Array, m: number, d: number): DownProjection {
  checkSizes(m, d);
  checkLength('down projection', data, m * d, `[m, d] = ${m}x${d}`);
  return { m, d, row: (i) => { checkNeuron(i, m); return data.subarray(i * d, i * d + d); } };
}

/** W stored as [d, m] (HF nn.Linear down_proj.weight): row i is column i, gathered on each call. */
export function fromLinear(data: Float32Array | Float64Array, m: number, d: number): DownProjection {
  checkSizes(m, d);
  checkLength('down projection', data, m * d, `[d, m] = ${d}x${m}`);
  return {
    m, d,
    row: (i) => {
      checkNeuron(i, m);
      const out = new Float64Array(d);
      for (let k = 0; k < d; k++) out[k] = data[k * m + i];
      return out;
    },
  };
}

/**
 * docs/algorithm.md "Locating neurons" for one layer and one loss: score_i =
 * sqrt(Σ_t (z_{t,i} · dP/dz_{t,i})²) with dP/dz_{t,i} = dPdh_t · W_i = −P · dL/dz_{t,i}, from the
 * gradient of the MLP activations [T, m] that the probe's backward pass computes
 * (ModelRuntime.attribution): score_i = P · sqrt(Σ_t (z_{t,i} · dL/dz_{t,i})²), in T·m operations.
 * Forming dPdh_t · W_i here instead cost T·m·d (at Qwen2.5-Coder-0.5B, 24 layers of 4864 × 896,
 * 6.7 G multiply-adds per failing position, most of a global repair's time).
 */
export function attributionFromGradient(z: Float32Array, dLdz: Float32Array, T: number, m: number, P: number): Float64Array {
  checkSizes(m, 1);
  if (!Number.isInteger(T) || T <= 0) throw new LinalgError('shape', `T must be a positive integer, got ${T}`);
  checkLength('z', z, T * m, `[T, m] = ${T}x${m}`);
  checkLength('dL/dz', dLdz, T * m, `[T, m] = ${T}x${m}`);
  assertFinite('dL/dz', dLdz);
  const sumSq = new Float64Array(m);
  for (let t = 0; t < T; t++) {
    const o = t * m;
    for (let i = 0; i < m; i++) {
      const a = z[o + i]! * dLdz[o + i]!;
      sumSq[i] += a * a;
    }
  }
  const scores = sumSq.map((s) => Math.abs(P) * Math.sqrt(s));
  assertFinite('attribution scores', scores);
  return scores;
}

/** Better-first order: higher score, then lower layer, then lower neuron (deterministic ties). */
function better(a: NeuronScore, b: NeuronScore): boolean {
  if (a.score !== b.score) return a.score > b.score;
  if (a.layer !== b.layer) return a.layer < b.layer;
  return a.neuron < b.neuron;
}

/**
 * The k best neurons over the layers accepted by `layerFilter`, best first.
 * A bounded min-heap keeps this O(total · log k) for the large totals of real models.
 */
export function topNeurons(scores: Float64Array[], k: number, layerFilter: (layer: number) => boolean = () => true): NeuronScore[] {
  if (!Number.isInteger(k) || k < 1) throw new LinalgError('invalid-argument', `top-K needs an integer K >= 1, got ${k}`);
  const heap: NeuronScore[] = []; // heap[0] is the worst kept
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < heap.length && better(heap[w], heap[l])) w = l;
      if (r < heap.length && better(heap[w], heap[r])) w = r;
      if (w === i) return;
      [heap[i], heap[w]] = [heap[w], heap[i]];
      i = w;
    }
  };
  scores.forEach((layerScores, layer) => {
    if (!layerFilter(layer)) return;
    assertFinite(`scores of layer ${layer}`, layerScores);
    for (let neuron = 0; neuron < layerScores.length; neuron++) {
      const c: NeuronScore = { layer, neuron, score: layerScores[neuron] };
      if (heap.length < k) {
        heap.push(c);
        for (let i = heap.length - 1; i > 0;) {
          const p = (i - 1) >> 1;
          if (!better(heap[p], heap[i])) break;
          [heap[p], heap[i]] = [heap[i], heap[p]];
          i = p;
        }
      } else if (better(c, heap[0])) {
        heap[0] = c;
        siftDown(0);
      }
    }
  });
  return heap.sort((a, b) => (better(a, b) ? -1 : 1));
}

function groupByLayer(chosen: NeuronScore[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const c of [...chosen].sort((a, b) => a.layer - b.layer || a.neuron - b.neuron)) {
    const rows = out.get(c.layer);
    if (rows) rows.push(c.neuron); else out.set(c.layer, [c.neuron]);
  }
  return out;
}

/**
 * docs/algorithm.md "Locating neurons" selection. Returns layer -> ascending neuron rows (layers ascending,
 * layers with no row omitted).
 * - dense: every neuron of every layer.
 * - global: the topK best over all layers.
 * - layer: every neuron of opts.layers (chosen by the caller from MLP-skip occlusion, see
 *   topLayers).
 * - one-layer: in opts.layer (chosen by the caller from zero-ablation, see
 *   mostHarmfulLayer), the top ceil(fraction·m) neurons, or topK if given instead.
 * Ties are broken toward lower layer then lower neuron.
 */
export function selectNeurons(
  scores: Float64Array[],
  mode: SelectMode,
  opts: { topK?: number; layer?: number; layers?: readonly number[]; fraction?: number },
): Map<number, number[]> {
  if (scores.length === 0) throw new LinalgError('invalid-argument', 'selectNeurons needs the scores of at least one layer');
  switch (mode) {
    case 'dense': {
      const out = new Map<number, number[]>();
      scores.forEach((s, layer) => { if (s.length > 0) out.set(layer, Array.from({ length: s.length }, (_, i) => i)); });
      return out;
    }
    case 'global': {
      if (opts.topK === undefined) throw new LinalgError('invalid-argument', "'global' selection needs opts.topK");
      return groupByLayer(topNeurons(scores, opts.topK));
    }
    case 'layer': {
      const layers = opts.layers;
      if (!layers || layers.length === 0 || layers.some((l) => !Number.isInteger(l) || l < 0 || l >= scores.length)) {
        throw new LinalgError('invalid-argument', `'layer' selection needs opts.layers, a non-empty list of layers in [0, ${scores.length})`);
      }
      const out = new Map<number, number[]>();
      for (const l of [...new Set(layers)].sort((a, b) => a - b)) out.set(l, Array.from({ length: scores[l].length }, (_, i) => i));
      return out;
    }
    case 'one-layer': {
      const layer = opts.layer;
      if (layer === undefined || !Number.isInteger(layer) || layer < 0 || layer >= scores.length) {
        throw new LinalgError('invalid-argument', `'one-layer' selection needs opts.layer in [0, ${scores.length}), got ${layer}`);
      }
      const m = scores[layer].length;
      let k: number;
      if (opts.fraction !== undefined) {
        if (opts.topK !== undefined) throw new LinalgError('invalid-argument', "'one-layer' selection takes opts.fraction or opts.topK, not both");
        const rho = opts.fraction;
        if (!(rho > 0 && rho <= 1)) throw new LinalgError('invalid-argument', `opts.fraction must be in (0, 1], got ${rho}`);
        k = shareCount(rho, m);
      } else if (opts.topK !== undefined) {
        k = opts.topK;
      } else {
        throw new LinalgError('invalid-argument', "'one-layer' selection needs opts.fraction (or opts.topK)");
      }
      return groupByLayer(topNeurons(scores, k, (l) => l === layer));
    }
    default: {
      const never: never = mode;
      throw new LinalgError('invalid-argument', `unknown selection mode ${String(never)}; use dense, global, layer or one-layer`);
    }
  }
}

/**
 * How many of `n` a share in (0, 1] takes: ⌈share·n⌉, at least one — the layers of `layer`
 * (topLayers) and the neurons of `one-layer`. The small tolerance stops float noise
 * (0.1·30 = 3.0000000000000004) from adding one.
 */
function shareCount(share: number, n: number): number {
  return Math.max(1, Math.ceil(share * n - 1e-9));
}

/** What sizes a selection before any probe: the model's shape and the repair's options. */
export interface SelectionSizing {
  layers: number;
  /** Neurons per layer (m). */
  intermediate: number;
  topK: number;
  fraction: number;
  layerShare: number;
}

/**
 * The most rows one located set of `mode` can hold, from the shape alone (selectNeurons's counts:
 * dense L·m, layer ⌈share·L⌉·m, global topK, one-layer ⌈ρ·m⌉). A repair's patch is rows × d values.
 */
export function selectionRows(mode: SelectMode, s: SelectionSizing): number {
  switch (mode) {
    case 'dense': return s.layers * s.intermediate;
    case 'layer': return shareCount(s.layerShare, s.layers) * s.intermediate;
    case 'global': return Math.min(s.topK, s.layers * s.intermediate);
    case 'one-layer': return shareCount(s.fraction, s.intermediate);
    default: {
      const never: never = mode;
      throw new LinalgError('invalid-argument', `unknown selection mode ${String(never)}`);
    }
  }
}

/**
 * The selection a repair takes when nothing asks for one: the first of dense (the authors'
 * default), layer, global whose rows × d fit `maxValues` — dense on the embedded model, global on
 * a real model (Qwen2.5-Coder-0.5B dense is 104.6 M values, its layer selection 26.1 M).
 */
export function fittingSelect(s: SelectionSizing, d: number, maxValues: number): SelectMode {
  for (const mode of ['dense', 'layer', 'global'] as const) if (selectionRows(mode, s) * d <= maxValues) return mode;
  return 'global';
}

/** The layer whose zero-ablation gives the highest loss (index into the runtime's ablated losses). */
export function mostHarmfulLayer(ablatedLosses: ArrayLike<number>): number {
  if (ablatedLosses.length === 0) throw new LinalgError('invalid-argument', 'mostHarmfulLayer needs at least one layer');
  assertFinite('ablated losses', ablatedLosses);
  let best = 0;
  for (let l = 1; l < ablatedLosses.length; l++) if (ablatedLosses[l] > ablatedLosses[best]) best = l;
  return best;
}

/**
 * The authors' layer-wise sparsity: the top `share` of layers (at least one) by how much the loss
 * rises when the layer's MLP is skipped, given each layer's loss with its MLP skipped and the loss
 * of the intact model. Returned in ascending layer order.
 */
export function topLayers(skippedLosses: ArrayLike<number>, intactLoss: number, share = 0.25): number[] {
  const L = skippedLosses.length;
  if (L === 0) throw new LinalgError('invalid-argument', 'topLayers needs at least one layer');
  assertFinite('skipped-MLP losses', skippedLosses);
  if (!(share > 0 && share <= 1)) throw new LinalgError('invalid-argument', `the share of layers must be in (0, 1], got ${share}`);
  const k = shareCount(share, L);
  const order = Array.from({ length: L }, (_, l) => l).sort((a, b) => (skippedLosses[b] - intactLoss) - (skippedLosses[a] - intactLoss) || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/**
 * docs/algorithm.md "The STAR step": Z = activations of the located rows at the chosen positions,
 * an N x |rows| matrix (N = positions.length), from z_l [T, m].
 */
export function gatherActivations(z: Float32Array, T: number, m: number, positions: number[], rows: number[]): Matrix {
  if (!Number.isInteger(T) || T <= 0) throw new LinalgError('shape', `T must be a positive integer, got ${T}`);
  if (!Number.isInteger(m) || m <= 0) throw new LinalgError('shape', `m must be a positive integer, got ${m}`);
  checkLength('z', z, T * m, `[T, m] = ${T}x${m}`);
  for (const t of positions) {
    if (!Number.isInteger(t) || t < 0 || t >= T) throw new LinalgError('invalid-argument', `position ${t} is outside [0, ${T})`);
  }
  for (const i of rows) checkNeuron(i, m);
  const r = rows.length;
  const data = new Float64Array(positions.length * r);
  positions.forEach((t, n) => { for (let j = 0; j < r; j++) data[n * r + j] = z[t * m + rows[j]]; });
  return { rows: positions.length, cols: r, data };
}

/**
 * docs/algorithm.md "The STAR step": Gr = Σ_t z_{t,R}^T dL/dh_t, the exact gradient of the loss with
 * respect to the located rows R of W_l (since h_t = W^T z_t). Returns [|R|, d].
 */
export function gradientRows(z: Float32Array, dLdh: Float32Array, rows: number[], T: number, m: number, d: number): Float64Array {
  if (!Number.isInteger(T) || T <= 0) throw new LinalgError('shape', `T must be a positive integer, got ${T}`);
  checkSizes(m, d);
  checkLength('z', z, T * m, `[T, m] = ${T}x${m}`);
  checkLength('dLdh', dLdh, T * d, `[T, d] = ${T}x${d}`);
  for (const i of rows) checkNeuron(i, m);
  const out = new Float64Array(rows.length * d);
  for (let t = 0; t < T; t++) {
    const g = t * d;
    rows.forEach((i, r) => {
      const zti = z[t * m + i];
      if (zti === 0) return;
      const o = r * d;
      for (let k = 0; k < d; k++) out[o + k] += zti * dLdh[g + k];
    });
  }
  assertFinite('row gradient', out);
  return out;
}

/**
 * docs/algorithm.md "The STAR step": Δ~ = |Δ| ⊙ sign(-Gr), keeping Δ where Gr is exactly zero
 * (no gradient information there, so the analytic direction stands).
 */
export function signAlign(delta: Float64Array, grad: Float64Array): Float64Array {
  if (delta.length !== grad.length) {
    throw new LinalgError('shape', `signAlign: delta has ${delta.length} values but the gradient has ${grad.length}`);
  }
  assertFinite('delta', delta);
  assertFinite('gradient', grad);
  const out = new Float64Array(delta.length);
  for (let i = 0; i < delta.length; i++) {
    const g = grad[i];
    out[i] = g === 0 ? delta[i] : g > 0 ? -Math.abs(delta[i]) : Math.abs(delta[i]);
  }
  return out;
}
