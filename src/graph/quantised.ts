// Quantised weights in the graph (room graph/; the quantisation itself is model/quantise.ts):
// which weights a quantised model holds in MatMulNBits form, their tensor names, and the three
// graph pieces that read them —
//   quantisedProduct  x · Ŵᵀ with com.microsoft MatMulNBits (decode) or as a Gemm with Ŵ
//                     dequantised in the graph (probe, float64 checks); its vector-Jacobian rule
//                     is gy · Ŵ with a fresh in-graph Ŵ, so the backward pass is exact for Ŵ;
//   dequantise        Ŵ [N, K] from codes, scales and zero points (4-bit codes unpacked with
//                     BitwiseAnd/BitShift), s·(q − z) in float32 like the op;
//   quantisedRows     rows of an 8-bit table (the embedding), gathered and dequantised.

import { Graph, type Dim, type FloatType, type Value } from './builder';
import type { ModelConfig } from '../model/config';
import { blobBytes, checkQuantSpec, zeroPointBytes, type QuantSpec } from '../model/quantise';

/** How a quantised graph multiplies: the block layout and MatMulNBits' accuracy_level. */
export interface QuantOptions extends QuantSpec {
  /**
   * MatMulNBits accuracy_level: 0 or 1 computes in float32; 4 quantises the activations to int8
   * per block (onnxruntime's fastest CPU kernel; only where the codes are an initializer).
   */
  accuracyLevel: number;
}

/** A weight matrix the quantised graphs take in MatMulNBits form. */
export interface QuantisedWeightSpec {
  /** Tensor name prefix ('embed', 'lm_head', 'l0.q.weight', …). */
  name: string;
  /** Canonical weight whose values it holds (a tied LM head quantises 'embed'). */
  source: string;
  n: number;
  k: number;
  spec: QuantSpec;
}

export const codesName = (name: string) => `${name}.codes`;
export const scalesName = (name: string) => `${name}.scales`;
export const zeroPointsName = (name: string) => `${name}.zero_points`;

/**
 * The quantised weights of `cfg` at `spec`: every linear map (q, k, v, o, gate, up, down) and the
 * LM head at spec.bits, and the embedding as an 8-bit table (gathered, never multiplied). A tied
 * LM head at 8 bits is that table itself; at 4 bits it is a second, 4-bit copy called 'lm_head'.
 */
export function quantisedWeightSpecs(cfg: ModelConfig, spec: QuantSpec): QuantisedWeightSpec[] {
  checkQuantSpec(spec);
  const { hidden: d, intermediate: m, heads: H, kvHeads: KV, headDim: hd, vocab: V } = cfg;
  const table: QuantSpec = { bits: 8, blockSize: spec.blockSize };
  const out: QuantisedWeightSpec[] = [{ name: 'embed', source: 'embed', n: V, k: d, spec: table }];
  const linear = (name: string, n: number, k: number) => out.push({ name, source: name, n, k, spec });
  for (let l = 0; l < cfg.layers; l++) {
    linear(`l${l}.q.weight`, H * hd, d);
    linear(`l${l}.k.weight`, KV * hd, d);
    linear(`l${l}.v.weight`, KV * hd, d);
    linear(`l${l}.o.weight`, d, H * hd);
    if (cfg.family !== 'gpt2') linear(`l${l}.gate.weight`, m, d);
    linear(`l${l}.up.weight`, m, d);
    linear(`l${l}.down.weight`, d, m);
  }
  if (!cfg.tiedEmbeddings) out.push({ name: 'lm_head', source: 'lm_head', n: V, k: d, spec });
  else if (spec.bits !== 8) out.push({ name: 'lm_head', source: 'embed', n: V, k: d, spec });
  return out;
}

/** The name of the quantised matrix that serves as the LM head. */
export function lmHeadName(cfg: ModelConfig, spec: QuantSpec): string {
  return cfg.tiedEmbeddings && spec.bits === 8 ? 'embed' : 'lm_head';
}

/** Shapes of the three tensors of a quantised weight. */
export function quantisedTensorShapes(w: QuantisedWeightSpec): { codes: number[]; scales: number[]; zeroPoints: number[] } {
  const kBlocks = Math.ceil(w.k / w.spec.blockSize);
  return { codes: [w.n, kBlocks, blobBytes(w.spec)], scales: [w.n * kBlocks], zeroPoints: [w.n * zeroPointBytes(w.spec, kBlocks)] };
}

/** The graph values of one quantised weight. */
export interface QuantisedValue {
  codes: Value;
  scales: Value;
  zeroPoints: Value;
  w: QuantisedWeightSpec;
}

/** Unpacks 4-bit codes [..., b] (uint8) into [..., 2b], low nibble first. */
function unpackNibbles(g: Graph, packed: Value, shape: readonly number[]): Value {
  const last = shape.length;
  const lo = g.unsqueeze(g.bitwiseAnd(packed, g.scalar(15, 'uint8')), last);
  const hi = g.unsqueeze(g.shiftRight(packed, g.scalar(4, 'uint8')), last);
  const both = g.concat([lo, hi], last);
  const out = [...shape.slice(0, -1), shape[shape.length - 1] * 2];
  return g.reshape(both, out, out);
}

