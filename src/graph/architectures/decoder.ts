// The decoder-only transformer, written once for both families, layer by layer:
//   llama family (Llama, Qwen2, Mistral): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP;
//   gpt2 family (GPT-2, GPTBigCode): LayerNorm, learned positions, (multi-query) attention, GELU MLP.
// On the CPU, weights are graph inputs, not initializers, so the decode and probe sessions share
// one copy of them in memory, and float64 gradient-check graphs take the same weights converted.
// On a GPU they are external initializers, uploaded once per session instead of on every run.
// Every layer's MLP output is `W_down z + b + deltas^T z[rows]`: the neuron patch enters as inputs.
// A weight matrix above a provider's tensor limit (WebGPU's buffer binding limit) is split into
// row blocks in the graph (weightBlocks; docs/gpu.md).
// With `quant` (graph/quantised.ts), every linear map and the LM head multiplies by quantised
// codes — MatMulNBits in the decode graph, Gemm on Ŵ from one DequantizeLinear (row chunks
// for a matrix over quant.chunkBytes, i.e. the LM head) in the probe and score graphs — and the
// embedding is an 8-bit table; norms, biases, learned positions and the patch stay float inputs,
// so `W_down z + deltas^T z[rows]` stays exact on top of Ŵ_down.

import { Graph, type Dim, type FloatType, type Value } from '../builder';
import type { ModelConfig } from '../../model/config';
import type { QuantSpec } from '../../model/quantise';
import { codesName, lmHeadName, quantisedProduct, quantisedRows, quantisedTensorShapes, quantisedWeightSpecs, scalesName, zeroPointsName, type ProductKind, type QuantisedValue, type QuantOptions } from '../quantised';
import { fusedDecodeBody, fusedDecodeReason, type DecodeTools } from './decode-layer';

export interface WeightInput {
  name: string;
  shape: number[];
}

/** Names and shapes of the model's weights, whole (weightBlocks gives the tensors a graph takes; see weightFeeds in runtime/). */
export function weightInputs(cfg: ModelConfig): WeightInput[] {
  const { hidden: d, intermediate: m, heads: H, kvHeads: KV, headDim: hd, vocab: V } = cfg;
  const gpt2 = cfg.family === 'gpt2';
  const out: WeightInput[] = [{ name: 'embed', shape: [V, d] }];
  if (gpt2) out.push({ name: 'position_embed', shape: [cfg.maxPositions, d] });
  const norm = (prefix: string) => {
    out.push({ name: `${prefix}.weight`, shape: [d] });
    if (gpt2) out.push({ name: `${prefix}.bias`, shape: [d] });
  };
  const linear = (prefix: string, o: number, i: number, bias: boolean) => {
    out.push({ name: `${prefix}.weight`, shape: [o, i] });
    if (bias) out.push({ name: `${prefix}.bias`, shape: [o] });
  };
  for (let l = 0; l < cfg.layers; l++) {
    norm(`l${l}.attn_norm`);
    linear(`l${l}.q`, H * hd, d, cfg.qkvBias);
    linear(`l${l}.k`, KV * hd, d, cfg.qkvBias);
    linear(`l${l}.v`, KV * hd, d, cfg.qkvBias);
    linear(`l${l}.o`, d, H * hd, cfg.oBias);
    norm(`l${l}.mlp_norm`);
    if (!gpt2) linear(`l${l}.gate`, m, d, cfg.mlpBias);
    linear(`l${l}.up`, m, d, cfg.mlpBias);
    linear(`l${l}.down`, d, m, cfg.mlpBias);
  }
  norm('final_norm');
  if (!cfg.tiedEmbeddings) out.push({ name: 'lm_head', shape: [V, d] });
  return out;
}

/** How a graph gets its weights: fed as inputs on every run, or external initializers loaded once. */
export type WeightMode = 'inputs' | 'initializers';

/**
 * One weight tensor of a graph: a whole weight (name = weight) or, for a matrix above the tensor
 * limit, a block of its rows [rowStart, rowStart + rows) called weightBlockName(weight, k).
 */
export interface WeightBlock {
  name: string;
  weight: string;
  shape: number[];
  rowStart: number;
  rows: number;
}

export const weightBlockName = (weight: string, block: number) => `${weight}@${block}`;

