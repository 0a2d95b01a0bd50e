// The decode graph's layers with onnxruntime's fused CPU kernels (com.microsoft contrib ops,
// forward only): the same model function as DecoderBuilder.body in decoder.ts, in about a third of
// the nodes, so a one-token step is not dominated by per-node overhead. Owns fusedDecodeReason
// (which configurations it can build) and fusedDecodeBody (the stack, from the embedding to the
// final norm). Per layer:
//   residual add + norm   SkipSimplifiedLayerNormalization (llama) / SkipLayerNormalization (gpt2),
//                         the sum of the residual stream taken from its fourth output;
//   attention             one GroupQueryAttention: causal (and sliding-window) mask, scale,
//                         softmax, the KV cache concatenation and, where the head size is a multiple
//                         of 16, RoPE (cos/sin tables built from constants, folded by onnxruntime);
//                         smaller heads are rotated in the graph as decoder.ts does;
//   MLP                   the projections of decoder.ts (Gemm or MatMulNBits), FastGelu/Gelu for
//                         the gpt2 family (onnxruntime fuses x·sigmoid(x) itself), and the patch
//                         term as Gemm(z[rows], deltas, C = W_down z + b) — one node, no Add.
// With MatMulNBits weights, q, k and v are one MatMulNBits on codes stacked along N (feeding
// GroupQueryAttention's packed input), and so are gate and up (split after): the activations are
// quantised once, not per matrix (stackedProduct).
// The past caches are [1, KV, C, hd] buffers (runtime/kv-buffers.ts) whose first P positions are
// filled; GroupQueryAttention reads those P and makes its present cache inside onnxruntime, and
// the graph outputs only the T new positions [1, KV, T, hd] (a Slice of the present), which the
// runtime writes into the buffers at P — onnxruntime-node copies every fetched output into a new
// JavaScript buffer, so a present output as long as the cache cost a copy of the whole cache per
// token. P is read from the positions input, which must be P, P+1, … (what
// ModelRuntime.decode feeds; GroupQueryAttention rotates by them); decoder.ts's graph reads
// positions and takes P from its caches' shape. float32 only (the contrib kernels are). Written
// for the CPU provider; on WebGPU (lavapipe) test/unit/decode-layer.test.ts finds the CPU's logits
// and caches on the fp32 fixtures, but its speed there is unmeasured.

import { Graph, type Dim, type ElemType, type Value } from '../builder';
import { MS_DOMAIN, type AttributeValue } from '../onnx-proto';
import type { ModelConfig } from '../../model/config';
import { quantisedProduct, type QuantisedValue } from '../quantised';

/** What the fused layers take from the decoder builder: its graph, weights and products. */
export interface DecodeTools {
  readonly g: Graph;
  readonly cfg: ModelConfig;
  /** x · Wᵀ (+ b) for the linear map `prefix` (quantised, split or whole, as decoder.ts builds it). */
  linear(x: Value, prefix: string): Value;
  weight(name: string): Value;
  /** Rows `ids` of a row table (the embedding, learned positions). */
  rows(weight: string, ids: Value): Value;
  /** The neuron patch inputs of layer `l`: rows [k] and deltas [k, d]. */
  patch(l: number): { rows: Value; deltas: Value };
  /** The bias of linear map `prefix`, if it has one. */
  bias(prefix: string): Value | undefined;
  /** The MatMulNBits tensors of weight `name` when the graph multiplies it as MatMulNBits (else undefined). */
  nbits(name: string): QuantisedValue | undefined;
  /** MatMulNBits accuracy_level of the graph's products. */
  readonly accuracyLevel: number;
}

export interface DecodeBody {
  /** The final norm's output, [T, d]. */
  final: Value;
  present: { key: Value; value: Value }[];
}

/** Why `cfg` cannot use the fused decode layers (null: it can). */
export function fusedDecodeReason(cfg: ModelConfig, floatType: string): string | null {
  if (floatType !== 'float32') return `the fused kernels are float32 only, not ${floatType}`;
  if (cfg.headDim % 8 !== 0) return `GroupQueryAttention needs a head size that is a multiple of 8, not ${cfg.headDim}`;
  if (cfg.heads % cfg.kvHeads !== 0) return `${cfg.heads} query heads do not group over ${cfg.kvHeads} key/value heads`;
  return null;
}

// ---- nodes the builder has no method for -------------------------------------------------------


