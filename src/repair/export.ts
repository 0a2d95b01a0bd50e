// Folding neuron patches into the weights, and exporting a patched checkpoint folder
// (safetensors + config + tokenizer) that any Hugging Face loader — and our runtime — reads back.
// The patch is always folded into the ORIGINAL checkpoint weights in full precision, never into
// the quantised Ŵ: those held in fp32, or — when the model runs quantised and holds no fp32 copy —
// the checkpoint read again from its folder a layer at a time while the file is written (refused
// if the folder no longer has the fingerprint the patch was made for). Both write the same bytes.

import {
  accessSync, constants, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writeFileSync, type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../model/config';
import { openModelFolder } from '../model';
import type { CanonicalWeights, LayerWeights, TensorNeed } from '../model/weights';
import { GPT2_EXPORT_PREFIX, canonicalLayer, checkpointLayerTensors, toCheckpointTensors } from '../model/weights';
import { writeSafetensors, writeSafetensorsStreamed, type HostTensor } from '../model/safetensors';
import type { LayerPatch } from '../runtime/runtime';

/** `layer` with `p` folded into its down projection (that matrix copied, the rest shared). */
export function foldLayer(config: ModelConfig, layer: LayerWeights, p: LayerPatch | undefined): LayerWeights {
  if (!p || p.rows.length === 0) return layer;
  const { intermediate: m, hidden: d } = config;
  // Canonical down projection is [d, m] (nn.Linear layout): neuron i is column i.
  const w = Float32Array.from(layer.down.weight);
  p.rows.forEach((row, k) => {
    for (let j = 0; j < d; j++) w[j * m + row] += p.deltas[k * d + j];
  });
  return { ...layer, down: { ...layer.down, weight: w } };
}

/** A copy of `weights` whose down projections include the patch (only patched layers are copied). */
export function foldPatch(config: ModelConfig, weights: CanonicalWeights, patch: ReadonlyMap<number, LayerPatch>): CanonicalWeights {
  return { ...weights, layers: weights.layers.map((layer, l) => foldLayer(config, layer, patch.get(l))) };
}

/**
 * Writes `file` = the checkpoint in `source.dir` with `patch` folded in, reading it a layer at a
 * time while the file is written (the safetensors file's tensors are in name order, where each
 * layer's tensors are contiguous): at most one layer is held in float32. Refused when the folder's
 * fingerprint is no longer `source.fingerprint`. Writes the bytes the fp32 export writes.
 */
export function writePatchedCheckpoint(file: string, source: { dir: string; fingerprint: string }, patch: ReadonlyMap<number, LayerPatch>): void {
  const { folder, checkpoint } = openModelFolder(source.dir);
  try {
    if (folder.fingerprint !== source.fingerprint) {
      throw new ExportError(`the model in ${source.dir} has changed on disk since it was loaded (fingerprint ${folder.fingerprint.slice(0, 12)}…, loaded ${source.fingerprint.slice(0, 12)}…): reload the model, then export again`);
    }
    const config = folder.config;
    const { plan } = checkpoint;
    // GPT-2-family names are written with the prefix save_pretrained writes, as toCheckpointTensors does.
    const rename = (name: string): string =>
      config.family === 'llama' || name === 'lm_head.weight' || name.startsWith(GPT2_EXPORT_PREFIX) ? name : GPT2_EXPORT_PREFIX + name;
    const units = new Map<string, { layer: number | null; need: TensorNeed }>();
    const add = (layer: number | null, need: TensorNeed): void => {
      units.set(rename(need.name), { layer, need });
    };
    add(null, plan.embed);
    if (plan.positions) add(null, plan.positions);
    plan.layers.forEach((l, i) => l.forEach((need) => add(i, need)));
    plan.finalNorm.forEach((need) => add(null, need));
    if (plan.lmHead) add(null, plan.lmHead);
    let current: { layer: number; tensors: Map<string, HostTensor> } | null = null;
    const read = (need: TensorNeed): Float32Array => checkpoint.read(need);
    writeSafetensorsStreamed(file, [...units].map(([name, u]) => ({ name, shape: u.need.shape })), (name) => {
      const u = units.get(name)!;
      if (u.layer === null) {
        current = null;
        return read(u.need);
      }
      if (current?.layer !== u.layer) {
        const layer = foldLayer(config, canonicalLayer(config, plan.layers[u.layer]!, read), patch.get(u.layer));
        current = { layer: u.layer, tensors: checkpointLayerTensors(config, u.layer, layer) };
      }
      const t = current.tensors.get(name);
      if (!t) throw new Error(`internal: layer ${u.layer} has no tensor ${name} to export`);
      current.tensors.delete(name);
      return t.data;
    }, { format: 'pt' });
  } finally {
    checkpoint.close();
  }
}

const COPIED = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

export class ExportError extends Error {
  override readonly name = 'ExportError';
}

// statfs f_type of Linux's kernel pseudo file systems: nothing can be exported there, and
// mkdirSync(…, { recursive: true }) loops forever on them (ENOENT for a folder whose parent exists).
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'], [0x62656572, 'sysfs'], [0x1cd1, 'devpts'], [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'], [0x74726163, 'tracefs'], [0x73636673, 'securityfs'], [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'], [0x62656570, 'configfs'], [0x42494e4d, 'binfmt_misc'], [0x65735546, 'fusectl'],
]);

