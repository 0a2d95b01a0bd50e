// safetensors: header parsing and validation, reading tensors (whole or by element ranges) as
// float32 (F32/F16/BF16), atomic writing (whole, or streamed tensor by tensor), and finding a
// folder's weight files (single, sharded via index.json, or all).
// Files are read tensor by tensor straight into their final Float32Array so a
// multi-gigabyte checkpoint never sits in memory twice. Byte order: safetensors is
// little-endian, as is every platform onnxruntime-node ships for.
import {
  closeSync, existsSync, fstatSync, fsyncSync, openSync, readSync, readdirSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelError, errorText } from './errors';
import { SIDE_JSON_LIMIT, openRegularFile, readRegularFile } from './files';
import { checkFiniteWeights } from './finite';

export type Dtype = 'F32' | 'F16' | 'BF16';
export interface HostTensor { shape: number[]; data: Float32Array }
export interface SafetensorsHeader {
  tensors: Map<string, { dtype: string; shape: number[]; begin: number; end: number }>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataOffset: number;
  /** The file's first `dataOffset` bytes: length prefix and JSON header. */
  headerBytes: Buffer;
}

export const SUPPORTED_DTYPES: readonly Dtype[] = Object.freeze(['F32', 'F16', 'BF16'] as Dtype[]);

// Every dtype the safetensors format defines, with its width in bytes. Known but unsupported
// dtypes are valid files we cannot use (unsupported-dtype); anything else is a corrupt file.
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

// The reference implementation refuses headers above 100 MB; a larger length is garbage.
const MAX_HEADER_BYTES = 100_000_000;
// fs.readSync takes an int32 length; stay well below it.
const READ_CHUNK_BYTES = 1 << 26;
const CONVERT_CHUNK_BYTES = 1 << 24;

