// Opening a model: where the embedded default lives, and loading a folder into a runtime.
// Shared by the CLI, the worker and the benchmarks.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModelFolder, type ModelFolder } from '../model';
import type { RuntimeOptions } from './providers';
import { quantiseModel, quantiseModelCached } from './quantised-weights';
import { ModelRuntime } from './runtime';
import { resolveWeightFormat, type WeightFormat, type WeightSetting } from './weight-formats';

/** The embedded model's folder: `models/tiny-coder` at the package root (next to dist/ or src/). */
export function embeddedModelDir(): string | null {
  for (const root of [resolve(__dirname, '..'), resolve(__dirname, '..', '..')]) {
    const dir = join(root, 'models', 'tiny-coder');
    if (existsSync(join(dir, 'config.json'))) return dir;
  }
  return null;
}

export function resolveModelDir(dir: string | undefined): string {
  if (dir) return resolve(dir);
  const embedded = embeddedModelDir();
  if (!embedded) throw new Error('no model folder given and the embedded model (models/tiny-coder) is not installed: pass a Hugging Face model folder');
  return embedded;
}

export interface OpenModel {
  folder: ModelFolder;
  runtime: ModelRuntime;
  /** The format the runtime's weights are in (`folder.weights` stay the checkpoint's, in fp32). */
  weights: WeightFormat;
}

export interface OpenOptions extends RuntimeOptions {
  /** Weight format (runtime/weight-formats.ts); absent: fp32. */
  weights?: WeightSetting;
  /** Folder of the quantised-weight cache (runtime/quant-cache.ts); absent: quantise on every open. */
  weightCacheDir?: string;
}

export function openModel(dir: string | undefined, options: OpenOptions = {}): OpenModel {
  const folder = loadModelFolder(resolveModelDir(dir));
  const { weights: setting, weightCacheDir, ...runtimeOptions } = options;
  const format = resolveWeightFormat(setting ?? 'fp32', options.provider ?? 'cpu');
  const weights = format === 'fp32'
    ? folder.weights
    : weightCacheDir
      ? quantiseModelCached(folder.config, folder.weights, format, { dir: weightCacheDir, fingerprint: folder.fingerprint }).model
      : quantiseModel(folder.config, folder.weights, format);
  return { folder, runtime: new ModelRuntime(folder.config, weights, runtimeOptions), weights: format };
}
