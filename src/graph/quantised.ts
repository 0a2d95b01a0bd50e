// Quantised weights in the graph (room graph/; the quantisation itself is model/quantise.ts):
// which weights a quantised model holds in MatMulNBits form, their tensor names, and the graph
// pieces that read them —
//   quantisedProduct  x · Ŵᵀ with com.microsoft MatMulNBits (decode) or as Gemm with Ŵ
//                     dequantised in the graph (probe, score, float64 checks); a matrix whose
//                     float Ŵ is over a chunk budget (DEQUANT_CHUNK_BYTES: the LM head) is
//                     multiplied in row chunks, one Ŵ chunk at a time. Its vector-Jacobian rule is
//                     gy · Ŵ (per chunk) with Ŵ rebuilt in the backward pass, so the backward is exact
//                     for Ŵ and the forward pass never keeps Ŵ alive; each Ŵ is made only once the
//                     product's other operand exists (dimsAfter), so none is made early;
//   dequantise        Ŵ (rows of it) from codes, scales and zero points with one DequantizeLinear
//                     per axis over the rows of blocks (4-bit codes and zero points unpacked to
//                     uint8 first), s·(q − z) in float32 exactly as MatMulNBits dequantises;
//   quantisedRows     rows of an 8-bit table (the embedding), gathered and dequantised
//                     (Cast, Sub, Mul on the gathered rows only).

import { Graph, type FloatType, type Value } from './builder';
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

const kBlocksOf = (w: QuantisedWeightSpec) => Math.ceil(w.k / w.spec.blockSize);

// ---- Ŵ by row ranges (blocked DequantizeLinear) ---------------------------------------------------

/** A range of rows [start, start + count) of a quantised matrix. */
export interface RowRange {
  start: number;
  count: number;
}

/**
 * Which copy of Ŵ a dequantisation builds. The backward pass's copy reshapes the tensors with −1
 * for the row count where the forward's names it: the same numbers, but different nodes from
 * the very first one, so onnxruntime's common-subexpression elimination cannot merge the two
 * (which would keep every layer's Ŵ, or its unpacked codes, alive from the forward to the
 * backward pass). test/unit/quantised-dequant.test.ts checks that onnxruntime keeps both.
 */
export type Copy = 'forward' | 'backward';

/**
 * `t` [N·a] or [N, …] viewed as [N, a], then rows `r` (no Slice when r is every row). The Slice
 * names both axes (all of axis 1): onnxruntime would fuse one-axis Slices that cover the matrix
 * into a Split, which makes every chunk's copy of the codes at once.
 */
function rowsOf(g: Graph, t: Value, w: QuantisedWeightSpec, a: number, r: RowRange, copy: Copy): Value {
  const whole = g.reshape(t, [copy === 'forward' ? w.n : -1, a], [w.n, a]);
  return r.start === 0 && r.count === w.n ? whole : g.sliceAxes(whole, [r.start, 0], [r.start + r.count, a], [0, 1], [r.count, a]);
}

/** Codes of rows `r` as uint8 [count, kBlocks·blockSize] (4-bit codes unpacked, low nibble first). */
function codeRows(g: Graph, q: QuantisedValue, r: RowRange, copy: Copy): Value {
  const { w } = q;
  const bytes = kBlocksOf(w) * blobBytes(w.spec);
  const packed = rowsOf(g, q.codes, w, bytes, r, copy);
  return w.spec.bits === 8 ? packed : unpackNibbles(g, packed, [r.count, bytes]);
}

/** Zero points of rows `r` as uint8 [count, kBlocks]. */
function zeroPointRows(g: Graph, q: QuantisedValue, r: RowRange, copy: Copy): Value {
  const { w } = q;
  const kBlocks = kBlocksOf(w);
  const per = zeroPointBytes(w.spec, kBlocks);
  const packed = rowsOf(g, q.zeroPoints, w, per, r, copy);
  if (w.spec.bits === 8) return packed;
  const zp = unpackNibbles(g, packed, [r.count, per]);
  return 2 * per === kBlocks ? zp : g.slice(zp, 1, 0, kBlocks, [r.count, kBlocks]);
}

/**
 * The constant `dims` as a value computed after `after` (0 · its first dimension + dims). A
 * dequantisation whose codes are reshaped by it cannot run before `after` exists: onnxruntime's
 * execution order otherwise ran every layer's forward dequantisation at the start of the run
 * (they read graph inputs only), holding all of them at once (1.2 GB more at Qwen2.5-Coder-0.5B).
 */
