// What every repair method shares: the model under repair (runtime + the weights the engine reads
// + the patches already active), the accumulating neuron patch of the repair in progress,
// teacher-forced assessment of examples (argmax, probability and rank of each desired token), and
// the semantic basis of the LM head (G = UᵀU computed once per model in onnxruntime, block by block
// for a quantised head). The weights are fp32 canonical weights or a quantised model's Ŵ
// (repair-weights.ts): the engine reads the weights of the model that serves the completions.

import * as ort from 'onnxruntime-node';
import { Graph } from '../graph/builder';
import type { ModelConfig } from '../model/config';
import type { CanonicalWeights } from '../model/weights';
import { canonicalRepairWeights, headRowSource, type RepairWeights } from './repair-weights';
import type { LayerPatch, ModelRuntime } from '../runtime/runtime';
import { combinePatches, packLayers, type PatchLayer } from './patch';
import { matrix } from './linalg';
import type { DownProjection } from './locate';
import { semanticBasis, type SemanticBasis } from './semantic';
import { maskFor, RepairError, type Example } from './teacher';

export interface RepairProgress {
  method: string;
  phase: 'assess' | 'locate' | 'step' | 'evaluate';
  epoch: number;
  epochs: number;
  loss: number | null;
  positionsFixed: number;
  positionsTotal: number;
}

export interface RepairControl {
  signal?: AbortSignal;
  onProgress?: (p: RepairProgress) => void;
}

export function checkCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RepairError('cancelled', 'the repair was cancelled; the model is unchanged');
}

/** The accumulating patch of one repair: (layer, row) → delta vector, in float64 (the steps add up here; combinePatches sums it with the active patches). */
export class PatchAccumulator {
  private readonly rows = new Map<number, Map<number, Float64Array>>();
  constructor(readonly d: number) {}

  add(layer: number, row: number, delta: ArrayLike<number>, scale = 1): void {
    let layerRows = this.rows.get(layer);
    if (!layerRows) this.rows.set(layer, (layerRows = new Map()));
    let acc = layerRows.get(row);
    if (!acc) layerRows.set(row, (acc = new Float64Array(this.d)));
    for (let j = 0; j < this.d; j++) acc[j] += scale * delta[j];
  }

  /** The current delta of one row (zeros if untouched). */
  get(layer: number, row: number): Float64Array {
    return this.rows.get(layer)?.get(row) ?? new Float64Array(this.d);
  }

  remove(layer: number, row: number): void {
    this.rows.get(layer)?.delete(row);
  }

  clone(): PatchAccumulator {
    const c = new PatchAccumulator(this.d);
    for (const [l, rows] of this.rows) for (const [r, v] of rows) c.add(l, r, v);
    return c;
  }

  get neurons(): number {
    let n = 0;
    for (const rows of this.rows.values()) n += rows.size;
    return n;
  }

  /** This repair's change alone, in the Patch format. */
  toLayers(): PatchLayer[] {
    return packLayers(this.rows, this.d);
  }
}

/**
 * The model a repair works on. `weights`: fp32 canonical weights (read as views) or a weight
 * source (repair-weights.ts, e.g. a quantised model's Ŵ). `base` is what is active before the
 * repair starts.
 */
export class RepairModel {
  readonly runtime: ModelRuntime;
  readonly config: ModelConfig;
  readonly weights: RepairWeights;
  base: Map<number, LayerPatch>;
  private basisPromise: Promise<SemanticBasis> | null = null;

  constructor(runtime: ModelRuntime, weights: CanonicalWeights | RepairWeights, base: Map<number, LayerPatch> = new Map()) {
    this.runtime = runtime;
    this.config = runtime.config;
    this.weights = 'layers' in weights ? canonicalRepairWeights(runtime.config, weights) : weights;
    this.base = base;
    runtime.setPatch(base);
  }

  /** Makes the runtime compute with base + `acc`. */
  apply(acc: PatchAccumulator | null): void {
    this.runtime.setPatch(combinePatches([this.base, acc && { layers: acc.toLayers() }], this.config.hidden));
  }

  /** Value vectors of layer l as they are now: base weights plus the base patch plus `acc`. */
  downProjection(layer: number, acc: PatchAccumulator | null): DownProjection {
    const { intermediate: m, hidden: d } = this.config;
    const plain = this.weights.down(layer);
    const patched = new Map<number, Float32Array>();
    const bp = this.base.get(layer);
    bp?.rows.forEach((r, i) => patched.set(r, bp.deltas.subarray(i * d, (i + 1) * d)));
    return {
      m,
      d,
      row: (i) => {
        const v = Float64Array.from(plain.row(i));
        const b = patched.get(i);
        if (b) for (let j = 0; j < d; j++) v[j] += b[j];
        if (acc) {
          const a = acc.get(layer, i);
          for (let j = 0; j < d; j++) v[j] += a[j];
        }
        return v;
      },
    };
  }