/** One forward-only node with any number of outputs, in the ONNX domain or com.microsoft (Graph.node). */
function node(g: Graph, opType: string, domain: string | undefined, inputs: readonly Value[], outs: readonly { dtype: ElemType; shape: readonly Dim[]; name?: string }[], attributes: Record<string, AttributeValue> = {}): Value[] {
  return g.node(opType, inputs, outs, attributes, domain === MS_DOMAIN);
}

const int = (value: number): AttributeValue => ({ kind: 'int', value });
const float = (value: number): AttributeValue => ({ kind: 'float', value });
/** An omitted optional input or output. */
const none = (dtype: ElemType) => ({ dtype, shape: [], name: '' });

function toInt32(g: Graph, x: Value): Value {
  return g.cast(x, 'int32');
}

// ---- norms ----------------------------------------------------------------------------------------

/** Norm of `x` [T, d] (RMSNorm or LayerNorm by family) with the weights `prefix`. */
function norm(t: DecodeTools, x: Value, prefix: string): Value {
  const { g, cfg } = t;
  const eps = float(cfg.normEps);
  if (cfg.family === 'llama') return node(g, 'SimplifiedLayerNormalization', undefined, [x, t.weight(`${prefix}.weight`)], [{ dtype: x.dtype, shape: x.shape }], { axis: int(-1), epsilon: eps, stash_type: int(1) })[0];
  return node(g, 'LayerNormalization', undefined, [x, t.weight(`${prefix}.weight`), t.weight(`${prefix}.bias`)], [{ dtype: x.dtype, shape: x.shape }], { axis: int(-1), epsilon: eps })[0];
}

/** norm(x + skip) and the sum x + skip itself (the residual stream after the add). */
function skipNorm(t: DecodeTools, x: Value, skip: Value, prefix: string): { normed: Value; sum: Value } {
  const { g, cfg } = t;
  const llama = cfg.family === 'llama';
  const inputs = llama ? [x, skip, t.weight(`${prefix}.weight`)] : [x, skip, t.weight(`${prefix}.weight`), t.weight(`${prefix}.bias`)];
  const spec = { dtype: x.dtype, shape: x.shape };
  const [normed, , , sum] = node(g, llama ? 'SkipSimplifiedLayerNormalization' : 'SkipLayerNormalization', MS_DOMAIN, inputs, [spec, none(x.dtype), none(x.dtype), spec], { epsilon: float(cfg.normEps) });
  return { normed, sum };
}

// ---- positions --------------------------------------------------------------------------------------

/** RoPE inverse frequencies, as decoder.ts computes them (float64, rounded to float32 by the constant). */
function inverseFrequencies(cfg: ModelConfig): number[] {
  const hd = cfg.headDim;
  return Array.from({ length: hd / 2 }, (_, j) => 1 / Math.pow(cfg.ropeTheta, (2 * j) / hd));
}

/**
 * GroupQueryAttention's cos/sin caches [maxPositions, hd/2]: cos(p·inv_j) for every position p,
 * from constants only (Range, Cast, Mul, Cos), so onnxruntime folds them at session creation; the
 * same float32 arithmetic as decoder.ts's tables, which repeat the halves.
 */
function ropeCaches(g: Graph, cfg: ModelConfig): { cos: Value; sin: Value } {
  const n = cfg.maxPositions;
  const p = g.range(g.scalar(0, 'int64'), g.scalar(n, 'int64'), g.scalar(1, 'int64'), [n]);
  const freqs = g.mul(g.unsqueeze(g.cast(p, 'float32'), 1), g.constant(inverseFrequencies(cfg), [cfg.headDim / 2]));
  return { cos: g.unaryNoGrad('Cos', freqs), sin: g.unaryNoGrad('Sin', freqs) };
}

/** cos and sin [T, 1, hd] of `positions`, exactly decoder.ts's tables, for heads rotated in the graph. */
function ropeTables(g: Graph, cfg: ModelConfig, positions: Value): { cos: Value; sin: Value } {
  const hd = cfg.headDim;
  const freqs = g.mul(g.unsqueeze(g.cast(positions, 'float32'), 1), g.constant(inverseFrequencies(cfg), [hd / 2]));
  const emb = g.unsqueeze(g.concat([freqs, freqs], 1), 1);
  return { cos: g.unaryNoGrad('Cos', emb), sin: g.unaryNoGrad('Sin', emb) };
}

