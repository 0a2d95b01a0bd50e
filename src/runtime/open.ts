// Opening a model: where the embedded default lives, and loading a folder into a runtime.
// Shared by the CLI, the worker and the benchmarks.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModelFolder, type ModelFolder } from '../model';
import type { RuntimeOptions } from './providers';
import { ModelRuntime } from './runtime';

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
}

export function openModel(dir: string | undefined, options: RuntimeOptions = {}): OpenModel {
  const folder = loadModelFolder(resolveModelDir(dir));
  return { folder, runtime: new ModelRuntime(folder.config, folder.weights, options) };
}
