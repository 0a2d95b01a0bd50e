// Folding neuron patches into the weights, and exporting a patched checkpoint folder
// (safetensors + config + tokenizer) that any Hugging Face loader — and our runtime — reads back.

import {
  accessSync, constants, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writeFileSync, type Stats,
} from 'node:fs';
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
  const existing = statOrNone(out);
  if (existing && !existing.isDirectory()) throw new ExportError(`${out} exists and is not a folder: choose a new or empty folder`);
  if (existing && readdirSync(out).length > 0) throw new ExportError(`${out} exists and is not empty: choose a new or empty folder`);
  prepareFolder(dirname(out));
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const folded = foldPatch(source.config, source.weights, patch);
    writeSafetensors(join(tmp, 'model.safetensors'), toCheckpointTensors(source.config, folded), { format: 'pt' });
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