/** Stats of `p`, or undefined when nothing is there (a file in the path, ENOTDIR, also means nothing). */
function statOrNone(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ExportError(`cannot use ${p} (${(e as Error).message}): choose another export folder`);
  }
}

/** The nearest existing ancestor of `dir` (or `dir` itself) and the missing folders below it, outermost first. */
function existingAncestor(dir: string): { existing: string; missing: string[] } {
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    const s = statOrNone(at);
    if (s) {
      if (!s.isDirectory()) throw new ExportError(`${at} is not a folder: choose an export folder whose parent folders are folders`);
      return { existing: at, missing };
    }
    missing.unshift(at);
    const up = dirname(at);
    if (up === at) throw new ExportError(`${dir}: no part of this path exists: choose an export folder on a disk`);
    at = up;
  }
}

/** Throws if `dir` lies on a kernel pseudo file system (Linux) or cannot be written. */
function checkWritableDisk(dir: string): void {
  if (process.platform === 'linux') {
    const type = PSEUDO_FILE_SYSTEMS.get(Number(statfsSync(dir).type));
    if (type !== undefined) {
      throw new ExportError(`${dir} is on ${type}, a kernel pseudo file system where no model can be written: choose a folder on a disk`);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new ExportError(`cannot write in ${dir} (permission denied): choose a folder you can write to`);
  }
}

/**
 * Makes sure `dir` exists as a folder on a writable disk: its nearest existing ancestor is checked
 * (a folder, not on /proc or /sys, writable), then each missing level is created with a plain
 * mkdir — at most one call per path component, so a file system that refuses cannot make it loop.
 */
export function prepareFolder(dir: string): void {
  const { existing, missing } = existingAncestor(resolve(dir));
  checkWritableDisk(existing);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(d).isDirectory()) continue;
      throw new ExportError(`cannot create folder ${d} (${(e as Error).message}): choose a folder on a disk you can write to`);
    }
  }
}

/**
 * Writes `outDir` = the model of `source.dir` with `patch` folded into its original weights:
 * `source.weights` when it holds them (fp32), else the checkpoint read again a layer at a time
 * (writePatchedCheckpoint). The folder is written next to its destination under a temporary name
 * and renamed when complete, so a crash leaves no half model.
 */
export function exportPatchedModel(
  source: { dir: string; config: ModelConfig; weights?: CanonicalWeights; fingerprint: string },
  patch: ReadonlyMap<number, LayerPatch>,
  outDir: string,
  provenance: Record<string, unknown> = {},
): string {
  const out = resolve(outDir);
  if (out === resolve(source.dir)) throw new ExportError('refusing to overwrite the source model folder: choose another folder');
  const existing = statOrNone(out);
  if (existing && !existing.isDirectory()) throw new ExportError(`${out} exists and is not a folder: choose a new or empty folder`);
  if (existing && readdirSync(out).length > 0) throw new ExportError(`${out} exists and is not empty: choose a new or empty folder`);
  prepareFolder(dirname(out));
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const file = join(tmp, 'model.safetensors');
    if (source.weights) writeSafetensors(file, toCheckpointTensors(source.config, foldPatch(source.config, source.weights, patch)), { format: 'pt' });
    else writePatchedCheckpoint(file, source, patch);
    for (const f of COPIED) if (existsSync(join(source.dir, f))) copyFileSync(join(source.dir, f), join(tmp, f));
    const rows = [...patch.values()].reduce((n, p) => n + p.rows.length, 0);
    writeFileSync(join(tmp, 'star-repair.json'), JSON.stringify({ baseModelFingerprint: source.fingerprint, patchedNeurons: rows, exportedAt: new Date().toISOString(), ...provenance }, null, 2));
    if (existsSync(out)) rmSync(out, { recursive: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return out;
}
