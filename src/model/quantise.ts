// Block quantisation of weight matrices into onnxruntime's com.microsoft MatMulNBits layout (room
// model/: pure functions on weight arrays; the graph side is graph/quantised.ts). A matrix W
// [N, K] (Hugging Face [out, in] layout) is cut along K into blocks of `blockSize` values; each
// block gets a float32 scale s and an integer zero point z, and each value a code q in
// [0, 2^bits − 1]; the dequantised value is s · (q − z), computed in float32 as the op does.
//   B           uint8 [N, kBlocks, blockSize·bits/8], codes packed low-first along K (4-bit: the
//               even index in the low nibble);
//   scales      float32 [N · kBlocks];
//   zero points uint8 [N · ceil(kBlocks·bits/8)], packed like B (4-bit: two blocks per byte).
// kBlocks = ceil(K / blockSize); the padding of a last partial block holds the zero point, so it
// dequantises to 0. Quantisation is asymmetric min/max with 0 inside the range, so an all-zero
// block (and every zero weight) dequantises to exactly 0.

export type QuantBits = 4 | 8;

export interface QuantSpec {
  bits: QuantBits;
  /** Values per block along K: a power of two ≥ 16 (MatMulNBits' contract). */
  blockSize: number;
}

export interface QuantisedMatrix extends QuantSpec {
  /** Rows (output features). */
  n: number;
  /** Columns (input features, the reduction axis). */
  k: number;
  kBlocks: number;
  /** [n, kBlocks, blobBytes] */
  codes: Uint8Array;
  /** [n · kBlocks] */
  scales: Float32Array;
  /** [n · zeroPointBytes] */
  zeroPoints: Uint8Array;
}

export class QuantError extends Error {}

export function checkQuantSpec(spec: QuantSpec): void {
  if (spec.bits !== 4 && spec.bits !== 8) throw new QuantError(`quantisation needs 4 or 8 bits, not ${String(spec.bits)}`);
  const b = spec.blockSize;
  if (!Number.isInteger(b) || b < 16 || (b & (b - 1)) !== 0) throw new QuantError(`the block size must be a power of two ≥ 16, not ${b}`);
}

/** Bytes of one block's codes. */
export const blobBytes = (spec: QuantSpec): number => (spec.blockSize * spec.bits) / 8;
/** Bytes of one row's zero points. */
export const zeroPointBytes = (spec: QuantSpec, kBlocks: number): number => Math.ceil((kBlocks * spec.bits) / 8);

/** An all-zero matrix of the given size (every block: scale 0, zero point mid-range). */
export function emptyQuantised(n: number, k: number, spec: QuantSpec): QuantisedMatrix {
  checkQuantSpec(spec);
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1) throw new QuantError(`a quantised matrix needs positive integer sizes, not [${n}, ${k}]`);
  const kBlocks = Math.ceil(k / spec.blockSize);
  const q: QuantisedMatrix = {
    bits: spec.bits, blockSize: spec.blockSize, n, k, kBlocks,
    codes: new Uint8Array(n * kBlocks * blobBytes(spec)),
    scales: new Float32Array(n * kBlocks),
    zeroPoints: new Uint8Array(n * zeroPointBytes(spec, kBlocks)),
  };
  return q;
}

function putCode(bytes: Uint8Array, base: number, index: number, bits: QuantBits, code: number): void {
  if (bits === 8) bytes[base + index] = code;
  else {
    const at = base + (index >> 1);
    bytes[at] = index & 1 ? (bytes[at]! & 0x0f) | (code << 4) : (bytes[at]! & 0xf0) | code;
  }
}

function getCode(bytes: Uint8Array, base: number, index: number, bits: QuantBits): number {
  if (bits === 8) return bytes[base + index]!;
  const b = bytes[base + (index >> 1)]!;
  return index & 1 ? b >> 4 : b & 0x0f;
}

/**
 * Quantises row `row` of `q` from `values[offset .. offset + k)`. A NaN or infinity is refused:
 * it has no code.
 */
export function quantiseRow(q: QuantisedMatrix, row: number, values: Float32Array, offset = 0): void {
  const { k, kBlocks, blockSize, bits } = q;
  const top = (1 << bits) - 1;
  const blob = blobBytes(q);
  const zpBase = row * zeroPointBytes(q, kBlocks);
  const codes = q.codes;
  for (let b = 0; b < kBlocks; b++) {
    const start = offset + b * blockSize;
    const end = offset + Math.min(k, b * blockSize + blockSize);
    let lo = 0;
    let hi = 0;
    for (let i = start; i < end; i++) {
      const x = values[i]!;
      if (x < lo) lo = x;
      else if (x > hi) hi = x;
      else if (x !== x) throw new QuantError(`row ${row}, column ${i - offset}: NaN cannot be quantised`);
    }
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new QuantError(`row ${row}: ${Number.isFinite(lo) ? hi : lo} cannot be quantised`);
    const scale = Math.fround((hi - lo) / top);
    const zero = scale > 0 ? Math.min(top, Math.max(0, Math.round(-lo / scale))) : 1 << (bits - 1);
    q.scales[row * kBlocks + b] = scale;
    putCode(q.zeroPoints, zpBase, b, bits, zero);
    const inv = scale > 0 ? 1 / scale : 0;
    const codeBase = (row * kBlocks + b) * blob;
    const n = end - start;
    if (bits === 8) {
      for (let i = 0; i < n; i++) {
        const c = Math.round(values[start + i]! * inv) + zero;
        codes[codeBase + i] = c < 0 ? 0 : c > 255 ? 255 : c;
      }
      for (let i = n; i < blockSize; i++) codes[codeBase + i] = zero;
    } else {
      for (let i = 0; i < blockSize; i += 2) {
        let c0 = i < n ? Math.round(values[start + i]! * inv) + zero : zero;
        let c1 = i + 1 < n ? Math.round(values[start + i + 1]! * inv) + zero : zero;
        c0 = c0 < 0 ? 0 : c0 > 15 ? 15 : c0;
        c1 = c1 < 0 ? 0 : c1 > 15 ? 15 : c1;
        codes[codeBase + (i >> 1)] = c0 | (c1 << 4);
      }
    }
  }
}

