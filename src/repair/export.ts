// Folding neuron patches into the weights, and exporting a patched checkpoint folder
// (safetensors + config + tokenizer) that any Hugging Face loader — and our runtime — reads back.

import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../model/config';
import type { CanonicalWeights } from '../model/weights';
import { toCheckpointTensors } from '../model/weights';
import { writeSafetensors } from '../model/safetensors';
import type { LayerPatch } from '../runtime/runtime';

/** A copy of `weights` whose down projections include the patch (only patched layers are copied). */
export function foldPatch(config: ModelConfig, weights: CanonicalWeights, patch: ReadonlyMap<number, LayerPatch>): CanonicalWeights {
  const { intermediate: m, hidden: d } = config;
  const layers = weights.layers.map((layer, l) => {
    const p = patch.get(l);
    if (!p || p.rows.length === 0) return layer;
    // Canonical down projection is [d, m] (nn.Linear layout): neuron i is column i.
    const w = Float32Array.from(layer.down.weight);
    p.rows.forEach((row, k) => {
      for (let j = 0; j < d; j++) w[j * m + row] += p.deltas[k * d + j];
    });
    return { ...layer, down: { ...layer.down, weight: w } };
  });
  return { ...weights, layers };
}

const COPIED = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

export class ExportError extends Error {}

/**
 * Writes `outDir` = the model of `sourceDir` with `patch` folded in. The folder is written next to
 * its destination under a temporary name and renamed when complete, so a crash leaves no half model.
 */
export function exportPatchedModel(
  source: { dir: string; config: ModelConfig; weights: CanonicalWeights; fingerprint: string },
  patch: ReadonlyMap<number, LayerPatch>,
  outDir: string,
  provenance: Record<string, unknown> = {},
): string {
  const out = resolve(outDir);
  if (out === resolve(source.dir)) throw new ExportError('refusing to overwrite the source model folder: choose another folder');
  if (existsSync(out) && readdirSync(out).length > 0) throw new ExportError(`${out} exists and is not empty: choose a new or empty folder`);
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const folded = foldPatch(source.config, source.weights, patch);
    writeSafetensors(join(tmp, 'model.safetensors'), toCheckpointTensors(source.config, folded), { format: 'pt' });
    for (const f of COPIED) if (existsSync(join(source.dir, f))) copyFileSync(join(source.dir, f), join(tmp, f));
    const rows = [...patch.values()].reduce((n, p) => n + p.rows.length, 0);
    writeFileSync(join(tmp, 'star-repair.json'), JSON.stringify({ baseModelFingerprint: source.fingerprint, patchedNeurons: rows, exportedAt: new Date().toISOString(), ...provenance }, null, 2));
    if (existsSync(out)) rmSync(out, { recursive: true });
    mkdirSync(dirname(out), { recursive: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return out;
}
