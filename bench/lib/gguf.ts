// A small GGUF (version 3) writer for the runtime benchmark's llama.cpp comparison: the header,
// typed metadata key/value pairs, tensor infos with aligned offsets, and tensor data encoded as
// F32, F16, Q8_0 or Q4_0 with ggml's reference quantisers (ggml-quants.c quantize_row_*_ref; the
// block layouts are ggml-common.h's block_q8_0 and block_q4_0). Model-specific metadata and
// tensor names live in gguf-model.ts; this file knows only the container format.
import { closeSync, openSync, writeSync } from 'node:fs';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml_type values (ggml.h) of the tensor encodings this writer produces. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** Elements per quantisation block (QK8_0 = QK4_0 = 32). */
export const QK = 32;

/** gguf_type values of metadata (gguf.h). */
export const GGUF_TYPE = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, 'array'>;

export type GgufKv =
  | { key: string; type: 'string'; value: string }
  | { key: string; type: 'bool'; value: boolean }
  | { key: string; type: Exclude<GgufScalarType, 'string' | 'bool'>; value: number }
  | { key: string; type: 'array'; itemType: 'string'; value: readonly string[] }
  | { key: string; type: 'array'; itemType: Exclude<GgufScalarType, 'string' | 'bool'>; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the contiguous dimension (a row-major [out, in] matrix is [in, out]). */
  dims: readonly number[];
  type: GgmlTypeName;
  /** The values in row-major order, or a function making them when the tensor is written. */
  data: Float32Array | (() => Float32Array);
}

// ---------------------------------------------------------------------------------------------
// Number encodings

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of a float32, rounded to nearest even (as ggml's FP32_TO_FP16 on x86 F16C). */
export function fp16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // subnormal half (or zero): shift the mantissa with its implicit bit, round to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent: still right
  return sign | h;
}

/** The float value of IEEE binary16 bits. */
export function fp16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Bytes of `n` elements in a ggml type (n a multiple of 32 for the block types). */
export function ggmlBytes(type: GgmlTypeName, n: number): number {
  switch (type) {
    case 'F32':
      return 4 * n;
    case 'F16':
      return 2 * n;
    case 'Q8_0':
      return (n / QK) * 34;
    case 'Q4_0':
      return (n / QK) * 18;
  }
}

/** C's roundf: halves away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** block_q8_0 × n/32: { ggml_half d; int8_t qs[32] }, d = max|x| / 127, q = round(x / d). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK !== 0) throw new RangeError(`Q8_0 needs a multiple of ${QK} values, got ${x.length}`);
  const out = new Uint8Array(ggmlBytes('Q8_0', x.length));
  const view = new DataView(out.buffer);
  for (let b = 0, o = 0; b < x.length; b += QK, o += 34) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(o, fp16Bits(d), true);
    for (let j = 0; j < QK; j++) view.setInt8(o + 2 + j, roundf(Math.fround(x[b + j] * id)));
  }
  return out;
}

/**
 * block_q4_0 × n/32: { ggml_half d; uint8_t qs[16] }, d = (the value of largest magnitude) / −8,
 * q = min(15, trunc(x / d + 8.5)); byte j holds element j in its low nibble and element j + 16 in
 * its high nibble; the value is (q − 8)·d.
 */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  if (x.length % QK !== 0) throw new RangeError(`Q4_0 needs a multiple of ${QK} values, got ${x.length}`);
  const out = new Uint8Array(ggmlBytes('Q4_0', x.length));
  const view = new DataView(out.buffer);
  for (let b = 0, o = 0; b < x.length; b += QK, o += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(o, fp16Bits(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b + QK / 2 + j] * id) + 8.5)));
      out[o + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** The bytes of a tensor's values in a ggml type. */
export function encodeTensor(type: GgmlTypeName, x: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case 'F16': {
      const out = new Uint8Array(2 * x.length);
      const v = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) v.setUint16(2 * i, fp16Bits(x[i]), true);
      return out;
    }
    case 'Q8_0':
      return quantizeQ8_0(x);
    case 'Q4_0':
      return quantizeQ4_0(x);
  }
}

// ---------------------------------------------------------------------------------------------
// Header