/**
 * The weight tensors a graph for `cfg` takes when no tensor may exceed `maxTensorBytes` (null: no
 * limit). A matrix over the limit becomes contiguous row blocks of equal size (the last one may be
 * smaller), each within the limit; rows are output features for linear layers (Hugging Face
 * [out, in] layout) and tokens for embeddings, so blocks are views of the weight, never copies.
 * Vectors (norms, biases) are never split: one over the limit is an error.
 */
export function weightBlocks(cfg: ModelConfig, maxTensorBytes: number | null | undefined, floatType: FloatType = 'float32'): WeightBlock[] {
  if (maxTensorBytes !== null && maxTensorBytes !== undefined && !(maxTensorBytes > 0)) throw new Error(`the tensor limit must be a positive number of bytes, not ${maxTensorBytes}`);
  const bytes = floatType === 'float64' ? 8 : 4;
  const out: WeightBlock[] = [];
  for (const wi of weightInputs(cfg)) {
    const size = wi.shape.reduce((a, b) => a * b, bytes);
    if (maxTensorBytes === null || maxTensorBytes === undefined || size <= maxTensorBytes) {
      out.push({ name: wi.name, weight: wi.name, shape: wi.shape, rowStart: 0, rows: wi.shape[0] });
      continue;
    }
    if (wi.shape.length !== 2) throw new Error(`weight ${wi.name} (${size} bytes) is over the ${maxTensorBytes}-byte tensor limit and cannot be split: only matrices are split, into row blocks`);
    const [rows, cols] = wi.shape;
    const fit = Math.floor(maxTensorBytes / (cols * bytes));
    if (fit < 1) throw new Error(`the ${maxTensorBytes}-byte tensor limit is below one row of ${wi.name} (${cols * bytes} bytes)`);
    const count = Math.ceil(rows / fit);
    const per = Math.ceil(rows / count);
    for (let k = 0, start = 0; start < rows; k++, start += per) {
      const n = Math.min(per, rows - start);
      out.push({ name: weightBlockName(wi.name, k), weight: wi.name, shape: [n, cols], rowStart: start, rows: n });
    }
  }
  return out;
}

/** How graph tensors are laid out: weights above `maxTensorBytes` are split (see weightBlocks). */
export interface LayoutOptions {
  /** Largest weight tensor, in bytes, a graph may hold (null or absent: no limit, nothing split). */
  maxTensorBytes?: number | null;
  /** Quantised weights (graph/quantised.ts) and how their tensors enter the graph. */
  quant?: QuantGraphOptions | null;
}

export interface QuantGraphOptions extends QuantOptions {
  /** Codes, scales and zero points as inputs or as external initializers (MatMulNBits prepacks an initializer). */
  mode: WeightMode;
  /** MatMulNBits, or Gemm with Ŵ dequantised in the graph (graph/quantised.ts quantisedProduct). */
  product: ProductKind;
  /**
   * With product 'dequantised': the most bytes of float Ŵ one chunk of a product builds; larger
   * matrices are multiplied in row chunks (default DEQUANT_CHUNK_BYTES; tests force small ones).
   */
  chunkBytes?: number;
}

/** The float weights a quantised graph still takes (norms, biases, learned positions): weightInputs less the quantised matrices. */
export function floatWeightInputs(cfg: ModelConfig, quant: QuantSpec | null | undefined): WeightInput[] {
  if (!quant) return weightInputs(cfg);
  const quantised = new Set(quantisedWeightSpecs(cfg, quant).map((w) => w.source));
  return weightInputs(cfg).filter((w) => !quantised.has(w.name));
}

/** The external-data file name of a weight (see weightInputs) when weights are initializers. */
export const weightFile = (name: string) => `${name}.bin`;

export const patchRowsName = (layer: number) => `l${layer}.patch_rows`;
export const patchDeltasName = (layer: number) => `l${layer}.patch_deltas`;
export const pastName = (layer: number, kind: 'key' | 'value') => `past.${layer}.${kind}`;
export const presentName = (layer: number, kind: 'key' | 'value') => `present.${layer}.${kind}`;

interface Body {
  /** Residual stream after the final norm, [T, d]. */
  final: Value;
  /** Input of each layer's down projection, [T, m]. */
  z: Value[];
  /** Each layer's MLP output written into the residual stream, [T, d]. */
  h: Value[];
  present: { key: Value; value: Value }[];
}