function invalid(source: string | undefined, message: string): ModelError {
  return new ModelError('safetensors-invalid', `${source ?? 'safetensors file'}: ${message}; the file is damaged or incomplete — download or export it again`, source);
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/**
 * Parses and validates a safetensors header. `buf` is the whole file, or at least its first
 * 8 + header-length bytes when `fileSize` gives the file's real size.
 */
export function parseSafetensorsHeader(buf: Buffer, source?: string, fileSize?: number): SafetensorsHeader {
  const size = fileSize ?? buf.length;
  if (size < 8 || buf.length < 8) {
    throw invalid(source, `only ${size} bytes long, shorter than the 8-byte header length`);
  }
  const n64 = buf.readBigUInt64LE(0);
  if (n64 > BigInt(size - 8)) {
    throw invalid(source, `header length ${n64} runs past the end of the file (${size} bytes): truncated`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) throw invalid(source, `header length ${n} exceeds the format's 100 MB limit`);
  if (buf.length < 8 + n) throw invalid(source, `buffer holds ${buf.length} bytes but the header needs ${8 + n}`);
  const dataOffset = 8 + n;
  const dataLength = size - dataOffset;

  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8', 8, dataOffset));
  } catch (e) {
    throw invalid(source, `header is not valid JSON (${errorText(e)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw invalid(source, 'header is not a JSON object');
  }

  const tensors: SafetensorsHeader['tensors'] = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry) ||
          !Object.values(entry).every((v) => typeof v === 'string')) {
        throw invalid(source, '"__metadata__" must map strings to strings');
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw invalid(source, `entry for tensor "${name}" is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') throw invalid(source, `tensor "${name}" has no dtype`);
    const width = DTYPE_BYTES[dtype];
    if (width === undefined) {
      throw invalid(source, `tensor "${name}" has unknown dtype "${dtype}" (the format defines ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      throw invalid(source, `tensor "${name}" has a malformed shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 ||
        !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      throw invalid(source, `tensor "${name}" has malformed data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw invalid(source, `tensor "${name}" has data_offsets [${begin}, ${end}] that end before they begin`);
    const bytes = elementCount(shape as number[]) * width;
    if (end - begin !== bytes) {
      throw invalid(source, `tensor "${name}" (${dtype} ${JSON.stringify(shape)}) needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > dataLength) {
      throw invalid(source, `tensor "${name}" ends at data byte ${end} but the file holds only ${dataLength} data bytes: out of range (truncated file?)`);
    }
    tensors.set(name, { dtype, shape: [...(shape as number[])], begin, end });
  }

  // The format requires the data section to be covered exactly once, without holes.
  const spans = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let cursor = 0;
  for (const [name, t] of spans) {
    if (t.begin < cursor) throw invalid(source, `tensor "${name}" overlaps the previous tensor (starts at ${t.begin}, previous ends at ${cursor})`);
    if (t.begin > cursor) throw invalid(source, `data bytes ${cursor}..${t.begin} belong to no tensor (offsets do not cover the data section)`);
    cursor = t.end;
  }
  if (cursor !== dataLength) {
    throw invalid(source, `tensors cover ${cursor} data bytes but the file has ${dataLength} (offsets do not cover the data section)`);
  }

  return { tensors, metadata, dataOffset, headerBytes: Buffer.from(buf.subarray(0, dataOffset)) };
}

/** Reads just the header of a file on disk (validated against the file's size). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openWeightFile(file);
  try {
    return readHeaderFd(fd, file);
  } catch (e) {
    throw asModelError(e, file);
  } finally {
    closeSync(fd);
  }
}

/** I/O failures mid-read (EISDIR, EIO, ...) become typed errors too. */
export function asModelError(e: unknown, file: string): ModelError {
  if (e instanceof ModelError) return e;
  return new ModelError('weights-missing', `cannot read weight file ${file} (${errorText(e)})`, file, { cause: e });
}

/** Opens a weight file for reading; anything but a regular file (a FIFO would block) is refused. */
export function openWeightFile(file: string): number {
  try {
    return openRegularFile(file, 'a weight file', 'weights-missing').fd;
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError('weights-missing', `cannot open weight file ${file} (${errorText(e)})`, file, { cause: e });
  }
}

function readExactly(fd: number, target: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < target.length) {
    const len = Math.min(READ_CHUNK_BYTES, target.length - done);
    const got = readSync(fd, target, done, len, position + done);
    if (got <= 0) throw invalid(file, `unexpected end of file at byte ${position + done}`);
    done += got;
  }
}

/** Reads and validates the header of an open weight file. */
export function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  const prefix = Buffer.alloc(Math.min(8, size));
  readExactly(fd, prefix, 0, file);
  if (size < 8) return parseSafetensorsHeader(prefix, file, size);
  const n64 = prefix.readBigUInt64LE(0);
  if (n64 > BigInt(size - 8) || n64 > BigInt(MAX_HEADER_BYTES)) return parseSafetensorsHeader(prefix, file, size);
  const head = Buffer.alloc(8 + Number(n64));
  readExactly(fd, head, 0, file);
  return parseSafetensorsHeader(head, file, size);
}

let f16Table: Float32Array | undefined;

/** float32 value of every binary16 bit pattern, built once (65536 entries). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** The error for a tensor whose dtype is known to the format but not readable here. */
export function unsupportedDtype(file: string, name: string, dtype: string): ModelError {
  return new ModelError(
    'unsupported-dtype',
    `${file}: tensor "${name}" has dtype ${dtype}, which is not supported; supported dtypes are ${SUPPORTED_DTYPES.join(', ')} — convert the checkpoint (e.g. model.to(torch.float32 or torch.bfloat16).save_pretrained(dir)); quantised checkpoints are not supported`,
    file,
  );
}

/** Reads tensor `name` as float32; unless `allowNonFinite`, a NaN or infinity is refused in the same pass (per conversion chunk). */
function readTensorFd(fd: number, file: string, header: SafetensorsHeader, name: string, allowNonFinite = false): HostTensor {
  const t = header.tensors.get(name);
  if (!t) throw new ModelError('tensor-missing', `${file} has no tensor "${name}"`, file);
  return { shape: [...t.shape], data: readTensorRange(fd, file, header, name, 0, elementCount(t.shape), allowNonFinite) };
}

/**
 * Elements `start .. start + count` of tensor `name` (flat, row-major) as float32, F16/BF16
 * converted chunk by chunk; unless `allowNonFinite`, a NaN or infinity is refused in the same pass,
 * named by its element index in the whole tensor. Reading a tensor in row ranges keeps no more
 * than one range in float32.
 */
export function readTensorRange(fd: number, file: string, header: SafetensorsHeader, name: string, start: number, count: number, allowNonFinite = false): Float32Array {
  const t = header.tensors.get(name);
  if (!t) throw new ModelError('tensor-missing', `${file} has no tensor "${name}"`, file);
  const total = elementCount(t.shape);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > total) {
    throw new RangeError(`elements ${start}..${start + count} are outside tensor "${name}" (${total} values)`);
  }
  const out = new Float32Array(count);
  if (t.dtype === 'F32') {
    readExactly(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), header.dataOffset + t.begin + start * 4, file);
    if (!allowNonFinite) checkFiniteWeights(out, name, file, 0, count, start);
  } else if (t.dtype === 'F16' || t.dtype === 'BF16') {
    const position = header.dataOffset + t.begin + start * 2;
    const chunk = Buffer.allocUnsafe(Math.max(2, Math.min(CONVERT_CHUNK_BYTES, count * 2)));
    const outBits = new Uint32Array(out.buffer, out.byteOffset, count);
    const table = t.dtype === 'F16' ? halfTable() : undefined;
    for (let i = 0; i < count;) {
      const n = Math.min(chunk.length / 2, count - i);
      const view = chunk.subarray(0, n * 2);
      readExactly(fd, view, position + i * 2, file);
      // chunk comes from allocUnsafe's pool at an arbitrary offset, so read 16-bit values bytewise.
      if (table) {
        for (let j = 0; j < n; j++) out[i + j] = table[view[2 * j]! | (view[2 * j + 1]! << 8)]!;
      } else {
        for (let j = 0; j < n; j++) outBits[i + j] = ((view[2 * j]! | (view[2 * j + 1]! << 8)) << 16) >>> 0;
      }
      if (!allowNonFinite) checkFiniteWeights(out, name, file, i, i + n, start); // while the chunk is still in cache
      i += n;
    }
  } else {
    throw unsupportedDtype(file, name, t.dtype);
  }
  return out;
}

