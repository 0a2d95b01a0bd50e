// Opening a model: where the embedded default lives, and loading a folder into a runtime in the
// chosen weight format — fp32 through loadModelFolder, int8/int4 straight from the checkpoint a
// layer at a time (loadQuantisedModelFolder: no fp32 copy of the model is made or kept) — with the
// weights the repair engine reads (repair/repair-weights.ts). Shared by the CLI, the worker and
// the benchmarks.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig, loadModelFolder, type ModelFolder, type ModelFolderInfo } from '../model';
import { canonicalRepairWeights, quantisedRepairWeights, type RepairWeights } from '../repair/repair-weights';
import type { RuntimeOptions } from './providers';
import { loadQuantisedModelFolder, type QuantisedFolder } from './quantised-weights';
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

export interface OpenModel<F extends ModelFolderInfo = ModelFolderInfo> {
  /** The folder; its fp32 `weights` only when the format is fp32 (a quantised open makes no fp32 copy). */
  folder: F;
  runtime: ModelRuntime;
  /** The format the runtime's weights are in. */
  weights: WeightFormat;
  /** What the repair engine reads (W_down and the LM head): the fp32 weights, or the quantised model's Ŵ. */
  repairWeights: RepairWeights;
}

export interface OpenOptions extends RuntimeOptions {
  /** Weight format (runtime/weight-formats.ts); absent: fp32. */
  weights?: WeightSetting;
  /** Folder of the quantised-weight cache (runtime/quant-cache.ts); absent: quantise on every open. */
  weightCacheDir?: string;
}

/** A model folder loaded in `format`: the fp32 folder with its weights, or the quantised load. */
export function loadFolderAs(dir: string, format: WeightFormat, cacheDir?: string): { fp32: ModelFolder } | { quantised: QuantisedFolder } {
  if (format === 'fp32') return { fp32: loadModelFolder(dir) };
  return { quantised: loadQuantisedModelFolder(dir, format, cacheDir ? { cacheDir } : {}) };
}

export function openModel(dir: string | undefined, options?: OpenOptions & { weights?: 'fp32' }): OpenModel<ModelFolder>;
export function openModel(dir: string | undefined, options?: OpenOptions): OpenModel;
export function openModel(dir: string | undefined, options: OpenOptions = {}): OpenModel {
  const { weights: setting, weightCacheDir, ...runtimeOptions } = options;
  const root = resolveModelDir(dir);
  const format = resolveWeightFormat(setting ?? 'fp32', options.provider ?? 'cpu', loadConfig(root));
  const loaded = loadFolderAs(root, format, weightCacheDir);
  if ('fp32' in loaded) {
    const folder = loaded.fp32;
    return { folder, runtime: new ModelRuntime(folder.config, folder.weights, runtimeOptions), weights: format, repairWeights: canonicalRepairWeights(folder.config, folder.weights) };
  }
  const { folder, model } = loaded.quantised;
  return { folder, runtime: new ModelRuntime(folder.config, model, runtimeOptions), weights: format, repairWeights: quantisedRepairWeights(folder.config, model) };
}