/**
 * Most blocks one Concat joins (and so most parts its gradient's Split makes): WebGPU binds each
 * input and output of a node as a storage buffer, 8 per shader by WebGPU's default limit, and
 * onnxruntime binds a buffer over the binding limit as several. More blocks are joined as a tree.
 */
export const MAX_JOIN = 6;

interface Part {
  value: Value;
  rowStart: number;
  rows: number;
}

class DecoderBuilder {
  readonly g: Graph;
  private readonly cfg: ModelConfig;
  /** Each weight's tensors: one, or its row blocks when it is over the tensor limit. */
  private readonly w = new Map<string, Part[]>();
  private readonly ft: FloatType;
  /** Quantised matrices by name (empty without quant). */
  private readonly q = new Map<string, QuantisedValue>();
  private readonly quant: QuantGraphOptions | null;

  constructor(cfg: ModelConfig, floatType: FloatType, weights: WeightMode, layout: LayoutOptions = {}) {
    this.cfg = cfg;
    this.ft = floatType;
    this.g = new Graph(floatType);
    this.quant = layout.quant ?? null;
    const bytes = floatType === 'float64' ? 8 : 4;
    const quantised = new Set<string>();
    if (this.quant) {
      const mode = this.quant.mode;
      for (const w of quantisedWeightSpecs(cfg, this.quant)) {
        quantised.add(w.source);
        const shapes = quantisedTensorShapes(w);
        const tensor = (name: string, dtype: 'uint8' | 'float32', shape: number[]) =>
          mode === 'inputs' ? this.g.input(name, dtype, shape) : this.g.externalConstant(name, dtype, shape, weightFile(name), shape.reduce((x, y) => x * y, dtype === 'uint8' ? 1 : 4));
        this.q.set(w.name, { w, codes: tensor(codesName(w.name), 'uint8', shapes.codes), scales: tensor(scalesName(w.name), 'float32', shapes.scales), zeroPoints: tensor(zeroPointsName(w.name), 'uint8', shapes.zeroPoints) });
      }
    }
    // Quantised graphs never split: the float weights left are vectors and learned positions.
    for (const b of weightBlocks(cfg, this.quant ? null : layout.maxTensorBytes, floatType)) {
      if (quantised.has(b.weight)) continue;
      const v = weights === 'inputs' ? this.g.input(b.name, floatType, b.shape) : this.g.externalConstant(b.name, floatType, b.shape, weightFile(b.name), b.shape.reduce((x, y) => x * y, bytes));
      const parts = this.w.get(b.weight) ?? [];
      parts.push({ value: v, rowStart: b.rowStart, rows: b.rows });
      this.w.set(b.weight, parts);
    }
  }

  private parts(name: string): Part[] {
    const p = this.w.get(name);
    if (!p) throw new Error(`internal: no weight input ${name}`);
    return p;
  }

  weight(name: string): Value {
    const p = this.parts(name);
    if (p.length !== 1) throw new Error(`internal: weight ${name} is split into ${p.length} blocks`);
    return p[0].value;
  }

  private optional(name: string): Value | undefined {
    return this.w.has(name) ? this.weight(name) : undefined;
  }

  /**
   * x · Wᵀ (+ b) for W [out, in]. A split W is a Concat (a tree of them, MAX_JOIN at a time) of
   * per-block products along the output axis (the bias is added after it): the forward is the same sum, and Concat's and Gemm's rules give
   * dL/dx as the sum of the blocks' gy_k · W_k, so dL/dh stays exact.
   */
  private project(x: Value, weight: string, bias: Value | undefined): Value {
    const g = this.g;
    const qv = this.q.get(weight);
    if (qv) {
      const y = quantisedProduct(g, x, qv, this.quant!.accuracyLevel, this.quant!.product, this.quant!.chunkBytes);
      return bias ? g.add(y, bias) : y;
    }
    const parts = this.parts(weight);
    if (parts.length === 1) return g.gemm(x, parts[0].value, bias, true);
    let level = parts.map((p) => g.gemm(x, p.value, undefined, true));
    while (level.length > 1) {
      const next: Value[] = [];
      for (let i = 0; i < level.length; i += MAX_JOIN) {
        const group = level.slice(i, i + MAX_JOIN);
        next.push(group.length === 1 ? group[0] : g.concat(group, 1));
      }
      level = next;
    }
    return bias ? g.add(level[0], bias) : level[0];
  }