function dimsAfter(g: Graph, dims: readonly number[], after: Value): Value {
  const first = g.gather(g.shapeOf(after), g.ints([0]), 0);
  return g.add(g.mul(first, g.scalar(0, 'int64')), g.ints(dims));
}

/**
 * Rows `r` of Ŵ, [count, K]: one DequantizeLinear, per axis over the rows of blocks — codes as
 * [count·kBlocks, blockSize] with one scale and zero point per row — (q − z)·s in float32, bit for
 * bit what dequantiseMatrix and MatMulNBits compute; the padding of a partial last block sliced
 * off; cast to `floatType`. Per axis (opset 13), not the blocked form of opset 21 (axis 1,
 * block_size): the same numbers, but onnxruntime 1.30's blocked kernel took twice as long
 * (docs/quantised.md). With `after` (the product's other operand), it runs only once that exists.
 */
export function dequantiseRows(g: Graph, q: QuantisedValue, r: RowRange, floatType: FloatType = 'float32', copy: Copy = 'forward', after?: Value): Value {
  const { w } = q;
  const kBlocks = kBlocksOf(w);
  const padded = kBlocks * w.spec.blockSize;
  const blocks = r.count * kBlocks;
  const blockDims = [blocks, w.spec.blockSize];
  const unpacked = codeRows(g, q, r, copy);
  const codes = after ? g.reshapeTo(unpacked, dimsAfter(g, blockDims, after), blockDims) : g.reshape(unpacked, blockDims, blockDims);
  const scales = g.reshape(rowsOf(g, q.scales, w, kBlocks, r, copy), [blocks], [blocks]);
  const zeroPoints = g.reshape(zeroPointRows(g, q, r, copy), [blocks], [blocks]);
  const values = g.reshape(g.dequantizeLinear(codes, scales, zeroPoints, 0), [r.count, padded], [r.count, padded]);
  const out = padded === w.k ? values : g.slice(values, 1, 0, w.k, [r.count, w.k]);
  return floatType === 'float32' ? out : g.cast(out, floatType);
}

/** Ŵ [N, K] in float32 (cast to `floatType`), exactly s·(q − z) as MatMulNBits dequantises. */
export function dequantise(g: Graph, q: QuantisedValue, floatType: FloatType = 'float32', copy: Copy = 'forward'): Value {
  return dequantiseRows(g, q, { start: 0, count: q.w.n }, floatType, copy);
}

// ---- rows of the embedding table (Cast, Sub, Mul on the gathered rows) ---------------------------

/** Zero points of rows `ids` as float32 [T, kBlocks, 1]. */
function zeroPointColumn(g: Graph, q: QuantisedValue, ids: Value): Value {
  const { w } = q;
  const per = zeroPointBytes(w.spec, kBlocksOf(w));
  const zp = g.gather(g.reshape(q.zeroPoints, [w.n, per], [w.n, per]), ids, 0);
  return g.unsqueeze(g.cast(zp, 'float32'), 2);
}

/** Scales of rows `ids` as [T, kBlocks, 1]. */
function scaleColumn(g: Graph, q: QuantisedValue, ids: Value): Value {
  const kBlocks = kBlocksOf(q.w);
  return g.unsqueeze(g.gather(g.reshape(q.scales, [q.w.n, kBlocks], [q.w.n, kBlocks]), ids, 0), 2);
}

/** Rows `ids` [T] of an 8-bit quantised table, dequantised: [T, K]. Not differentiable (a lookup). */
export function quantisedRows(g: Graph, q: QuantisedValue, ids: Value, floatType: FloatType = 'float32'): Value {
  const { w } = q;
  if (w.spec.bits !== 8) throw new Error(`internal: the row table ${w.name} must be 8-bit`);
  const T = ids.shape[0];
  const padded = kBlocksOf(w) * w.spec.blockSize;
  const centred = g.sub(g.cast(g.gather(q.codes, ids, 0), 'float32'), zeroPointColumn(g, q, ids));
  const flat = g.reshape(g.mul(centred, scaleColumn(g, q, ids)), [0, padded], [T, padded]);
  const out = padded === w.k ? flat : g.slice(flat, 1, 0, w.k, [T, w.k]);
  return floatType === 'float32' ? out : g.cast(out, floatType);
}

