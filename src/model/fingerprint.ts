// Model fingerprint (docs/fingerprint.md): identifies the exact base model a patch was made for.
// sha256 over, in order: a version line; config.json's bytes; then for each weight file (file-name
// order) its size, its safetensors header (names, dtypes, shapes, offsets), and the content of
// EVERY tensor in data order — the down projections (what STAR patches) whole, every other tensor
// whole when at most SAMPLE_BLOCKS × SAMPLE_BLOCK_BYTES (64 KiB), else SAMPLE_BLOCKS blocks of
// SAMPLE_BLOCK_BYTES evenly spaced from its first byte to its last. Each part is length-prefixed.
//
// Why sampling suffices: a fine-tune (or any real training) moves every weight, so every block of
// every tensor changes; a damaged or swapped file changes the headers or sizes. The one sparse edit
// that matters here is STAR's own — a few neurons of the down projections — and those are hashed
// whole, so a patched export never shares its base's fingerprint. The tokenizer is not hashed: it
// maps text to ids but does not enter the weights a patch is folded into.
// Cost for a 7B Llama in BF16 (13.5 GB): the down projections (2.9 GB, read from the page cache
// right after loading) plus 64 KiB of each of the other 259 tensors (17 MB).
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigBytes, type ModelConfig } from './config';
import { ModelError, errorText } from './errors';
import { openWeightFile, readSafetensorsHeader, weightFiles, type SafetensorsHeader } from './safetensors';
import { checkLayerCount, downProjectionNames } from './weights';

/** Blocks sampled from each tensor that is not hashed whole. */
export const SAMPLE_BLOCKS = 16;
/** Size of one sampled block. */
export const SAMPLE_BLOCK_BYTES = 4096;

const CHUNK = 1 << 22;

export interface ByteRange { start: number; length: number }

function updateLength(hash: Hash, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  hash.update(b);
}

/**
 * The parts of a `length`-byte tensor that are hashed, relative to its start: all of it up to
 * SAMPLE_BLOCKS × SAMPLE_BLOCK_BYTES, else SAMPLE_BLOCKS blocks, the first at 0, the last ending at
 * `length`, the others evenly spaced between.
 */
export function sampleRanges(length: number): ByteRange[] {
  if (length <= 0) return [];
  if (length <= SAMPLE_BLOCKS * SAMPLE_BLOCK_BYTES) return [{ start: 0, length }];
  const span = length - SAMPLE_BLOCK_BYTES;
  return Array.from({ length: SAMPLE_BLOCKS }, (_, i) => ({ start: Math.round((i * span) / (SAMPLE_BLOCKS - 1)), length: SAMPLE_BLOCK_BYTES }));
}

/** For each tensor of one file, in data order: the file byte ranges hashed (`whole` tensors entirely). */
export function hashedRanges(header: SafetensorsHeader, whole: ReadonlySet<string>): Array<{ name: string; ranges: ByteRange[] }> {
  return [...header.tensors.entries()]
    .sort((a, b) => a[1].begin - b[1].begin)
    .map(([name, t]) => {
      const length = t.end - t.begin;
      const start = header.dataOffset + t.begin;
      const parts = whole.has(name) ? (length > 0 ? [{ start: 0, length }] : []) : sampleRanges(length);
      return { name, ranges: parts.map((r) => ({ start: start + r.start, length: r.length })) };
    });
}

function hashRange(hash: Hash, fd: number, file: string, range: ByteRange, buf: Buffer): void {
  for (let done = 0; done < range.length;) {
    const got = readSync(fd, buf, 0, Math.min(buf.length, range.length - done), range.start + done);
    if (got <= 0) throw new ModelError('safetensors-invalid', `${file}: unexpected end of file while hashing`, file);
    hash.update(buf.subarray(0, got));
    done += got;
  }
}

/** Hashes one weight file: its size, its header, and the ranges of every tensor. */
function hashWeightFile(hash: Hash, file: string, header: SafetensorsHeader, whole: ReadonlySet<string>): void {
  const fd = openWeightFile(file);
  try {
    updateLength(hash, fstatSync(fd).size);
    updateLength(hash, header.headerBytes.length);
    hash.update(header.headerBytes);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const { ranges } of hashedRanges(header, whole)) {
      updateLength(hash, ranges.reduce((n, r) => n + r.length, 0));
      for (const r of ranges) hashRange(hash, fd, file, r, buf);
    }
  } finally {
    closeSync(fd);
  }
}

/** Hex sha256 fingerprint of the model folder `dir` (see the header comment for what it covers). */
export function fingerprint(dir: string, config: ModelConfig): string {
  const hash = createHash('sha256');
  hash.update('star-repair model fingerprint v2\n');

  const configFile = join(dir, 'config.json');
  let configBytes: Buffer;
  try {
    configBytes = readConfigBytes(configFile);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError('config-missing', `no readable config.json in ${dir} (${errorText(e)})`, configFile, { cause: e });
  }
  updateLength(hash, configBytes.length);
  hash.update(configBytes);

  const files = weightFiles(dir).map((file) => ({ file, header: readSafetensorsHeader(file) }));
  const names = new Set(files.flatMap(({ header }) => [...header.tensors.keys()]));
  checkLayerCount(config, names); // before a name per layer is made: config.json may claim 1e9 layers
  const down = downProjectionNames(config, names);
  for (const name of down) {
    if (!names.has(name)) {
      throw new ModelError('tensor-missing', `the checkpoint in ${dir} has no down-projection tensor "${name}"; the weights are incomplete or belong to another architecture`, dir);
    }
  }
  const whole = new Set(down);
  for (const { file, header } of files) hashWeightFile(hash, file, header, whole);
  return hash.digest('hex');
}