  private linear(x: Value, prefix: string): Value {
    return this.project(x, `${prefix}.weight`, this.optional(`${prefix}.bias`));
  }

  /**
   * Rows `ids` [T] of a weight [n, d]. For a split weight, every block gathers with the ids that
   * fall in it (others read its row 0) and Where keeps each id's block: block k holds rows
   * [k·per, k·per + rows_k), so an id's block is id / per. Nothing here needs a gradient: the
   * embeddings are constants upstream of every value the probe differentiates for.
   */
  private rows(weight: string, ids: Value): Value {
    const g = this.g;
    const qv = this.q.get(weight);
    if (qv) return quantisedRows(g, qv, ids, this.ft);
    const parts = this.parts(weight);
    if (parts.length === 1) return g.gather(parts[0].value, ids, 0);
    const block = g.div(ids, g.scalar(parts[0].rows, 'int64'));
    let out: Value | null = null;
    parts.forEach((p, k) => {
      const mine = g.equal(block, g.scalar(k, 'int64'));
      const local = g.where(mine, g.sub(ids, g.scalar(p.rowStart, 'int64')), g.scalar(0, 'int64'));
      const picked = g.gather(p.value, local, 0);
      out = out === null ? picked : g.where(g.unsqueeze(mine, 1), picked, out);
    });
    return out!;
  }

  private norm(x: Value, prefix: string): Value {
    const g = this.g;
    const eps = g.scalar(this.cfg.normEps);
    const weight = this.weight(`${prefix}.weight`);
    if (this.cfg.family === 'llama') {
      const ms = g.reduceMean(g.mul(x, x), [1], true);
      return g.mul(g.mul(x, g.reciprocal(g.sqrt(g.add(ms, eps)))), weight);
    }
    const centred = g.sub(x, g.reduceMean(x, [1], true));
    const variance = g.reduceMean(g.mul(centred, centred), [1], true);
    const normed = g.mul(centred, g.reciprocal(g.sqrt(g.add(variance, eps))));
    return g.add(g.mul(normed, weight), this.weight(`${prefix}.bias`));
  }

  private activation(x: Value): Value {
    const g = this.g;
    switch (this.cfg.activation) {
      case 'silu':
        return g.mul(x, g.sigmoid(x));
      case 'gelu_tanh': {
        const inner = g.mul(g.add(x, g.mul(g.scalar(0.044715), g.mul(x, g.mul(x, x)))), g.scalar(Math.sqrt(2 / Math.PI)));
        return g.mul(g.mul(g.scalar(0.5), x), g.add(g.scalar(1), g.tanh(inner)));
      }
      case 'gelu':
        return g.mul(g.mul(g.scalar(0.5), x), g.add(g.scalar(1), g.erf(g.mul(x, g.scalar(Math.SQRT1_2)))));
    }
  }

  /** cos and sin tables [T, hd] for RoPE (Hugging Face's rotate_half convention). */
  private rope(positions: Value): { cos: Value; sin: Value } {
    const g = this.g;
    const hd = this.cfg.headDim;
    const inv = Array.from({ length: hd / 2 }, (_, j) => 1 / Math.pow(this.cfg.ropeTheta, (2 * j) / hd));
    const pos = g.unsqueeze(g.cast(positions, this.ft), 1);
    const freqs = g.mul(pos, g.constant(inv, [hd / 2]));
    const emb = g.concat([freqs, freqs], 1);
    return { cos: g.unaryNoGrad('Cos', emb), sin: g.unaryNoGrad('Sin', emb) };
  }

  private rotate(x: Value, cos: Value, sin: Value): Value {
    const g = this.g;
    const half = this.cfg.headDim / 2;
    const [x1, x2] = g.split(x, 2, [half, half]);
    const rotated = g.concat([g.neg(x2), x1], 2);
    return g.add(g.mul(x, cos), g.mul(rotated, sin));
  }

