// What the repair engine reads of a model's weights (room repair/): the value vectors of each
// layer's down projection and the rows of the LM head — from fp32 canonical weights (views, no
// copy) or from a quantised model's codes (Ŵ = s·(q − z), dequantised on each read and not kept),
// so a repair on a quantised model reads the weights of the model that serves its completions.
// Also the LM-head explanation of a neuron's delta over such a head, block by block.
import type { ModelConfig } from '../model/config';
import type { CanonicalWeights } from '../model/weights';
import { dequantiseColumn, dequantiseRows, type QuantisedMatrix } from '../model/quantise';
import { lmHeadName } from '../graph/quantised';
import type { QuantisedModel } from '../runtime/quantised-weights';
import { explainNeuronDelta, type NeuronExplanation } from './explain';
import { fromLinear, type DownProjection } from './locate';

export interface RepairWeights {
  readonly config: ModelConfig;
  /** Value vectors of layer `layer`'s down projection (W_down [d, m]; neuron i is column i). */
  down(layer: number): DownProjection;
  /**
   * Rows `first .. first + count` of the LM head [V, d], row-major: a view of the fp32 head, or
   * freshly dequantised rows of a quantised one. Read them; do not modify or keep them.
   */
  headRows(first: number, count: number): Float32Array;
  /** Rows per block for a pass over the whole head: all of it when it is already in memory. */
  readonly headBlockRows: number;
}

/** Rows of a quantised head dequantised at a time in a pass over it (about 8 k × d floats). */
export const QUANTISED_HEAD_BLOCK_ROWS = 8192;

function checkLayer(config: ModelConfig, layer: number): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= config.layers) throw new RangeError(`layer ${layer} is outside 0..${config.layers - 1}`);
}

function checkRows(config: ModelConfig, first: number, count: number): void {
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > config.vocab) {
    throw new RangeError(`LM head rows ${first}..${first + count} are outside 0..${config.vocab}`);
  }
}

/** The engine's view of fp32 canonical weights: views, nothing copied. */
export function canonicalRepairWeights(config: ModelConfig, w: CanonicalWeights): RepairWeights {
  const d = config.hidden;
  return {
    config,
    down: (layer) => {
      checkLayer(config, layer);
      return fromLinear(w.layers[layer]!.down.weight, config.intermediate, d);
    },
    headRows: (first, count) => {
      checkRows(config, first, count);
      return w.lmHead.subarray(first * d, (first + count) * d);
    },
    headBlockRows: config.vocab,
  };
}

/** The engine's view of a quantised model: Ŵ of the down projections and the head, dequantised as read. */
export function quantisedRepairWeights(config: ModelConfig, q: QuantisedModel): RepairWeights {
  const matrix = (name: string): QuantisedMatrix => {
    const m = q.matrices.get(name);
    if (!m) throw new Error(`internal: the quantised model has no ${name}`);
    return m;
  };
  const head = matrix(lmHeadName(config, q.spec));
  const { hidden: d, intermediate: m } = config;
  if (head.n !== config.vocab || head.k !== d) throw new Error(`internal: the quantised LM head is [${head.n}, ${head.k}], not [${config.vocab}, ${d}]`);
  for (let l = 0; l < config.layers; l++) {
    const down = matrix(`l${l}.down.weight`);
    if (down.n !== d || down.k !== m) throw new Error(`internal: the quantised down projection of layer ${l} is [${down.n}, ${down.k}], not [${d}, ${m}]`);
  }
  return {
    config,
    down: (layer) => {
      checkLayer(config, layer);
      const w = matrix(`l${layer}.down.weight`);
      return {
        m, d,
        row: (i) => {
          if (!Number.isInteger(i) || i < 0 || i >= m) throw new RangeError(`neuron index ${i} is outside [0, ${m})`);
          return dequantiseColumn(w, i);
        },
      };
    },
    headRows: (first, count) => {
      checkRows(config, first, count);
      return dequantiseRows(head, first, count);
    },
    headBlockRows: QUANTISED_HEAD_BLOCK_ROWS,
  };
}

/**
 * The LM head as the semantic basis reads it (repair/semantic.ts): `length` values, and any row
 * range by subarray — a view, or rows dequantised on demand, so no float copy of a quantised head
 * is kept.
 */
export function headRowSource(w: RepairWeights): { length: number; subarray(begin: number, end: number): Float32Array } {
  const d = w.config.hidden;
  if (w.headBlockRows >= w.config.vocab) return w.headRows(0, w.config.vocab);
  return {
    length: w.config.vocab * d,
    subarray: (begin, end) => {
      if (begin % d !== 0 || end % d !== 0) throw new RangeError(`LM head values ${begin}..${end} are not whole rows of ${d}`);
      return w.headRows(begin / d, (end - begin) / d);
    },
  };
}

/**
 * explainNeuronDelta (repair/explain.ts) over the head of `w`: whole when it is in memory, else
 * block by block — each block's top tokens each way, merged in explainNeuronDelta's order (up:
 * largest logit first, ties in token order; down: most lowered first, ties in reverse token
 * order), which gives the same answer as on the whole head.
 */
export function explainDelta(w: RepairWeights, delta: ArrayLike<number>, tokenText: (id: number) => string, top = 5): NeuronExplanation {
  const V = w.config.vocab;
  if (w.headBlockRows >= V) return explainNeuronDelta(w.headRows(0, V), V, delta, tokenText, top);
  const ups: { id: number; logit: number }[] = [];
  const downs: { id: number; logit: number }[] = [];
  let deltaNorm = 0;
  for (let first = 0; first < V; first += w.headBlockRows) {
    const count = Math.min(w.headBlockRows, V - first);
    const r = explainNeuronDelta(w.headRows(first, count), count, delta, (v) => String(first + v), top);
    deltaNorm = r.deltaNorm;
    for (const t of r.up) ups.push({ id: Number(t.token), logit: t.logit });
    for (const t of r.down) downs.push({ id: Number(t.token), logit: t.logit });
  }
  ups.sort((a, b) => b.logit - a.logit || a.id - b.id);
  downs.sort((a, b) => a.logit - b.logit || b.id - a.id);
  const named = (list: { id: number; logit: number }[]) => list.slice(0, top).map((t) => ({ token: tokenText(t.id), logit: t.logit }));
  return { deltaNorm, up: named(ups), down: named(downs) };
}
