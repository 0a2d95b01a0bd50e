// Reading a model's checkpoint part by part (room model/): the weight files' headers are read and
// checked once — supported dtypes, no tensor in two shards, the shard index, no extra layers, and
// every tensor the model needs with the shape config.json implies (weights.ts checkpointPlan) —
// before any data is read; then tensors are read on demand, whole or by rows, as float32 (F16/BF16
// converted chunk by chunk), a NaN or infinity refused. The quantised load streams a model through
// it one layer at a time, so an F16/BF16 checkpoint is never expanded to a whole fp32 copy.
import { closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from './config';
import { ModelError } from './errors';
import {
  SUPPORTED_DTYPES, asModelError, openWeightFile, readHeaderFd, readIndex, readTensorRange, unsupportedDtype, weightFiles,
  type Dtype, type SafetensorsHeader,
} from './safetensors';
import { checkLayerCount, checkPlan, checkpointPlan, isIgnoredTensor, type CheckpointPlan, type TensorNeed } from './weights';

export interface Checkpoint {
  readonly plan: CheckpointPlan;
  readonly files: string[];
  /** Distinct on-disk dtypes of the tensors the model may use, sorted (as readWeightFolder reports them). */
  readonly dtypes: string[];
  /** A tensor of the plan, whole, in its checkpoint layout. */
  read(need: TensorNeed): Float32Array;
  /** Rows `first .. first + count` of a 2-D tensor of the plan, [count, cols] row-major. */
  readRows(need: TensorNeed, first: number, count: number): Float32Array;
  /** Closes the weight files; reading afterwards is an error. */
  close(): void;
}

export interface CheckpointOptions {
  /** Hears the name of every tensor whose data is read (tests count what a load reads). */
  onRead?: (name: string) => void;
}

interface Located { file: string; fd: number; header: SafetensorsHeader }

/** Opens the weight files of `dir` for `config` and checks everything that can be checked from their headers. */
export function openCheckpoint(dir: string, config: ModelConfig, options: CheckpointOptions = {}): Checkpoint {
  const files = weightFiles(dir);
  const index = join(dir, 'model.safetensors.index.json');
  const mapped = existsSync(index) ? readIndex(index) : undefined;
  const opened: Located[] = [];
  const where = new Map<string, Located>();
  const dtypes = new Set<string>();
  const closeAll = (): void => {
    for (const o of opened.splice(0)) closeSync(o.fd);
  };
  try {
    for (const file of files) {
      const fd = openWeightFile(file);
      let header: SafetensorsHeader;
      try {
        header = readHeaderFd(fd, file);
      } catch (e) {
        closeSync(fd);
        throw asModelError(e, file);
      }
      const located = { file, fd, header };
      opened.push(located);
      for (const [name, t] of header.tensors) {
        if (isIgnoredTensor(config, name)) continue;
        const prev = where.get(name);
        if (prev !== undefined) {
          throw new ModelError('safetensors-invalid', `tensor "${name}" appears in both ${prev.file} and ${file}; remove the stray file from the folder`, file);
        }
        // Every dtype is checked before anything is read: a multi-GB read that fails at the end wastes minutes.
        if (!SUPPORTED_DTYPES.includes(t.dtype as Dtype)) throw unsupportedDtype(file, name, t.dtype);
        where.set(name, located);
        dtypes.add(t.dtype);
      }
    }
    if (mapped) {
      for (const [name, shard] of Object.entries(mapped)) {
        if (isIgnoredTensor(config, name)) continue;
        if (!where.has(name)) {
          throw new ModelError('tensor-missing', `${index} places tensor "${name}" in ${shard}, but that shard does not contain it; download the shard again`, join(dir, shard));
        }
      }
    }
    checkLayerCount(config, where.keys());
    const plan = checkpointPlan(config, (n) => where.has(n));
    checkPlan(config, plan, (n) => where.get(n)?.header.tensors.get(n)?.shape);
    const locate = (need: TensorNeed): Located => {
      const at = where.get(need.name);
      if (!at) throw new Error(`internal: "${need.name}" is not a tensor of the checkpoint`);
      if (opened.length === 0) throw new Error('internal: the checkpoint is closed');
      options.onRead?.(need.name);
      return at;
    };
    const range = (need: TensorNeed, start: number, count: number): Float32Array => {
      const at = locate(need);
      try {
        return readTensorRange(at.fd, at.file, at.header, need.name, start, count);
      } catch (e) {
        throw asModelError(e, at.file);
      }
    };
    return {
      plan,
      files,
      dtypes: [...dtypes].sort(),
      read: (need) => range(need, 0, need.shape.reduce((a, b) => a * b, 1)),
      readRows: (need, first, count) => {
        if (need.shape.length !== 2) throw new Error(`internal: "${need.name}" is not a matrix`);
        const cols = need.shape[1]!;
        return range(need, first * cols, count * cols);
      },
      close: closeAll,
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}