  /** Additive causal mask [rep*T, S] (0 where visible, -1e9 where not), shared by every layer. */
  private mask(positions: Value, keyLength: Value, T: Dim, S: Dim): Value {
    const g = this.g;
    const keys = g.range(g.scalar(0, 'int64'), keyLength, g.scalar(1, 'int64'), [S]);
    const keyRow = g.unsqueeze(keys, 0);
    const queryCol = g.unsqueeze(positions, 1);
    let hidden = g.greater(keyRow, queryCol);
    if (this.cfg.slidingWindow !== null) {
      hidden = g.or(hidden, g.greater(g.sub(queryCol, keyRow), g.scalar(this.cfg.slidingWindow - 1, 'int64')));
    }
    const additive = g.where(hidden, g.scalar(-1e9), g.scalar(0));
    const rep = this.cfg.heads / this.cfg.kvHeads;
    return rep === 1 ? additive : g.tile(additive, [rep, 1], [`${rep}*${String(T)}`, S]);
  }

  /**
   * The whole stack for token ids [T] at positions [T]; with `past`, keys/values of earlier
   * positions ([KV, P, hd] per layer) are prepended and the extended caches returned.
   */
  body(ids: Value, positions: Value, past: { key: Value; value: Value }[] | null): Body {
    const g = this.g;
    const cfg = this.cfg;
    const { heads: H, kvHeads: KV, headDim: hd, hidden: d } = cfg;
    const T = ids.shape[0];
    const S: Dim = past ? 'S' : T;
    let x = this.rows('embed', ids);
    if (cfg.family === 'gpt2') x = g.add(x, this.rows('position_embed', positions));
    const rope = cfg.family === 'llama' ? this.rope(positions) : null;
    let mask: Value | null = null;
    const z: Value[] = [];
    const h: Value[] = [];
    const present: { key: Value; value: Value }[] = [];
    const scale = g.scalar(1 / Math.sqrt(hd));

    for (let l = 0; l < cfg.layers; l++) {
      // Attention.
      const xn = this.norm(x, `l${l}.attn_norm`);
      const heads = (v: Value, n: number) => g.transpose(g.reshape(v, [0, n, hd], [T, n, hd]), [1, 0, 2]);
      let q = heads(this.linear(xn, `l${l}.q`), H);
      let k = heads(this.linear(xn, `l${l}.k`), KV);
      let v = heads(this.linear(xn, `l${l}.v`), KV);
      if (rope) {
        q = this.rotate(q, rope.cos, rope.sin);
        k = this.rotate(k, rope.cos, rope.sin);
      }
      if (past) {
        k = g.concat([past[l].key, k], 1);
        v = g.concat([past[l].value, v], 1);
      }
      present.push({ key: k, value: v });
      if (!mask) {
        const keyLength = g.gather(g.shapeOf(k), g.constant([1], [], 'int64'), 0);
        mask = this.mask(positions, keyLength, T, S);
      }
      // Query heads that share a key/value head are stacked along the time axis: no copies of K/V.
      const grouped = g.reshape(q, [KV, -1, hd], [KV, `${H / KV}*${String(T)}`, hd]);
      const scores = g.add(g.mul(g.matmul(grouped, g.transposeLast2(k)), scale), mask);
      const context = g.matmul(g.softmax(scores, -1), v);
      const merged = g.reshape(g.transpose(g.reshape(context, [H, -1, hd], [H, T, hd]), [1, 0, 2]), [0, H * hd], [T, H * hd]);
      x = g.add(x, this.linear(merged, `l${l}.o`));

      // MLP, with the neuron patch of this layer.
      const mn = this.norm(x, `l${l}.mlp_norm`);
      const zl = cfg.family === 'llama' ? g.mul(this.activation(this.linear(mn, `l${l}.gate`)), this.linear(mn, `l${l}.up`)) : this.activation(this.linear(mn, `l${l}.up`));
      const rows = g.input(patchRowsName(l), 'int64', [`k${l}`]);
      const deltas = g.input(patchDeltasName(l), this.ft, [`k${l}`, d]);
      // Gemm, not MatMul: with no patch k = 0, and onnxruntime-node 1.30's WebGPU MatMul with an
      // empty inner dimension ([T, 0] × [0, d]) crashes the process (SIGSEGV in run); Gemm with the
      // same shapes gives the zeros ONNX defines. See docs/gpu.md.
      const hl = g.add(this.linear(zl, `l${l}.down`), g.gemm(g.gather(zl, rows, 1), deltas, undefined, false));
      z.push(zl);
      h.push(hl);
      x = g.add(x, hl);
    }
    return { final: this.norm(x, 'final_norm'), z, h, present };
  }

