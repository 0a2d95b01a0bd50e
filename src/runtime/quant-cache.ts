// The on-disk cache of quantised matrices (issue 16): one file per model fingerprint, format and
// block size, so the next start skips quantisation. Written atomically (temp file, fsync,
// rename); read back only when its header, sizes and sha256 all check out — anything else (a
// truncated, corrupt or foreign file) is reported as a reason and the caller requantises.
// File: 8-byte little-endian header length, the JSON header, then each matrix's codes, scales and
// zero points in header order. Only the matrices are stored; float vectors come from the model.
// Reading checks sizes against the file before allocating and reads each matrix straight into its
// arrays, so a cache hit holds the quantised weights once.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { blobBytes, checkQuantSpec, emptyQuantised, zeroPointBytes, type QuantisedMatrix, type QuantSpec } from '../model/quantise';

const MAGIC = 'star-repair-quantised-v1';
// A header longer than this is garbage (a real one lists a few hundred matrices).
const MAX_HEADER_BYTES = 64 << 20;

interface Header {
  magic: string;
  fingerprint: string;
  format: string;
  blockSize: number;
  sha256: string;
  matrices: { name: string; n: number; k: number; bits: 4 | 8; blockSize: number }[];
}

export function quantCacheFile(dir: string, fingerprint: string, format: string, blockSize: number): string {
  if (!/^[0-9a-f]{16,128}$/.test(fingerprint)) throw new Error(`a weight cache needs a hex fingerprint, not ${JSON.stringify(fingerprint)}`);
  return join(dir, `${fingerprint}-${format}-b${blockSize}.qweights`);
}

function parts(m: QuantisedMatrix): Uint8Array[] {
  return [m.codes, new Uint8Array(m.scales.buffer, m.scales.byteOffset, m.scales.byteLength), m.zeroPoints];
}

/** Writes `matrices` to the cache file for (fingerprint, format, block size), atomically. */
export function writeQuantCache(dir: string, fingerprint: string, format: string, spec: QuantSpec, matrices: ReadonlyMap<string, QuantisedMatrix>): string {
  mkdirSync(dir, { recursive: true });
  const file = quantCacheFile(dir, fingerprint, format, spec.blockSize);
  const hash = createHash('sha256');
  for (const m of matrices.values()) for (const p of parts(m)) hash.update(p);
  const header: Header = {
    magic: MAGIC, fingerprint, format, blockSize: spec.blockSize, sha256: hash.digest('hex'),
    matrices: [...matrices].map(([name, m]) => ({ name, n: m.n, k: m.k, bits: m.bits, blockSize: m.blockSize })),
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, json);
    for (const m of matrices.values()) for (const p of parts(m)) {
      for (let at = 0; at < p.length;) at += writeSync(fd, p, at, Math.min(1 << 26, p.length - at));
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  return file;
}

export type CacheRead = { matrices: Map<string, QuantisedMatrix> } | { reason: string };

/** Bytes of one matrix's codes, scales and zero points as the file stores them. */
function storedBytes(h: Header['matrices'][number]): number {
  const spec = { bits: h.bits, blockSize: h.blockSize };
  checkQuantSpec(spec);
  if (!Number.isSafeInteger(h.n) || !Number.isSafeInteger(h.k) || h.n < 1 || h.k < 1) throw new Error(`matrix ${h.name} has sizes [${h.n}, ${h.k}]`);
  const kBlocks = Math.ceil(h.k / h.blockSize);
  return h.n * kBlocks * (blobBytes(spec) + 4) + h.n * zeroPointBytes(spec, kBlocks);
}

function readAt(fd: number, target: Uint8Array, position: number): void {
  for (let done = 0; done < target.length;) {
    const got = readSync(fd, target, done, Math.min(1 << 26, target.length - done), position + done);
    if (got <= 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += got;
  }
}

/**
 * The cached matrices for (fingerprint, format, spec), or why there are none: missing, unreadable,
 * for another model or format, truncated, or not matching its checksum. Each matrix is read from
 * the file straight into its arrays (the file is never in memory as a whole next to them).
 */
export function readQuantCache(dir: string, fingerprint: string, format: string, spec: QuantSpec): CacheRead {
  const file = quantCacheFile(dir, fingerprint, format, spec.blockSize);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    return { reason: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no cached weights yet' : `cannot read ${file}: ${(e as Error).message}` };
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) return { reason: `${file} is truncated` };
    const prefix = Buffer.alloc(8);
    readAt(fd, prefix, 0);
    const n64 = prefix.readBigUInt64LE(0);
    if (n64 > BigInt(size - 8)) return { reason: `${file} is truncated` };
    if (n64 > BigInt(MAX_HEADER_BYTES)) return { reason: `${file} has a damaged header` };
    const n = Number(n64);
    const json = Buffer.alloc(n);
    readAt(fd, json, 8);
    let header: Header;
    try {
      header = JSON.parse(json.toString('utf8')) as Header;
    } catch {
      return { reason: `${file} has a damaged header` };
    }
    if (header === null || typeof header !== 'object' || header.magic !== MAGIC || header.fingerprint !== fingerprint || header.format !== format ||
        header.blockSize !== spec.blockSize || !Array.isArray(header.matrices)) {
      return { reason: `${file} belongs to another model, format or version` };
    }
    let at = 8 + n;
    try {
      const total = header.matrices.reduce((sum, h) => sum + storedBytes(h), 0);
      if (at + total > size) return { reason: `${file} is truncated` };
      if (at + total < size) return { reason: `${file} has ${size - at - total} bytes too many` };
    } catch (e) {
      return { reason: `${file} has a damaged header (${(e as Error).message})` };
    }
    const matrices = new Map<string, QuantisedMatrix>();
    const hash = createHash('sha256');
    for (const h of header.matrices) {
      const m = emptyQuantised(h.n, h.k, { bits: h.bits, blockSize: h.blockSize });
      for (const p of parts(m)) {
        readAt(fd, p, at);
        hash.update(p);
        at += p.length;
      }
      matrices.set(h.name, m);
    }
    if (hash.digest('hex') !== header.sha256) return { reason: `${file} does not match its checksum` };
    return { matrices };
  } catch (e) {
    return { reason: `cannot read ${file}: ${(e as Error).message}` };
  } finally {
    closeSync(fd);
  }
}