export interface ReadOptions {
  /** Tensors to leave on disk (e.g. GPT-2's attention-mask buffers); their dtype is not checked. */
  skip?: (name: string) => boolean;
  /** Keep NaN and infinities instead of refusing them (weights-not-finite); only tests of the decoders want this. */
  allowNonFinite?: boolean;
}

/** Reads every tensor of one file as float32 (F16/BF16 converted). */
export function readSafetensors(file: string, options: ReadOptions = {}): Map<string, HostTensor> {
  const fd = openWeightFile(file);
  try {
    const header = readHeaderFd(fd, file);
    const names = [...header.tensors.keys()].filter((n) => !options.skip?.(n));
    // Check every dtype before reading anything: a multi-GB read that fails at the end wastes minutes.
    for (const n of names) {
      const dtype = header.tensors.get(n)!.dtype;
      if (!SUPPORTED_DTYPES.includes(dtype as Dtype)) throw unsupportedDtype(file, n, dtype);
    }
    const out = new Map<string, HostTensor>();
    for (const n of names) out.set(n, readTensorFd(fd, file, header, n, options.allowNonFinite));
    return out;
  } catch (e) {
    throw asModelError(e, file);
  } finally {
    closeSync(fd);
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** binary16 bits of a float32 value, rounded to nearest, ties to even (IEEE 754). */
export function float32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

/** bfloat16 bits of a float32 value, rounded to nearest, ties to even; NaN stays NaN. */
export function float32ToBF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function encodeTensor(t: HostTensor, dtype: Dtype, write: (bytes: Uint8Array) => void): void {
  if (dtype === 'F32') {
    write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return;
  }
  const toBits = dtype === 'F16' ? float32ToF16Bits : float32ToBF16Bits;
  const chunk = new Uint8Array(Math.min(CONVERT_CHUNK_BYTES, t.data.length * 2));
  for (let i = 0; i < t.data.length;) {
    const n = Math.min(chunk.length / 2, t.data.length - i);
    for (let j = 0; j < n; j++) {
      const b = toBits(t.data[i + j]!);
      chunk[2 * j] = b & 0xff;
      chunk[2 * j + 1] = b >>> 8;
    }
    write(chunk.subarray(0, n * 2));
    i += n;
  }
}

/**
 * Writes tensors (float32 in memory) as one safetensors file of `dtype`, atomically:
 * a temporary file in the same folder is fsynced and renamed over `file`.
 */
export function writeSafetensors(
  file: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor>,
  metadata?: Record<string, string>,
  dtype: Dtype = 'F32',
): void {
  if (!SUPPORTED_DTYPES.includes(dtype)) {
    throw new ModelError('unsupported-dtype', `cannot write dtype ${String(dtype)}; supported dtypes are ${SUPPORTED_DTYPES.join(', ')}`, file);
  }
  const map = tensors instanceof Map ? tensors : new Map(Object.entries(tensors));
  for (const [name, t] of map) {
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elementCount(t.shape) !== t.data.length) {
      throw new ModelError('shape-mismatch', `tensor "${name}" has shape ${JSON.stringify(t.shape)} but ${t.data.length} values`, file);
    }
  }
  writeSafetensorsStreamed(file, [...map].map(([name, t]) => ({ name, shape: t.shape })), (name) => map.get(name)!.data, metadata, dtype);
}

/**
 * writeSafetensors with the data produced tensor by tensor: the header is written from names and
 * shapes, then `produce(name)` is called for each tensor in the file's order (sorted by name) and
 * its values written before the next is asked for — so a caller can make each tensor (or each
 * layer) when it is needed and let it go, and the whole model never has to be in memory. The
 * bytes are those writeSafetensors writes for the same tensors.
 */
export function writeSafetensorsStreamed(
  file: string,
  tensors: readonly { name: string; shape: readonly number[] }[],
  produce: (name: string) => Float32Array,
  metadata?: Record<string, string>,
  dtype: Dtype = 'F32',
): void {
  if (!SUPPORTED_DTYPES.includes(dtype)) {
    throw new ModelError('unsupported-dtype', `cannot write dtype ${String(dtype)}; supported dtypes are ${SUPPORTED_DTYPES.join(', ')}`, file);
  }
  const entries = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const width = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const { name, shape } of entries) {
    if (name === '__metadata__') throw new ModelError('safetensors-invalid', `"__metadata__" cannot be a tensor name`, file);
    if (name in header) throw new ModelError('safetensors-invalid', `tensor "${name}" is listed twice`, file);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelError('shape-mismatch', `tensor "${name}" has shape ${JSON.stringify(shape)}`, file);
    }
    const bytes = elementCount(shape) * width;
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so the data section starts 8-byte aligned, as the format recommends.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx');
    const out = fd;
    const write = (bytes: Uint8Array): void => {
      let done = 0;
      while (done < bytes.length) done += writeSync(out, bytes, done, Math.min(READ_CHUNK_BYTES, bytes.length - done));
    };
    write(prefix);
    write(json);
    for (const { name, shape } of entries) {
      const data = produce(name);
      if (data.length !== elementCount(shape)) {
        throw new ModelError('shape-mismatch', `tensor "${name}" has shape ${JSON.stringify(shape)} but ${data.length} values`, file);
      }
      encodeTensor({ shape: [...shape], data }, dtype, write);
    }
    fsyncSync(out);
    closeSync(out);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * The weight files of a model folder, sorted by file name: the shards listed in
 * model.safetensors.index.json, else model.safetensors, else every *.safetensors.
 */
export function weightFiles(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const map = readIndex(index);
    const files = [...new Set(Object.values(map))].sort();
    for (const f of files) {
      if (!existsSync(join(dir, f))) {
        throw new ModelError('weights-missing', `${index} lists shard ${f}, which is not in ${dir}; download the missing shard`, join(dir, f));
      }
    }
    return files.map((f) => join(dir, f));
  }
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new ModelError('weights-missing', `cannot list model folder ${dir} (${errorText(e)})`, dir, { cause: e });
  }
  const all = names.filter((n) => n.endsWith('.safetensors')).sort();
  if (all.length === 0) {
    const hasBin = names.some((n) => n.endsWith('.bin') || n.endsWith('.pt') || n.endsWith('.pth'));
    throw new ModelError(
      'weights-missing',
      `no *.safetensors weights in ${dir}` +
        (hasBin ? '; only PyTorch .bin/.pt weights are there — convert them with model.save_pretrained(dir, safe_serialization=True)' : '; download the model\'s model.safetensors'),
      dir,
    );
  }
  return all.map((n) => join(dir, n));
}

