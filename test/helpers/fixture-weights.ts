// Test helpers for the runtime and quantisation tests: a fixture checkpoint's config and canonical
// weights without its tokenizer (whose load-time check is not under test there), and how far one
// array of numbers is from another.
import assert from 'node:assert/strict';
import { canonicalWeights, isIgnoredTensor, loadConfig, readWeightFolder, type CanonicalWeights, type ModelConfig } from '../../src/model';
import { compareArrays } from '../../src/runtime/provider-check';

/** Config and canonical weights of the model folder `dir`. */
export function fixtureWeights(dir: string): { config: ModelConfig; weights: CanonicalWeights } {
  const config = loadConfig(dir);
  const folder = readWeightFolder(dir, { skip: (n) => isIgnoredTensor(config, n) });
  return { config, weights: canonicalWeights(config, folder.tensors, { consume: true }) };
}

/** Largest absolute difference of `got` from `want`, and that over the largest |want| (NaN-aware). */
export function errors(got: ArrayLike<number>, want: ArrayLike<number>): { abs: number; rel: number } {
  assert.equal(got.length, want.length, 'the two results differ in size');
  const { abs, scale } = compareArrays(got, want);
  return { abs, rel: abs / Math.max(scale, 1e-30) };
}

/** Largest absolute difference over the largest magnitude of `want`. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  return errors(got, want).rel;
}