// ---- products ------------------------------------------------------------------------------------

/**
 * Largest float Ŵ (bytes) a dequantised product builds at once: a matrix over it is multiplied in
 * row chunks, each chunk's Ŵ built, used and dropped before the next. At Qwen2.5-Coder-0.5B size
 * only the LM head (151936 × 896, 544 MB in float32) is over it: 9 chunks of about 60 MB.
 */
export const DEQUANT_CHUNK_BYTES = 64 * 2 ** 20;

/** The row chunks of `w` whose float Ŵ (`bytes` per value) each fit `chunkBytes` (one chunk when all of it fits). */
export function rowChunks(w: { n: number; k: number }, bytes: number, chunkBytes: number = DEQUANT_CHUNK_BYTES): RowRange[] {
  if (!(chunkBytes > 0)) throw new Error(`the dequantisation chunk budget must be a positive number of bytes, not ${chunkBytes}`);
  const count = Math.min(w.n, Math.max(1, Math.ceil((w.n * w.k * bytes) / chunkBytes)));
  const per = Math.ceil(w.n / count);
  const out: RowRange[] = [];
  for (let start = 0; start < w.n; start += per) out.push({ start, count: Math.min(per, w.n - start) });
  return out;
}

/**
 * x [T, K] · Ŵᵀ → [T, N] as Gemm on Ŵ dequantised in the graph, in row chunks (rowChunks): the
 * chunks' products are joined along N, so the backward (Concat's rule splits gy) is
 * Σ_c gy_c · Ŵ_c, each Ŵ_c rebuilt in the backward pass (gemmRebuilt).
 */
function dequantisedProduct(g: Graph, x: Value, q: QuantisedValue, ft: FloatType, chunkBytes: number): Value {
  const parts = rowChunks(q.w, ft === 'float64' ? 8 : 4, chunkBytes).map((r) =>
    g.gemmRebuilt(x, dequantiseRows(g, q, r, ft, 'forward', x), (gg, gy) => dequantiseRows(gg, q, r, ft, 'backward', gy)),
  );
  return parts.length === 1 ? parts[0] : g.concat(parts, 1);
}

/** How a graph multiplies by Ŵ: MatMulNBits (decode), or Gemm with Ŵ dequantised in the graph (probe). */
export type ProductKind = 'nbits' | 'dequantised';

/**
 * x [T, K] · Ŵᵀ → [T, N]; both kinds' rules give dL/dx = gy · Ŵ from a dequantisation emitted in
 * the backward pass, so the forward pass never holds Ŵ in float beyond its own product.
 *  - 'nbits': one MatMulNBits node (float32 only). Fast where the codes are an initializer
 *    (prepacked); with codes fed as inputs onnxruntime dequantises them on every run, slower than
 *    'dequantised' (docs/quantised.md).
 *  - 'dequantised': Gemm with Ŵ dequantised in the graph (one DequantizeLinear), in the graph's
 *    float type, in row chunks of at most `chunkBytes` of float Ŵ — the probe and score graphs use
 *    it, and so do the float64 gradient checks (onnxruntime has no float64 MatMulNBits).
 */
export function quantisedProduct(g: Graph, x: Value, q: QuantisedValue, accuracyLevel: number, kind: ProductKind = 'nbits', chunkBytes: number = DEQUANT_CHUNK_BYTES): Value {
  const { w } = q;
  const ft = x.dtype === 'float64' ? 'float64' : 'float32';
  if (ft === 'float64' || kind === 'dequantised') return dequantisedProduct(g, x, q, ft, chunkBytes);
  const attributes = {
    K: { kind: 'int' as const, value: w.k },
    N: { kind: 'int' as const, value: w.n },
    bits: { kind: 'int' as const, value: w.spec.bits },
    block_size: { kind: 'int' as const, value: w.spec.blockSize },
    accuracy_level: { kind: 'int' as const, value: accuracyLevel },
  };
  return g.contribOp('MatMulNBits', [x, q.codes, q.scales, q.zeroPoints], { dtype: x.dtype, shape: [x.shape[0], w.n] }, attributes, (gg, _op, [gy], needs) => [
    needs[0] ? gg.gemm(gy!, dequantiseRows(gg, q, { start: 0, count: w.n }, 'float32', 'backward', gy), undefined, false) : undefined,
    undefined,
    undefined,
    undefined,
  ]);
}