/** RoPE (rotate_half) of `x` [T, n·hd] by tables [T, 1, hd], as decoder.ts rotates. */
function rotate(g: Graph, x: Value, n: number, hd: number, table: { cos: Value; sin: Value }): Value {
  const T = x.shape[0];
  const heads = g.reshape(x, [0, n, hd], [T, n, hd]);
  const [x1, x2] = g.split(heads, 2, [hd / 2, hd / 2]);
  const rotated = g.add(g.mul(heads, table.cos), g.mul(g.concat([g.neg(x2), x1], 2), table.sin));
  return g.reshape(rotated, [0, n * hd], [T, n * hd]);
}

// ---- the stack -------------------------------------------------------------------------------------

/** What every layer's attention shares: lengths for GroupQueryAttention and the RoPE inputs. */
interface AttentionShared {
  seqlensK: Value;
  total: Value;
  /** The step's positions P..P+T−1 as Slice bounds [P], [P+T] (int64) over a cache's position axis. */
  step: { start: Value; end: Value };
  /** Caches for GroupQueryAttention's own rotary (head size a multiple of 16). */
  caches: { cos: Value; sin: Value } | null;
  /** Tables for heads rotated in the graph (llama family, other head sizes). */
  tables: { cos: Value; sin: Value } | null;
}

/** Lengths from the positions P..P+T−1: seqlens_k = P + T − 1 (the last position), total = P + T. */
function attentionShared(t: DecodeTools, positions: Value): AttentionShared {
  const { g, cfg } = t;
  const last = g.slice(positions, 0, -1, Number.MAX_SAFE_INTEGER, [1]);
  const rope = cfg.family === 'llama';
  const own = rope && cfg.headDim % 16 === 0;
  const end = g.add(last, g.ints([1]));
  return {
    seqlensK: toInt32(g, last),
    total: toInt32(g, end),
    step: { start: g.slice(positions, 0, 0, 1, [1]), end },
    caches: own ? ropeCaches(g, cfg) : null,
    tables: rope && !own ? ropeTables(g, cfg, positions) : null,
  };
}

/**
 * x · [W_1; W_2; …]ᵀ (+ the stacked biases) for the linear maps `prefixes` as one MatMulNBits,
 * when all of them are MatMulNBits of one spec: their codes, scales and zero points are stacked
 * along N by Concat of initializers (onnxruntime folds it, then prepacks the result), the biases by
 * Concat of the bias inputs. Each output column is the same product as the map's own (the
 * activations are quantised per block of K, the same for every column), the activations are
 * quantised once instead of once per map, and one node runs instead of several. Null otherwise.
 */
function stackedProduct(t: DecodeTools, x: Value, prefixes: readonly string[], name: string): Value | null {
  const { g } = t;
  const parts = prefixes.map((p) => t.nbits(`${p}.weight`));
  if (parts.some((p) => p === undefined)) return null;
  const qs = parts as QuantisedValue[];
  if (qs.some((p) => p.w.spec.bits !== qs[0].w.spec.bits || p.w.spec.blockSize !== qs[0].w.spec.blockSize || p.w.k !== qs[0].w.k)) return null;
  const biases = prefixes.map((p) => t.bias(p));
  const biased = biases.filter((b) => b !== undefined);
  if (biased.length !== 0 && biased.length !== biases.length) return null;
  const stack = (pick: (p: QuantisedValue) => Value) => g.concat(qs.map(pick), 0);
  const w = { ...qs[0].w, name, n: qs.reduce((n, p) => n + p.w.n, 0) };
  const y = quantisedProduct(g, x, { w, codes: stack((p) => p.codes), scales: stack((p) => p.scales), zeroPoints: stack((p) => p.zeroPoints) }, t.accuracyLevel, 'nbits');
  return biased.length === 0 ? y : g.add(y, g.concat(biased, 0));
}

/**
 * Self-attention of layer `l` on the normed input `xn` [T, d]: the o-projection's input [T, H·hd]
 * and the step's new keys and values [1, KV, T, hd] (named `names`), cut from the present caches.
 */
