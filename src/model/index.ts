// Entry point of src/model/: loads a Hugging Face model folder — config, tokenizer, fingerprint and
// either all its weights in canonical fp32 layout (loadModelFolder) or the checkpoint opened for
// reading part by part (openModelFolder: a quantised load reads it a layer at a time) — and
// re-exports the pieces.
import { basename, resolve } from 'node:path';
import { loadConfig, type ModelConfig } from './config';
import { ModelError } from './errors';
import { fingerprint } from './fingerprint';
import { openCheckpoint, type Checkpoint, type CheckpointOptions } from './checkpoint';
import { readWeightFolder } from './safetensors';
import { loadTokenizer, type TextTokenizer } from './tokenizer';
import { canonicalWeights, isIgnoredTensor, planParams, type CanonicalWeights } from './weights';

export * from './errors';
export * from './config';
export * from './safetensors';
export * from './weights';
export * from './checkpoint';
export * from './tokenizer';
export * from './fingerprint';
export * from './files';
export * from './finite';
export * from './tokenizer-check';
export * from './regex-safety';
export * from './time-limit';

/** A loaded model folder without its weights: what every format shares. */
export interface ModelFolderInfo {
  dir: string;
  name: string;
  config: ModelConfig;
  tokenizer: TextTokenizer;
  fingerprint: string;
  /** On-disk dtype of the weights, e.g. 'F32'; mixed files give e.g. 'BF16+F32'. */
  dtype: string;
  /** Number of distinct parameters (a tied LM head counted once). */
  params: number;
}

/** A model folder with all its weights in canonical fp32 layout. */
export interface ModelFolder extends ModelFolderInfo {
  weights: CanonicalWeights;
}

function countParams(w: CanonicalWeights): number {
  let n = w.embed.length + (w.positions?.length ?? 0) + w.finalNorm.weight.length + (w.finalNorm.bias?.length ?? 0);
  if (w.lmHead !== w.embed) n += w.lmHead.length;
  for (const l of w.layers) {
    for (const norm of [l.attnNorm, l.mlpNorm]) n += norm.weight.length + (norm.bias?.length ?? 0);
    for (const lin of [l.q, l.k, l.v, l.o, l.gate, l.up, l.down]) {
      if (lin) n += lin.weight.length + (lin.bias?.length ?? 0);
    }
  }
  return n;
}

/** Config and tokenizer, checked against each other: the cheap part of loading, done first. */
function loadBasics(dir: string): { root: string; config: ModelConfig; tokenizer: TextTokenizer } {
  const root = resolve(dir);
  const config = loadConfig(root);
  const tokenizer = loadTokenizer(root);
  if (tokenizer.vocabSize > config.vocab) {
    throw new ModelError(
      'tokenizer-invalid',
      `${root}: the tokenizer knows ${tokenizer.vocabSize} tokens but config.json's vocabulary has only ${config.vocab}; tokenizer.json belongs to a different model`,
      root,
    );
  }
  return { root, config, tokenizer };
}

/**
 * Loads and validates a model folder (synchronous: the tokenizer library builds from parsed JSON).
 * Cheap checks run first (config, tokenizer) so a broken folder fails before gigabytes are read.
 * Every problem a user can cause surfaces as a ModelError.
 */
export function loadModelFolder(dir: string): ModelFolder {
  const { root, config, tokenizer } = loadBasics(dir);
  const folder = readWeightFolder(root, { skip: (name) => isIgnoredTensor(config, name) });
  const weights = canonicalWeights(config, folder.tensors, { consume: true });
  return {
    dir: root,
    name: basename(root),
    config,
    weights,
    tokenizer,
    fingerprint: fingerprint(root, config),
    dtype: folder.dtypes.join('+') || 'F32',
    params: countParams(weights),
  };
}

/**
 * A model folder with its checkpoint opened but no weight data read: every check loadModelFolder
 * makes from config, tokenizer and headers (names, shapes, dtypes) is made here, and the
 * fingerprint computed; the caller reads the weights part by part and closes the checkpoint.
 */
export function openModelFolder(dir: string, options: CheckpointOptions = {}): { folder: ModelFolderInfo; checkpoint: Checkpoint } {
  const { root, config, tokenizer } = loadBasics(dir);
  const checkpoint = openCheckpoint(root, config, options);
  try {
    const folder: ModelFolderInfo = {
      dir: root,
      name: basename(root),
      config,
      tokenizer,
      fingerprint: fingerprint(root, config),
      dtype: checkpoint.dtypes.join('+') || 'F32',
      params: planParams(checkpoint.plan),
    };
    return { folder, checkpoint };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}