/** W [n, k] row-major → its MatMulNBits form. */
export function quantiseMatrix(w: Float32Array, n: number, k: number, spec: QuantSpec): QuantisedMatrix {
  if (w.length !== n * k) throw new QuantError(`a [${n}, ${k}] matrix needs ${n * k} values, not ${w.length}`);
  const q = emptyQuantised(n, k, spec);
  for (let r = 0; r < n; r++) quantiseRow(q, r, w, r * k);
  return q;
}

/** Code of W[row, col] and its block's zero point and scale. */
export function quantisedEntry(q: QuantisedMatrix, row: number, col: number): { code: number; zero: number; scale: number } {
  const b = Math.floor(col / q.blockSize);
  return {
    code: getCode(q.codes, (row * q.kBlocks + b) * blobBytes(q), col - b * q.blockSize, q.bits),
    zero: getCode(q.zeroPoints, row * zeroPointBytes(q, q.kBlocks), b, q.bits),
    scale: q.scales[row * q.kBlocks + b]!,
  };
}

/** Dequantised W [n, k] as float32: s · (q − z) in float32 arithmetic, as MatMulNBits computes it. */
export function dequantiseMatrix(q: QuantisedMatrix): Float32Array {
  const out = new Float32Array(q.n * q.k);
  for (let r = 0; r < q.n; r++) {
    for (let c = 0; c < q.k; c++) {
      const e = quantisedEntry(q, r, c);
      out[r * q.k + c] = Math.fround(e.scale * (e.code - e.zero));
    }
  }
  return out;
}

/** Bytes the quantised matrix holds (codes, scales, zero points). */
export function quantisedBytes(q: QuantisedMatrix): number {
  return q.codes.byteLength + q.scales.byteLength + q.zeroPoints.byteLength;
}

/**
 * Rows `first .. first + count` of Ŵ as float32 [count, k]: the same numbers as dequantiseMatrix's
 * rows, block by block without a per-value call.
 */
export function dequantiseRows(q: QuantisedMatrix, first: number, count: number): Float32Array {
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > q.n) {
    throw new QuantError(`rows ${first}..${first + count} are outside a matrix of ${q.n} rows`);
  }
  const { k, kBlocks, blockSize, bits } = q;
  const blob = blobBytes(q);
  const zpBytes = zeroPointBytes(q, kBlocks);
  const out = new Float32Array(count * k);
  for (let r = 0; r < count; r++) {
    const row = first + r;
    for (let b = 0; b < kBlocks; b++) {
      const scale = q.scales[row * kBlocks + b]!;
      const zero = getCode(q.zeroPoints, row * zpBytes, b, bits);
      const base = (row * kBlocks + b) * blob;
      const start = b * blockSize;
      const n = Math.min(blockSize, k - start);
      const dst = r * k + start;
      if (bits === 8) {
        for (let i = 0; i < n; i++) out[dst + i] = Math.fround(scale * (q.codes[base + i]! - zero));
      } else {
        for (let i = 0; i < n; i++) {
          const byte = q.codes[base + (i >> 1)]!;
          out[dst + i] = Math.fround(scale * ((i & 1 ? byte >> 4 : byte & 0x0f) - zero));
        }
      }
    }
  }
  return out;
}

/** Column `col` of Ŵ as float64 [n] (a down projection's value vector): the same numbers as dequantiseMatrix's. */
export function dequantiseColumn(q: QuantisedMatrix, col: number): Float64Array {
  if (!Number.isInteger(col) || col < 0 || col >= q.k) throw new QuantError(`column ${col} is outside a matrix of ${q.k} columns`);
  const b = Math.floor(col / q.blockSize);
  const within = col - b * q.blockSize;
  const blob = blobBytes(q);
  const zpBytes = zeroPointBytes(q, q.kBlocks);
  const out = new Float64Array(q.n);
  for (let r = 0; r < q.n; r++) {
    const code = getCode(q.codes, (r * q.kBlocks + b) * blob, within, q.bits);
    const zero = getCode(q.zeroPoints, r * zpBytes, b, q.bits);
    out[r] = Math.fround(q.scales[r * q.kBlocks + b]! * (code - zero));
  }
  return out;
}
