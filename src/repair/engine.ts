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
import { combinePatches, type PatchLayer } from './patch';
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

/** One layer of an accumulator: row → slot; the slots' deltas back to back in `data` (capacity ≥ rows). */
interface LayerSlots {
  slot: Map<number, number>;
  rows: number[];
  data: Float32Array;
  /** A runtime holds views of `data`: the next write copies it first. */
  lent: boolean;
}

/**
 * The accumulating patch of one repair: (layer, row) → delta vector, float32 (the format of a
 * Patch), each layer's rows in one buffer — a dense repair of a 1.5B model is 250,880 rows, and a
 * Map of per-row float64 arrays held it twice over. `lend()` hands the layers to a runtime as views
 * without a copy; while lent, a write copies the layer first, so the runtime's patch never changes
 * under it; `reclaim()` (the runtime has let go) makes writes in place again. RepairModel.apply
 * does both.
 */
export class PatchAccumulator {
  private readonly layers = new Map<number, LayerSlots>();
  constructor(readonly d: number) {}

  /** Slots for `rows` of `layer` (new rows appended, zero); a lent or full buffer is replaced by a copy. */
  private slotsFor(layer: number, rows: readonly number[]): LayerSlots {
    const d = this.d;
    let s = this.layers.get(layer);
    if (!s) this.layers.set(layer, (s = { slot: new Map(), rows: [], data: new Float32Array(0), lent: false }));
    let fresh = 0;
    for (const r of rows) if (!s.slot.has(r)) fresh++;
    const need = (s.rows.length + fresh) * d;
    if (s.lent || need > s.data.length) {
      // A single row grows the buffer geometrically (MINT adds one at a time); a batch exactly (a dense STAR step).
      const size = need > s.data.length && rows.length === 1 ? Math.max(need, 2 * s.data.length) : need;
      const data = new Float32Array(size);
      data.set(s.data.subarray(0, s.rows.length * d));
      s.data = data;
      s.lent = false;
    }
    for (const r of rows) {
      if (s.slot.has(r)) continue;
      s.slot.set(r, s.rows.length);
      s.rows.push(r);
    }
    return s;
  }

  add(layer: number, row: number, delta: ArrayLike<number>, scale = 1): void {
    const s = this.slotsFor(layer, [row]);
    const o = s.slot.get(row)! * this.d;
    for (let j = 0; j < this.d; j++) s.data[o + j]! += scale * delta[j]!;
  }

  /** Adds `scale` × deltas ([rows.length, d], row-major) to `rows` of `layer`. */
  addRows(layer: number, rows: readonly number[], deltas: ArrayLike<number>, scale = 1): void {
    const d = this.d;
    if (deltas.length !== rows.length * d) throw new RangeError(`addRows: ${deltas.length} delta values for ${rows.length} rows of ${d}`);
    const s = this.slotsFor(layer, rows);
    rows.forEach((r, i) => {
      const o = s.slot.get(r)! * d;
      const from = i * d;
      for (let j = 0; j < d; j++) s.data[o + j]! += scale * deltas[from + j]!;
    });
  }

  /** The current delta of one row (zeros if untouched), as a copy. */
  get(layer: number, row: number): Float64Array {
    return this.addTo(layer, row, new Float64Array(this.d));
  }

  /** Adds the current delta of one row to `out` (length d) and returns it. */
  addTo(layer: number, row: number, out: Float64Array): Float64Array {
    const s = this.layers.get(layer);
    const i = s?.slot.get(row);
    if (s === undefined || i === undefined) return out;
    const o = i * this.d;
    for (let j = 0; j < this.d; j++) out[j] += s.data[o + j]!;
    return out;
  }

  remove(layer: number, row: number): void {
    const s = this.layers.get(layer);
    const i = s?.slot.get(row);
    if (s === undefined || i === undefined) return;
    if (s.lent) {
      s.data = s.data.slice(0, s.rows.length * this.d);
      s.lent = false;
    }
    // The last slot moves into the gap.
    const last = s.rows.length - 1;
    const moved = s.rows[last]!;
    s.data.copyWithin(i * this.d, last * this.d, (last + 1) * this.d);
    s.rows[i] = moved;
    s.slot.set(moved, i);
    s.rows.pop();
    s.slot.delete(row);
  }

  clone(): PatchAccumulator {
    const c = new PatchAccumulator(this.d);
    for (const [l, s] of this.layers) c.layers.set(l, { slot: new Map(s.slot), rows: [...s.rows], data: s.data.slice(0, s.rows.length * this.d), lent: false });
    return c;
  }

  get neurons(): number {
    let n = 0;
    for (const s of this.layers.values()) n += s.rows.length;
    return n;
  }

  /** Sorts each layer's slots by row (in place, or into a fresh buffer while lent). */
  private sortRows(): void {
    const d = this.d;
    for (const s of this.layers.values()) {
      if (s.rows.every((r, i) => i === 0 || s.rows[i - 1]! < r)) continue;
      const rows = [...s.rows].sort((a, b) => a - b);
      const data = new Float32Array(rows.length * d);
      rows.forEach((r, i) => data.set(s.data.subarray(s.slot.get(r)! * d, (s.slot.get(r)! + 1) * d), i * d));
      s.rows = rows;
      s.data = data;
      s.slot = new Map(rows.map((r, i) => [r, i]));
      s.lent = false;
    }
  }

  /** The layers as views (rows ascending, empty layers left out): valid until reclaim(); writes meanwhile copy first. */
  lend(): Map<number, LayerPatch> {
    this.sortRows();
    const out = new Map<number, LayerPatch>();
    for (const l of [...this.layers.keys()].sort((a, b) => a - b)) {
      const s = this.layers.get(l)!;
      s.lent = true;
      if (s.rows.length) out.set(l, { rows: s.rows.slice(), deltas: s.data.subarray(0, s.rows.length * this.d) });
    }
    return out;
  }

  /** Whoever borrowed the views has let go of them: writes go in place again. */
  reclaim(): void {
    for (const s of this.layers.values()) s.lent = false;
  }

  /** This repair's change alone, in the Patch format (a copy). */
  toLayers(): PatchLayer[] {
    this.sortRows();
    const out: PatchLayer[] = [];
    for (const l of [...this.layers.keys()].sort((a, b) => a - b)) {
      const s = this.layers.get(l)!;
      if (s.rows.length) out.push({ layer: l, rows: s.rows.slice(), deltas: s.data.slice(0, s.rows.length * this.d) });
    }
    return out;
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

  /** The accumulator whose views the runtime computes with (lent by apply). */
  private lentTo: PatchAccumulator | null = null;

  /**
   * Makes the runtime compute with base + `acc`: over an empty base the runtime borrows `acc`'s
   * layers without a copy (a dense patch of a large model is GBs). apply(null) lets go of them, so
   * a step can then write into `acc` in place.
   */
  apply(acc: PatchAccumulator | null): void {
    const before = this.lentTo;
    this.lentTo = null;
    if (acc === null) this.runtime.setPatch(this.base);
    else if (this.base.size === 0) {
      this.runtime.setPatch(acc.lend());
      this.lentTo = acc;
    } else {
      const views = acc.lend();
      this.runtime.setPatch(combinePatches([this.base, views], this.config.hidden));
      acc.reclaim();
    }
    if (before && before !== this.lentTo) before.reclaim();
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
        return acc ? acc.addTo(layer, i, v) : v;
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
