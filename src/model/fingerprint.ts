// Model fingerprint (DESIGN.md "Formats"): identifies the exact base model a patch was made for.
// sha256 over, in order: config.json's bytes, every weight file's safetensors header (files in
// file-name order), and the raw on-disk bytes of each layer's down projection (layer order) —
// the tensors STAR patches. Each part is length-prefixed so parts cannot run into each other.
// Other weights are covered only through the headers (names, dtypes, shapes, offsets), which keeps
// hashing a multi-GB model to a fraction of its size while still telling checkpoints apart.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigBytes, type ModelConfig } from './config';
import { ModelError, errorText } from './errors';
import { openWeightFile, readSafetensorsHeader, weightFiles, type SafetensorsHeader } from './safetensors';
import { downProjectionNames } from './weights';

const CHUNK = 1 << 22;

function updateLength(hash: Hash, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  hash.update(b);
}

function hashFileRange(hash: Hash, file: string, start: number, length: number): void {
  const fd = openWeightFile(file);
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(length, 1)));
    for (let done = 0; done < length;) {
      const got = readSync(fd, buf, 0, Math.min(buf.length, length - done), start + done);
      if (got <= 0) throw new ModelError('safetensors-invalid', `${file}: unexpected end of file while hashing`, file);
      hash.update(buf.subarray(0, got));
      done += got;
    }
  } finally {
    closeSync(fd);
  }
}

/** Hex sha256 fingerprint of the model folder `dir` (see the header comment for what it covers). */
export function fingerprint(dir: string, config: ModelConfig): string {
  const hash = createHash('sha256');
  hash.update('star-repair model fingerprint v1\n');

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

  const headers: Array<{ file: string; header: SafetensorsHeader }> = [];
  for (const file of weightFiles(dir)) {
    const header = readSafetensorsHeader(file);
    headers.push({ file, header });
    updateLength(hash, header.headerBytes.length);
    hash.update(header.headerBytes);
  }

  const where = new Map<string, { file: string; start: number; length: number }>();
  for (const { file, header } of headers) {
    for (const [name, t] of header.tensors) where.set(name, { file, start: header.dataOffset + t.begin, length: t.end - t.begin });
  }
  for (const name of downProjectionNames(config, where)) {
    const at = where.get(name);
    if (!at) {
      throw new ModelError('tensor-missing', `the checkpoint in ${dir} has no down-projection tensor "${name}"; the weights are incomplete or belong to another architecture`, dir);
    }
    updateLength(hash, at.length);
    hashFileRange(hash, at.file, at.start, at.length);
  }
  return hash.digest('hex');
}