class ByteSink {
  private chunks: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  private scalar(bytes: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(bytes);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void {
    this.scalar(4, (d) => d.setUint32(0, v, true));
  }
  u64(v: number): void {
    this.scalar(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(type: GgufScalarType, v: number | boolean | string): void {
    switch (type) {
      case 'string':
        return this.string(v as string);
      case 'bool':
        return this.scalar(1, (d) => d.setUint8(0, v ? 1 : 0));
      case 'u8':
        return this.scalar(1, (d) => d.setUint8(0, v as number));
      case 'i8':
        return this.scalar(1, (d) => d.setInt8(0, v as number));
      case 'u16':
        return this.scalar(2, (d) => d.setUint16(0, v as number, true));
      case 'i16':
        return this.scalar(2, (d) => d.setInt16(0, v as number, true));
      case 'u32':
        return this.u32(v as number);
      case 'i32':
        return this.scalar(4, (d) => d.setInt32(0, v as number, true));
      case 'f32':
        return this.scalar(4, (d) => d.setFloat32(0, v as number, true));
      case 'u64':
        return this.u64(v as number);
      case 'i64':
        return this.scalar(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case 'f64':
        return this.scalar(8, (d) => d.setFloat64(0, v as number, true));
    }
  }
  zeros(n: number): void {
    if (n > 0) this.push(new Uint8Array(n));
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.chunks, this.length);
  }
}

function tensorElements(t: GgufTensor): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

function checkTensor(t: GgufTensor): void {
  if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isInteger(d) || d < 1)) throw new RangeError(`tensor ${t.name}: bad dims [${t.dims.join(', ')}]`);
  if ((t.type === 'Q8_0' || t.type === 'Q4_0') && t.dims[0] % QK !== 0) throw new RangeError(`tensor ${t.name}: ${t.type} needs rows of a multiple of ${QK} values, got ${t.dims[0]}`);
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

export interface GgufLayout {
  /** Header, metadata and tensor infos, padded to the alignment: the data section starts at header.length. */
  header: Uint8Array;
  /** Each tensor's offset within the data section and its byte length. */
  tensors: { name: string; offset: number; bytes: number }[];
  dataBytes: number;
  alignment: number;
}

/** The header of a GGUF file holding `tensors` (in order) with `kvs`, and where each tensor's data goes. */
export function ggufLayout(kvs: readonly GgufKv[], tensors: readonly GgufTensor[]): GgufLayout {
  const alignKv = kvs.find((k) => k.key === 'general.alignment');
  const alignment = alignKv && alignKv.type !== 'array' ? Number(alignKv.value) : GGUF_DEFAULT_ALIGNMENT;
  const keys = new Set<string>();
  for (const kv of kvs) {
    if (keys.has(kv.key)) throw new Error(`GGUF key ${kv.key} given twice`);
    keys.add(kv.key);
  }
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const kv of kvs) {
    s.string(kv.key);
    s.u32(GGUF_TYPE[kv.type]);
    if (kv.type === 'array') {
      s.u32(GGUF_TYPE[kv.itemType]);
      s.u64(kv.value.length);
      for (let i = 0; i < kv.value.length; i++) s.value(kv.itemType, kv.value[i]);
    } else {
      s.value(kv.type, kv.value);
    }
  }
  const placed: GgufLayout['tensors'] = [];
  let offset = 0;
  for (const t of tensors) {
    checkTensor(t);
    const bytes = ggmlBytes(t.type, tensorElements(t));
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(GGML_TYPE[t.type]);
    s.u64(offset);
    placed.push({ name: t.name, offset, bytes });
    offset = align(offset + bytes, alignment);
  }
  s.zeros(align(s.length, alignment) - s.length);
  const last = placed[placed.length - 1];
  return { header: s.bytes(), tensors: placed, dataBytes: last ? last.offset + last.bytes : 0, alignment };
}

function tensorValues(t: GgufTensor): Float32Array {
  const x = typeof t.data === 'function' ? t.data() : t.data;
  if (x.length !== tensorElements(t)) throw new RangeError(`tensor ${t.name}: ${x.length} values for dims [${t.dims.join(', ')}]`);
  return x;
}

/** A whole GGUF file in memory (tests and tiny models). */
export function ggufBytes(kvs: readonly GgufKv[], tensors: readonly GgufTensor[]): Uint8Array {
  const layout = ggufLayout(kvs, tensors);
  const out = new Uint8Array(layout.header.length + layout.dataBytes);
  out.set(layout.header, 0);
  tensors.forEach((t, i) => out.set(encodeTensor(t.type, tensorValues(t)), layout.header.length + layout.tensors[i].offset));
  return out;
}

/** Writes a GGUF file tensor by tensor, so only one tensor's encoding is in memory at a time. Returns its size. */
export function writeGguf(path: string, kvs: readonly GgufKv[], tensors: readonly GgufTensor[]): number {
  const layout = ggufLayout(kvs, tensors);
  const fd = openSync(path, 'w');
  try {
    const writeAll = (b: Uint8Array) => {
      for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
    };
    writeAll(layout.header);
    let pos = 0;
    tensors.forEach((t, i) => {
      const { offset } = layout.tensors[i];
      if (offset > pos) writeAll(new Uint8Array(offset - pos));
      const bytes = encodeTensor(t.type, tensorValues(t));
      writeAll(bytes);
      pos = offset + bytes.length;
    });
  } finally {
    closeSync(fd);
  }
  return layout.header.length + layout.dataBytes;
}