/** weight_map of a shard index: tensor name → shard file name (validated). */
export function readIndex(index: string): Record<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(index, 'a shard index', SIDE_JSON_LIMIT, 'safetensors-invalid').toString('utf8'));
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError('safetensors-invalid', `${index} is not readable JSON (${errorText(e)}); restore it from the original checkpoint`, index, { cause: e });
  }
  const map = json !== null && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>)['weight_map'] : undefined;
  if (map === null || typeof map !== 'object' || Array.isArray(map) ||
      !Object.values(map as object).every((v) => typeof v === 'string' && v.length > 0 && basename(v) === v)) {
    throw new ModelError('safetensors-invalid', `${index} has no valid "weight_map" (tensor name → shard file name in the same folder)`, index);
  }
  return map as Record<string, string>;
}

export interface WeightFolder {
  tensors: Map<string, HostTensor>;
  files: string[];
  /** Distinct on-disk dtypes of the tensors read, sorted. */
  dtypes: string[];
}

/** loadWeights plus what was read from where; loadModelFolder uses it. */
export function readWeightFolder(dir: string, options: ReadOptions = {}): WeightFolder {
  const files = weightFiles(dir);
  const index = join(dir, 'model.safetensors.index.json');
  const mapped = existsSync(index) ? readIndex(index) : undefined;
  const tensors = new Map<string, HostTensor>();
  const dtypes = new Set<string>();
  const origin = new Map<string, string>();
  for (const file of files) {
    const header = readSafetensorsHeader(file);
    for (const [name, t] of header.tensors) {
      if (options.skip?.(name)) continue;
      const prev = origin.get(name);
      if (prev !== undefined) {
        throw new ModelError('safetensors-invalid', `tensor "${name}" appears in both ${prev} and ${file}; remove the stray file from the folder`, file);
      }
      origin.set(name, file);
      dtypes.add(t.dtype);
    }
    for (const [name, t] of readSafetensors(file, options)) tensors.set(name, t);
  }
  if (mapped) {
    for (const [name, shard] of Object.entries(mapped)) {
      if (options.skip?.(name)) continue;
      if (!tensors.has(name)) {
        throw new ModelError('tensor-missing', `${index} places tensor "${name}" in ${shard}, but that shard does not contain it; download the shard again`, join(dir, shard));
      }
    }
  }
  return { tensors, files, dtypes: [...dtypes].sort() };
}

/** All tensors of a model folder as float32: model.safetensors, index.json shards, or every *.safetensors. */
export function loadWeights(dir: string): Map<string, HostTensor> {
  return readWeightFolder(dir).tensors;
}