  /**
   * docs/algorithm.md "Semantic basis and steer": B = pinv(Uᵀ), from G = UᵀU computed in onnxruntime
   * (no V×V object): in one product when the head is in memory (fp32), else as the sum of UbᵀUb over
   * row blocks of the head, each dequantised, multiplied and let go.
   */
  basis(): Promise<SemanticBasis> {
    if (!this.basisPromise) {
      this.basisPromise = (async () => {
        const { vocab: V, hidden: d } = this.config;
        const g = new Graph('float32');
        const u = g.input('u', 'float32', ['rows', d]);
        g.output(g.matmul(g.transpose(u, [1, 0]), u), 'gram');
        const session = await ort.InferenceSession.create(g.toModel('gram'));
        const gram = new Float64Array(d * d);
        try {
          const per = Math.max(1, Math.min(V, this.weights.headBlockRows));
          for (let first = 0; first < V; first += per) {
            const count = Math.min(per, V - first);
            const out = await session.run({ u: new ort.Tensor('float32', this.weights.headRows(first, count), [count, d]) });
            const block = out.gram.data as Float32Array;
            for (let i = 0; i < gram.length; i++) gram[i] += block[i];
          }
        } finally {
          await session.release();
        }
        return semanticBasis(matrix(d, d, gram), headRowSource(this.weights), d);
      })();
    }
    return this.basisPromise;
  }
}

/** Teacher-forced view of one example's desired tokens under the current weights. */
export interface Assessment {
  argmax: number[];
  /** P(y_k) at each target position. */
  pDesired: number[];
  /** Rank of y_k (0 = top) at each target position. */
  rankDesired: number[];
  /** Probability of the top-1 token at each target position. */
  pTop: number[];
  /** log P(y_k) − log P(best other token decoding may choose): > 0 where y_k is the argmax. */
  lead: number[];
  /** Mean cross-entropy of the desired tokens. */
  loss: number;
  correct: boolean[];
  allCorrect: boolean;
  accuracy: number;
}

export function softmaxRow(logits: ArrayLike<number>, offset: number, V: number): Float64Array {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]);
  const p = new Float64Array(V);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += p[v] = Math.exp(logits[offset + v] - max);
  for (let v = 0; v < V; v++) p[v] /= sum;
  return p;
}

export async function assess(runtime: ModelRuntime, ex: Example): Promise<Assessment> {
  const V = runtime.config.vocab;
  const r = await runtime.score(ex.ids, ex.nextTokens, maskFor(ex, ex.targetPositions));
  const out: Assessment = { argmax: [], pDesired: [], rankDesired: [], pTop: [], lead: [], loss: r.loss, correct: [], allCorrect: true, accuracy: 0 };
  ex.targetPositions.forEach((_, k) => {
    const p = softmaxRow(r.logits, k * V, V);
    const y = ex.desired[k];
    // Where token healing limits the choice, the argmax is taken over what decoding may choose.
    const allowed = ex.allowed[k];
    // Tokens as right as y_k here (another token that ends the completion with the same text).
    // A Set: the end position's list can hold hundreds of ids, and this runs for every vocabulary entry.
    const right = ex.alsoRight[k] ? new Set(ex.alsoRight[k]) : null;
    const isRight = (v: number) => v === y || (right !== null && right.has(v));
    let best = -1;
    let rival = -1;
    let bestRight = -1;
    const consider = (v: number) => {
      if (best < 0 || p[v] > p[best]) best = v;
      if (isRight(v)) {
        if (bestRight < 0 || p[v] > p[bestRight]) bestRight = v;
      } else if (rival < 0 || p[v] > p[rival]) rival = v;
    };
    if (allowed) for (const v of allowed) consider(v);
    else for (let v = 0; v < V; v++) consider(v);
    if (best < 0) best = y;
    let rank = 0;
    for (let v = 0; v < V; v++) if (p[v] > p[y]) rank++;
    out.argmax.push(best);
    out.pDesired.push(p[y]);
    out.rankDesired.push(rank);
    out.pTop.push(p[best]);
    out.lead.push(rival < 0 ? Infinity : bestRight < 0 ? -Infinity : Math.log(p[bestRight]) - Math.log(p[rival]));
    out.correct.push(isRight(best));
  });
  out.allCorrect = out.correct.every(Boolean);
  out.accuracy = out.correct.filter(Boolean).length / out.correct.length;
  return out;
}

/** Every target token is the argmax and leads the next choice by at least `margin` (log-probability). */
export function wholeTargetRight(a: Assessment, margin = 0): boolean {
  return a.allCorrect && (margin <= 0 || a.lead.every((x) => x >= margin));
}
