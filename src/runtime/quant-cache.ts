// The on-disk cache of quantised matrices (issue 16): one file per model fingerprint, format and
// block size, so the next start skips quantisation. Written atomically (temp file, fsync,
// rename); read back only when its header, sizes and sha256 all check out — anything else (a
// truncated, corrupt or foreign file) is reported as a reason and the caller requantises.
// File: 8-byte little-endian header length, the JSON header, then each matrix's codes, scales and
// zero points in header order. Only the matrices are stored; float vectors come from the model.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { emptyQuantised, type QuantisedMatrix, type QuantSpec } from '../model/quantise';

const MAGIC = 'star-repair-quantised-v1';

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

/**
 * The cached matrices for (fingerprint, format, spec), or why there are none: missing, unreadable,
 * for another model or format, truncated, or not matching its checksum.
 */
export function readQuantCache(dir: string, fingerprint: string, format: string, spec: QuantSpec): CacheRead {
  const file = quantCacheFile(dir, fingerprint, format, spec.blockSize);
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    return { reason: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no cached weights yet' : `cannot read ${file}: ${(e as Error).message}` };
  }
  if (buf.length < 8) return { reason: `${file} is truncated` };
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) return { reason: `${file} is truncated` };
  let header: Header;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + n)) as Header;
  } catch {
    return { reason: `${file} has a damaged header` };
  }
  if (header.magic !== MAGIC || header.fingerprint !== fingerprint || header.format !== format || header.blockSize !== spec.blockSize || !Array.isArray(header.matrices)) {
    return { reason: `${file} belongs to another model, format or version` };
  }
  const matrices = new Map<string, QuantisedMatrix>();
  const hash = createHash('sha256');
  let at = 8 + n;
  try {
    for (const h of header.matrices) {
      const m = emptyQuantised(h.n, h.k, { bits: h.bits, blockSize: h.blockSize });
      for (const p of parts(m)) {
        if (at + p.length > buf.length) return { reason: `${file} is truncated` };
        p.set(buf.subarray(at, at + p.length));
        hash.update(p);
        at += p.length;
      }
      matrices.set(h.name, m);
    }
  } catch (e) {
    return { reason: `${file} has a damaged header (${(e as Error).message})` };
  }
  if (at !== buf.length) return { reason: `${file} has ${buf.length - at} bytes too many` };
  if (hash.digest('hex') !== header.sha256) return { reason: `${file} does not match its checksum` };
  return { matrices };
}