  /** This builder's weights and products, for the fused decode layers (decode-layer.ts). */
  decodeTools(): DecodeTools {
    const g = this.g;
    return {
      g,
      cfg: this.cfg,
      linear: (x, prefix) => this.linear(x, prefix),
      weight: (name) => this.weight(name),
      rows: (weight, ids) => this.rows(weight, ids),
      patch: (l) => ({ rows: g.input(patchRowsName(l), 'int64', [`k${l}`]), deltas: g.input(patchDeltasName(l), this.ft, [`k${l}`, this.cfg.hidden]) }),
      bias: (prefix) => this.optional(`${prefix}.bias`),
      nbits: (name) => (this.quant?.product === 'nbits' ? this.q.get(name) : undefined),
      accuracyLevel: this.quant?.accuracyLevel ?? 0,
    };
  }

  logits(x: Value): Value {
    if (this.quant) return this.project(x, lmHeadName(this.cfg, this.quant), undefined);
    return this.project(x, this.cfg.tiedEmbeddings ? 'embed' : 'lm_head', undefined);
  }
}

/** How the decode graph is built: its weights' layout, and whether its layers use the fused kernels. */
export interface DecodeGraphOptions extends LayoutOptions {
  /**
   * The layers as decode-layer.ts builds them: onnxruntime's fused contrib kernels (CPU, float32;
   * positions must be P, P+1, …), the same function in a third of the nodes. Ignored where
   * fusedDecodeReason refuses the configuration (float64, head sizes not a multiple of 8, …).
   */
  fused?: boolean;
}

/** Whether buildDecodeGraph builds the fused layers for these options (and so the cache buffers below). */
export function usesFusedDecode(cfg: ModelConfig, floatType: FloatType, layout: DecodeGraphOptions): boolean {
  return layout.fused === true && fusedDecodeReason(cfg, floatType) === null;
}

/** The fused decode graph's outputs for the greedy token, fetched instead of `logits` (greedyOutputs). */
export const GREEDY_OUTPUTS = ['next', 'logit_sum'] as const;

/**
 * The greedy token without the logits leaving onnxruntime: `next` [1] = the first index of the
 * largest logit (ArgMax, as model/finite.ts argmax), and `logit_sum` [] = Σ logits, finite when
 * every logit is finite (and not only then: a sum past ±3.4e38 is infinite too). ModelRuntime.decode
 * fetches these two instead of `logits` when asked for the greedy token: no copy of the logits
 * into JavaScript and no pass over them there; where the sum is not finite it decodes the step
 * again for the logits, whose argmax then applies its rules (a NaN or +Infinity is an error).
 */
export function greedyOutputs(g: Graph, logits: Value): void {
  const next = g.node('ArgMax', [logits], [{ dtype: 'int64', shape: [1] }], { axis: { kind: 'int', value: 1 }, keepdims: { kind: 'int', value: 0 } })[0];
  g.output(next, 'next');
  g.output(g.reduceSum(logits, [0, 1], false), 'logit_sum');
}

/**
 * Decode graph: ids [T] at positions [T] with past keys/values per layer → `logits` [1, V] of the
 * last position and the `present.*` caches.
 *  - plain layers: past [KV, P, hd] → present [KV, P+T, hd];
 *  - fused layers: past buffers [1, KV, C, hd] whose first P positions are the cache (P =
 *    positions[0], C ≥ P + T) → present [1, KV, T, hd], the T new positions only, which
 *    runtime/kv-buffers.ts writes into the buffers at P (so no output is as long as the cache).
 */