function attention(t: DecodeTools, xn: Value, l: number, past: { key: Value; value: Value }, s: AttentionShared, names: { key: string; value: string }): { context: Value; key: Value; value: Value } {
  const { g, cfg } = t;
  const { heads: H, kvHeads: KV, headDim: hd } = cfg;
  const T = xn.shape[0];
  const packed = s.tables ? null : stackedProduct(t, xn, [`l${l}.q`, `l${l}.k`, `l${l}.v`], `l${l}.qkv`);
  let qkv: Value[];
  if (packed) qkv = [g.unsqueeze(packed, 0), none(packed.dtype), none(packed.dtype)];
  else {
    let q = t.linear(xn, `l${l}.q`);
    let k = t.linear(xn, `l${l}.k`);
    const v = t.linear(xn, `l${l}.v`);
    if (s.tables) {
      q = rotate(g, q, H, hd, s.tables);
      k = rotate(g, k, KV, hd, s.tables);
    }
    qkv = [g.unsqueeze(q, 0), g.unsqueeze(k, 0), g.unsqueeze(v, 0)];
  }
  const dtype = qkv[0].dtype;
  const inputs = [...qkv, past.key, past.value, s.seqlensK, s.total, ...(s.caches ? [s.caches.cos, s.caches.sin] : [])];
  const attributes: Record<string, AttributeValue> = { num_heads: int(H), kv_num_heads: int(KV), do_rotary: int(s.caches ? 1 : 0), rotary_interleaved: int(0) };
  // onnxruntime's window counts the query's own key: decoder.ts's mask shows keys p − w < k ≤ p.
  if (cfg.slidingWindow !== null) attributes.local_window_size = int(cfg.slidingWindow);
  const present = { dtype, shape: past.key.shape };
  const [context, key, value] = node(g, 'GroupQueryAttention', MS_DOMAIN, inputs, [{ dtype, shape: [1, T, H * hd] }, present, present], attributes);
  const axis = g.ints([2]);
  const added = (cache: Value, name: string) => node(g, 'Slice', undefined, [cache, s.step.start, s.step.end, axis], [{ dtype, shape: [1, KV, T, hd], name }])[0];
  return { context: g.squeeze(context, 0), key: added(key, names.key), value: added(value, names.value) };
}

/** The MLP's activation: x·sigmoid(x) (onnxruntime fuses it into QuickGelu), FastGelu or Gelu. */
function activate(g: Graph, cfg: ModelConfig, x: Value): Value {
  if (cfg.activation === 'silu') return g.mul(x, g.sigmoid(x));
  return node(g, cfg.activation === 'gelu_tanh' ? 'FastGelu' : 'Gelu', MS_DOMAIN, [x], [{ dtype: x.dtype, shape: x.shape }])[0];
}

/** The MLP of layer `l` on its normed input [T, d], with the layer's neuron patch: W_down z + b + deltasᵀ z[rows]. */
function mlp(t: DecodeTools, mn: Value, l: number): Value {
  const { g, cfg } = t;
  let z: Value;
  if (cfg.family === 'llama') {
    const m = cfg.intermediate;
    const both = stackedProduct(t, mn, [`l${l}.gate`, `l${l}.up`], `l${l}.gate_up`);
    const [gate, up] = both ? g.split(both, 1, [m, m]) : [t.linear(mn, `l${l}.gate`), t.linear(mn, `l${l}.up`)];
    z = g.mul(activate(g, cfg, gate), up);
  } else z = activate(g, cfg, t.linear(mn, `l${l}.up`));
  const p = t.patch(l);
  return g.gemm(g.gather(z, p.rows, 1), p.deltas, t.linear(z, `l${l}.down`), false);
}

/**
 * The whole stack for token ids [T] at positions P.. (past key/value buffers [1, KV, C, hd] per
 * layer, the first P positions filled): the final norm's output and each layer's new keys and
 * values [1, KV, T, hd], output under `presentNames`.
 */
export function fusedDecodeBody(t: DecodeTools, ids: Value, positions: Value, past: { key: Value; value: Value }[], presentNames: (l: number) => { key: string; value: string }): DecodeBody {
  const { g, cfg } = t;
  const reason = fusedDecodeReason(cfg, g.floatType);
  if (reason) throw new Error(`internal: fused decode layers: ${reason}`);
  let x = t.rows('embed', ids);
  if (cfg.family === 'gpt2') x = g.add(x, t.rows('position_embed', positions));
  const shared = attentionShared(t, positions);
  const present: { key: Value; value: Value }[] = [];
  let h: Value | null = null;
  for (let l = 0; l < cfg.layers; l++) {
    let xn: Value;
    if (h === null) xn = norm(t, x, `l${l}.attn_norm`);
    else ({ normed: xn, sum: x } = skipNorm(t, x, h, `l${l}.attn_norm`));
    const a = attention(t, xn, l, past[l], shared, presentNames(l));
    present.push({ key: a.key, value: a.value });
    const { normed: mn, sum } = skipNorm(t, x, t.linear(a.context, `l${l}.o`), `l${l}.mlp_norm`);
    x = sum;
    h = mlp(t, mn, l);
  }
  const final = h === null ? norm(t, x, 'final_norm') : skipNorm(t, x, h, 'final_norm').normed;
  return { final, present };
}