/** Zero points as float32 [N, kBlocks, 1]. */
function zeroPointColumn(g: Graph, q: QuantisedValue, rows: Value | null): Value {
  const { w } = q;
  const kBlocks = Math.ceil(w.k / w.spec.blockSize);
  const per = zeroPointBytes(w.spec, kBlocks);
  let zp = g.reshape(q.zeroPoints, [w.n, per], [w.n, per]);
  if (w.spec.bits === 4) {
    zp = unpackNibbles(g, zp, [w.n, per]);
    if (2 * per !== kBlocks) zp = g.slice(zp, 1, 0, kBlocks, [w.n, kBlocks]);
  }
  if (rows) zp = g.gather(zp, rows, 0);
  return g.unsqueeze(g.cast(zp, 'float32'), 2);
}

function scaleColumn(g: Graph, q: QuantisedValue, rows: Value | null): Value {
  const kBlocks = Math.ceil(q.w.k / q.w.spec.blockSize);
  let s = g.reshape(q.scales, [q.w.n, kBlocks], [q.w.n, kBlocks]);
  if (rows) s = g.gather(s, rows, 0);
  return g.unsqueeze(s, 2);
}

/**
 * (codes − z) · s for codes [R, kBlocks, blockSize] as float32, reshaped to [R, K]. `swap` writes
 * the product as s · (codes − z): the same numbers, but a different node, so onnxruntime's common
 * subexpression elimination does not merge a backward-pass copy of Ŵ into the forward pass's
 * (which would keep every Ŵ alive from the forward to the backward pass).
 */
function scaleBlocks(g: Graph, codes: Value, zp: Value, scale: Value, R: Dim, w: QuantisedWeightSpec, swap = false): Value {
  const kBlocks = Math.ceil(w.k / w.spec.blockSize);
  const padded = kBlocks * w.spec.blockSize;
  const centred = g.sub(g.cast(codes, 'float32'), zp);
  const values = swap ? g.mul(scale, centred) : g.mul(centred, scale);
  const flat = g.reshape(values, [0, padded], [R, padded]);
  return padded === w.k ? flat : g.slice(flat, 1, 0, w.k, [R, w.k]);
}

/** Ŵ [N, K] in float32 (cast to `floatType`), exactly s·(q − z) as MatMulNBits dequantises. */
export function dequantise(g: Graph, q: QuantisedValue, floatType: FloatType = 'float32', backward = false): Value {
  const { w } = q;
  const kBlocks = Math.ceil(w.k / w.spec.blockSize);
  const codes = w.spec.bits === 8 ? q.codes : unpackNibbles(g, q.codes, [w.n, kBlocks, blobBytes(w.spec)]);
  const out = scaleBlocks(g, codes, zeroPointColumn(g, q, null), scaleColumn(g, q, null), w.n, w, backward);
  return floatType === 'float32' ? out : g.cast(out, floatType);
}

/** Rows `ids` [T] of an 8-bit quantised table, dequantised: [T, K]. Not differentiable (a lookup). */
export function quantisedRows(g: Graph, q: QuantisedValue, ids: Value, floatType: FloatType = 'float32'): Value {
  if (q.w.spec.bits !== 8) throw new Error(`internal: the row table ${q.w.name} must be 8-bit`);
  const T = ids.shape[0];
  const out = scaleBlocks(g, g.gather(q.codes, ids, 0), zeroPointColumn(g, q, ids), scaleColumn(g, q, ids), T, q.w);
  return floatType === 'float32' ? out : g.cast(out, floatType);
}

/** How a graph multiplies by Ŵ: MatMulNBits (decode), or Gemm with Ŵ dequantised in the graph (probe). */
export type ProductKind = 'nbits' | 'dequantised';

/**
 * x [T, K] · Ŵᵀ → [T, N]; both kinds' rules give dL/dx = gy · Ŵ from a dequantisation emitted in
 * the backward pass, so the forward pass never holds Ŵ in float beyond its own product.
 *  - 'nbits': one MatMulNBits node (float32 only). Fast where the codes are an initializer
 *    (prepacked); with codes fed as inputs onnxruntime dequantises them on every run, slower than
 *    'dequantised' (docs/quantised.md).
 *  - 'dequantised': Gemm with Ŵ dequantised in the graph, in the graph's float type — the float64
 *    gradient checks use it (onnxruntime has no float64 MatMulNBits), and so does the probe.
 */
export function quantisedProduct(g: Graph, x: Value, q: QuantisedValue, accuracyLevel: number, kind: ProductKind = 'nbits'): Value {
  const { w } = q;
  const ft = x.dtype === 'float64' ? 'float64' : 'float32';
  if (ft === 'float64' || kind === 'dequantised') return g.gemmRebuilt(x, dequantise(g, q, ft), (gg) => dequantise(gg, q, ft, true));
  const attributes = {
    K: { kind: 'int' as const, value: w.k },
    N: { kind: 'int' as const, value: w.n },
    bits: { kind: 'int' as const, value: w.spec.bits },
    block_size: { kind: 'int' as const, value: w.spec.blockSize },
    accuracy_level: { kind: 'int' as const, value: accuracyLevel },
  };
  return g.contribOp('MatMulNBits', [x, q.codes, q.scales, q.zeroPoints], { dtype: x.dtype, shape: [x.shape[0], w.n] }, attributes, (gg, _op, [gy], needs) => [
    needs[0] ? gg.gemm(gy!, dequantise(gg, q, 'float32', true), undefined, false) : undefined,
    undefined,
    undefined,
    undefined,
  ]);
}