export function buildDecodeGraph(cfg: ModelConfig, floatType: FloatType = 'float32', weights: WeightMode = 'inputs', layout: DecodeGraphOptions = {}): Uint8Array {
  const b = new DecoderBuilder(cfg, floatType, weights, layout);
  const g = b.g;
  const ids = g.input('ids', 'int64', ['T']);
  const positions = g.input('positions', 'int64', ['T']);
  const fused = usesFusedDecode(cfg, floatType, layout);
  const cacheShape = fused ? [1, cfg.kvHeads, 'C', cfg.headDim] : [cfg.kvHeads, 'P', cfg.headDim];
  const past = Array.from({ length: cfg.layers }, (_, l) => ({
    key: g.input(pastName(l, 'key'), floatType, cacheShape),
    value: g.input(pastName(l, 'value'), floatType, cacheShape),
  }));
  const body = fused ? fusedDecodeBody(b.decodeTools(), ids, positions, past, (l) => ({ key: presentName(l, 'key'), value: presentName(l, 'value') })) : b.body(ids, positions, past);
  const last = g.slice(body.final, 0, -1, Number.MAX_SAFE_INTEGER, [1, cfg.hidden]);
  const logits = g.output(b.logits(last), 'logits');
  if (fused) greedyOutputs(g, logits);
  body.present.forEach((p, l) => {
    g.output(p.key, presentName(l, 'key'));
    g.output(p.value, presentName(l, 'value'));
  });
  return g.toModel('decode');
}

export interface ProbeOptions extends LayoutOptions {
  /** Emit the backward pass and output z_l and dL/dh_l (default true); false gives a scoring graph. */
  backward?: boolean;
  /**
   * With backward: the lowest layer whose dL/dh is needed (default 0). The backward pass stops
   * there — nothing below it depends on the requested values — and z_l, dL/dh_l are output only
   * for layers >= this one, so a repair of the upper layers pays for the upper layers only.
   */
  fromLayer?: number;
  /**
   * With backward: what the gradient is taken of — `h` (default): dL/dh_l [T, d], output `dh.{l}`;
   * `z`: dL/dz_l [T, m], output `dz.{l}`, the MLP activations' gradient through the patched down
   * projection (what attribution needs: dL/dz_{t,i} = dL/dh_t · (W_i + patch_i)).
   */
  wrt?: 'h' | 'z';
  floatType?: FloatType;
  weights?: WeightMode;
}

/**
 * Probe graph: ids, positions, targets [T] and a float loss mask [T] →
 * `loss` = Σ mask·CE / Σ mask, `logits` [N, V] at the N positions where mask ≠ 0, and, with the
 * backward pass, `z.{l}` [T, m] and `dh.{l}` = dL/dh_l [T, d] (or `dz.{l}` = dL/dz_l [T, m], `wrt: 'z'`)
 * for every layer from `fromLayer` up.
 */
export function buildProbeGraph(cfg: ModelConfig, options: ProbeOptions = {}): Uint8Array {
  const floatType = options.floatType ?? 'float32';
  const b = new DecoderBuilder(cfg, floatType, options.weights ?? 'inputs', options);
  const g = b.g;
  const ids = g.input('ids', 'int64', ['T']);
  const positions = g.input('positions', 'int64', ['T']);
  const targets = g.input('targets', 'int64', ['T']);
  const mask = g.input('mask', floatType, ['T']);
  const body = b.body(ids, positions, null);
  // The LM head runs only where the loss looks: at 150k-token vocabularies it dominates otherwise.
  const where = g.nonZero1d(g.greater(mask, g.scalar(0)), 'N');
  const logits = b.logits(g.gather(body.final, where, 0));
  const logp = g.logSoftmax(logits, 1);
  const picked = g.squeeze(g.gatherElements(logp, g.unsqueeze(g.gather(targets, where, 0), 1), 1), 1);
  const weights = g.gather(mask, where, 0);
  const loss = g.div(g.neg(g.reduceSum(g.mul(picked, weights), [0], false)), g.reduceSum(weights, [0], false));
  g.output(loss, 'loss');
  g.output(logits, 'logits');
  if (options.backward ?? true) {
    const from = options.fromLayer ?? 0;
    if (!Number.isInteger(from) || from < 0 || from >= cfg.layers) throw new Error(`fromLayer ${from} is outside 0..${cfg.layers - 1}`);
    const wrt = options.wrt ?? 'h';
    const grads = g.grad(loss, (wrt === 'z' ? body.z : body.h).slice(from));
    body.z.slice(from).forEach((zl, i) => g.output(zl, `z.${from + i}`));
    grads.forEach((gl, i) => g.output(gl, `d${wrt}.${from + i}`));
  }
  return g.toModel(options.backward === false ? 'score' : 'probe');
}
