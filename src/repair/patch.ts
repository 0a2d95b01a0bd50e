// The Patch record (docs/formats.md): neuron deltas on MLP down-projection rows,
// with provenance, scores and cost. Owns the JSON form (deltas as base64
// little-endian float32), validation, the fingerprint check, summing (combinePatches: the one
// function that stacks patches) and negation. Pure: no vscode, no runtime (only its LayerPatch
// type, the one layer-patch shape); the worker feeds combined patches to the graphs.
import { randomUUID } from 'node:crypto';
import type { LayerPatch } from '../runtime/runtime';
import type { SelectSetting } from './locate';
import { isRecord } from '../util/read';

export type RepairMethod = 'star' | 'mint' | 'sgd';
export type RepairMode = 'iter' | 'batch';
export const REPAIR_METHODS: readonly RepairMethod[] = ['star', 'mint', 'sgd'];
export const REPAIR_MODES: readonly RepairMode[] = ['iter', 'batch'];

/** How a repair is asked for: the `starRepair.repair.*` settings, and the worker's repair request. */
export interface RepairChoice {
  method: RepairMethod;
  mode: RepairMode;
  select: SelectSetting;
  epochs: number;
  /** Step size; null: the model's tuned default. */
  eta: number | null;
  /** Specificity-preserving STAR's zero-steer rows from the regression set; null: the model's tuned default. */
  preserveRows: number | null;
}

/** JSON values allowed in `options` (method settings recorded for provenance). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface PatchLayer {
  /** Zero-based decoder layer index. */
  layer: number;
  /** Neuron indices (rows of the down projection), sorted ascending, unique. */
  rows: number[];
  /** `[rows.length, d]` row-major: the delta added to each row. */
  deltas: Float32Array;
}

export interface PatchScores {
  effectiveness: number | null;
  generalisation: number | null;
  specificity: number | null;
}

export interface PatchStats {
  ms: number;
  peakRssMb: number;
  neurons: number;
  params: number;
}

export interface Patch {
  id: string;
  modelFingerprint: string;
  method: RepairMethod;
  mode: RepairMode;
  options: { [key: string]: JsonValue };
  failureIds: string[];
  /** ISO 8601. */
  createdAt: string;
  layers: PatchLayer[];
  scores: PatchScores;
  stats: PatchStats;
}

/** The on-disk / on-wire form: identical except that deltas are base64 LE float32. */
export interface PatchJson extends Omit<Patch, 'layers'> {
  layers: { layer: number; rows: number[]; deltas: string }[];
}

/** A patch is malformed; `problems` lists every reason. */
export class InvalidPatchError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid patch: ${problems.join('; ')}`);
    this.name = 'InvalidPatchError';
  }
}

/** A patch was made for a different model than the one loaded. */
export class PatchMismatchError extends Error {
  constructor(readonly patchId: string, readonly patchFingerprint: string, readonly modelFingerprint: string) {
    super(`this patch was made for model ${patchFingerprint.slice(0, 8)}…, the loaded model is ` +
      `${modelFingerprint.slice(0, 8)}…: load that model or discard the patch`);
    this.name = 'PatchMismatchError';
  }
}

/** Shape of the model a patch is checked against. */
export interface PatchTarget {
  fingerprint: string;
  /** Hidden size d: the length of each delta row. */
  hiddenSize: number;
  /** Number of decoder layers (layer indices must be below it). */
  numLayers?: number;
  /** MLP inner width m (row indices must be below it). */
  intermediateSize?: number;
}

/**
 * The most delta values one patch may hold: 2^23 float32, 32 MiB (45 MB as base64 JSON). A patch
 * travels whole in one worker message and is one record of the model's patch file (read as one
 * string, src/store/patch-file.ts), so a dense patch of a real model cannot be kept: Qwen2.5-Coder
 * 0.5B dense is 104.6 M values (418 MB), 1.5B 385 M (1.54 GB). Dense STAR on the embedded model is
 * 786,432. A repair checks its selection against this before any work (src/repair/run.ts).
 */
export const MAX_PATCH_PARAMS = 2 ** 23;

/** Characters of base64 that `values` float32 values encode to. */
export function base64Chars(values: number): number {
  return 4 * Math.ceil((4 * values) / 3);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encodes float32 values as base64 of their little-endian bytes. */
export function encodeFloat32Base64(values: Float32Array): string {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
  const buf = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i]!, i * 4);
  return buf.toString('base64');
}

/** Decodes base64 little-endian float32 bytes; throws on a length that is not a multiple of 4. */
export function decodeFloat32Base64(text: string): Float32Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error('deltas are not base64');
  const buf = Buffer.from(text, 'base64');
  if (buf.length % 4 !== 0) throw new Error(`deltas hold ${buf.length} bytes, not a whole number of float32 values`);
  const out = new Float32Array(buf.length / 4);
  // Copy rather than view: the Buffer may be pooled and unaligned.
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function checkRows(rows: unknown, where: string, problems: string[]): rows is number[] {
  if (!Array.isArray(rows)) {
    problems.push(`${where}: "rows" must be an array of neuron indices`);
    return false;
  }
  if (rows.length === 0) {
    problems.push(`${where}: "rows" is empty (a layer without neurons should be left out)`);
    return false;
  }
  for (let i = 0; i < rows.length; i++) {
    if (!isNonNegInt(rows[i])) {
      problems.push(`${where}: rows[${i}] is ${JSON.stringify(rows[i])}, not a non-negative integer`);
      return false;
    }
    if (i > 0 && (rows[i] as number) <= (rows[i - 1] as number)) {
      problems.push(`${where}: rows must be sorted ascending without repeats (rows[${i - 1}]=${String(rows[i - 1])}, rows[${i}]=${String(rows[i])})`);
      return false;
    }
  }
  return true;
}

function checkDeltas(deltas: Float32Array, rows: number, d: number | undefined, where: string, problems: string[]): number | undefined {
  if (d !== undefined) {
    if (deltas.length !== rows * d) {
      problems.push(`${where}: ${deltas.length} delta values, expected rows × d = ${rows} × ${d} = ${rows * d}`);
      return undefined;
    }
  } else if (deltas.length === 0 || deltas.length % rows !== 0) {
    problems.push(`${where}: ${deltas.length} delta values is not a positive multiple of ${rows} rows`);
    return undefined;
  }
  for (let i = 0; i < deltas.length; i++) {
    if (!Number.isFinite(deltas[i])) {
      problems.push(`${where}: delta value #${i} is ${deltas[i]} (a patch must hold finite numbers only)`);
      return undefined;
    }
  }
  return deltas.length / rows;
}

function checkScore(v: unknown): boolean {
  return v === null || (typeof v === 'number' && Number.isFinite(v));
}

/**
 * Checks everything about a patch that does not need the model; with `hiddenSize`
 * also that every layer holds rows × d deltas. Without it, all layers must agree on d.
 * Returns the problems (empty when valid).
 */
function patchProblems(p: Record<string, unknown>, layers: { layer: unknown; rows: unknown; deltas: Float32Array | undefined }[], hiddenSize?: number): string[] {
  const problems: string[] = [];
  if (typeof p.id !== 'string' || p.id.length === 0) problems.push('"id" must be a non-empty string');
  if (typeof p.modelFingerprint !== 'string' || p.modelFingerprint.length === 0) problems.push('"modelFingerprint" must be a non-empty string');
  if (!REPAIR_METHODS.includes(p.method as RepairMethod)) problems.push(`"method" must be one of ${REPAIR_METHODS.join(', ')}`);
  if (!REPAIR_MODES.includes(p.mode as RepairMode)) problems.push(`"mode" must be one of ${REPAIR_MODES.join(', ')}`);
  if (!isRecord(p.options)) problems.push('"options" must be an object');
  if (!Array.isArray(p.failureIds) || !p.failureIds.every((x) => typeof x === 'string')) problems.push('"failureIds" must be an array of strings');
  if (typeof p.createdAt !== 'string' || Number.isNaN(Date.parse(p.createdAt))) problems.push('"createdAt" must be an ISO 8601 date string');
  if (!isRecord(p.scores) || !checkScore(p.scores.effectiveness) || !checkScore(p.scores.generalisation) || !checkScore(p.scores.specificity)) {
    problems.push('"scores" must hold effectiveness, generalisation and specificity, each a number or null');
  }
  if (!isRecord(p.stats) || !['ms', 'peakRssMb', 'neurons', 'params'].every((k) => typeof (p.stats as Record<string, unknown>)[k] === 'number' && Number.isFinite((p.stats as Record<string, unknown>)[k]))) {
    problems.push('"stats" must hold numbers ms, peakRssMb, neurons and params');
  }
  const seen = new Set<number>();
  let d = hiddenSize;
  layers.forEach((l, i) => {
    const where = `layers[${i}]`;
    if (!isNonNegInt(l.layer)) {
      problems.push(`${where}: "layer" must be a non-negative integer`);
    } else if (seen.has(l.layer)) {
      problems.push(`${where}: layer ${l.layer} appears twice (merge its rows into one entry)`);
    } else {
      seen.add(l.layer);
    }
    if (!checkRows(l.rows, where, problems) || l.deltas === undefined) return;
    const layerD = checkDeltas(l.deltas, l.rows.length, d, where, problems);
    if (layerD !== undefined && d === undefined) d = layerD;
  });
  const values = layers.reduce((n, l) => n + (l.deltas?.length ?? 0), 0);
  if (values > MAX_PATCH_PARAMS) problems.push(patchTooLarge(values));
  return problems;
}

/** The one wording of the bound, for a patch read or made (run.ts says why before it). */
export function patchTooLarge(values: number): string {
  return `a patch of ${values.toLocaleString('en-US')} delta values is more than the ${MAX_PATCH_PARAMS.toLocaleString('en-US')} one patch may hold (it is sent and stored whole): repair fewer neurons (select global or one-layer, or fewer top-K neurons)`;
}

/** Validates an in-memory patch; throws InvalidPatchError. `hiddenSize` pins d when known. */
export function validatePatch(patch: Patch, hiddenSize?: number): Patch {
  if (!isRecord(patch)) throw new InvalidPatchError(['a patch must be an object']);
  const rawLayers: unknown = (patch as unknown as Record<string, unknown>).layers;
  if (!Array.isArray(rawLayers)) throw new InvalidPatchError(['"layers" must be an array']);
  const layers = rawLayers.map((l: unknown) => {
    const r = isRecord(l) ? l : {};
    return { layer: r.layer, rows: r.rows, deltas: r.deltas instanceof Float32Array ? r.deltas : undefined };
  });
  const problems = patchProblems(patch as unknown as Record<string, unknown>, layers, hiddenSize);
  rawLayers.forEach((l: unknown, i: number) => {
    if (!isRecord(l) || !(l.deltas instanceof Float32Array)) problems.push(`layers[${i}]: "deltas" must be a Float32Array`);
  });
  if (problems.length > 0) throw new InvalidPatchError(problems);
  return patch;
}

/** Converts a patch to its JSON form (deltas as base64 LE float32). */
export function patchToJson(patch: Patch): PatchJson {
  return {
    ...patch,
    options: patch.options,
    failureIds: [...patch.failureIds],
    layers: patch.layers.map((l) => ({ layer: l.layer, rows: [...l.rows], deltas: encodeFloat32Base64(l.deltas) })),
  };
}

/** Serialises a patch as JSON text. */
export function stringifyPatch(patch: Patch): string {
  return JSON.stringify(patchToJson(patch));
}

/**
 * Reads a patch from its JSON form (an object or JSON text) and validates it.
 * Throws InvalidPatchError listing every problem. Pass `hiddenSize` when the model is known.
 */
export function patchFromJson(json: unknown, hiddenSize?: number): Patch {
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json) as unknown;
    } catch (err) {
      throw new InvalidPatchError([`not valid JSON (${(err as Error).message})`]);
    }
  }
  if (!isRecord(json)) throw new InvalidPatchError(['a patch must be a JSON object']);
  if (!Array.isArray(json.layers)) throw new InvalidPatchError(['"layers" must be an array']);
  // Refused before decoding: a hostile file's deltas are not expanded.
  const chars = json.layers.reduce((n: number, l: unknown) => n + (isRecord(l) && typeof l.deltas === 'string' ? l.deltas.length : 0), 0);
  if (chars > base64Chars(MAX_PATCH_PARAMS)) throw new InvalidPatchError([patchTooLarge(Math.floor((3 * chars) / 16))]);
  const decodeProblems: string[] = [];
  const layers = json.layers.map((l: unknown, i: number) => {
    const r = isRecord(l) ? l : {};
    let deltas: Float32Array | undefined;
    if (typeof r.deltas !== 'string') {
      decodeProblems.push(`layers[${i}]: "deltas" must be a base64 string of little-endian float32 values`);
    } else {
      try {
        deltas = decodeFloat32Base64(r.deltas);
      } catch (err) {
        decodeProblems.push(`layers[${i}]: ${(err as Error).message}`);
      }
    }
    return { layer: r.layer, rows: r.rows, deltas };
  });
  const problems = [...decodeProblems, ...patchProblems(json, layers, hiddenSize)];
  if (problems.length > 0) throw new InvalidPatchError(problems);
  const scores = json.scores as Record<string, number | null>;
  const stats = json.stats as Record<string, number>;
  return {
    id: json.id as string,
    modelFingerprint: json.modelFingerprint as string,
    method: json.method as RepairMethod,
    mode: json.mode as RepairMode,
    options: json.options as { [key: string]: JsonValue },
    failureIds: [...(json.failureIds as string[])],
    createdAt: json.createdAt as string,
    layers: layers.map((l) => ({ layer: l.layer as number, rows: [...(l.rows as number[])], deltas: l.deltas as Float32Array })),
    scores: { effectiveness: scores.effectiveness ?? null, generalisation: scores.generalisation ?? null, specificity: scores.specificity ?? null },
    stats: { ms: stats.ms!, peakRssMb: stats.peakRssMb!, neurons: stats.neurons!, params: stats.params! },
  };
}

/**
 * Checks that `patch` fits the loaded model: same fingerprint (else PatchMismatchError),
 * deltas of width d, layer and row indices in range (else InvalidPatchError).
 */
export function checkPatchForModel(patch: Patch, model: PatchTarget): void {
  if (patch.modelFingerprint !== model.fingerprint) {
    throw new PatchMismatchError(patch.id, patch.modelFingerprint, model.fingerprint);
  }
  validatePatch(patch, model.hiddenSize);
  const problems: string[] = [];
  for (const l of patch.layers) {
    if (model.numLayers !== undefined && l.layer >= model.numLayers) {
      problems.push(`layer ${l.layer} does not exist: the model has ${model.numLayers} layers`);
    }
    const last = l.rows[l.rows.length - 1]!;
    if (model.intermediateSize !== undefined && last >= model.intermediateSize) {
      problems.push(`layer ${l.layer}: neuron ${last} does not exist: the MLP has ${model.intermediateSize} neurons`);
    }
  }
  if (problems.length > 0) throw new InvalidPatchError(problems);
}

/** Neurons and parameters a patch changes. */
export function patchSize(patch: Pick<Patch, 'layers'>): { neurons: number; params: number } {
  let neurons = 0;
  let params = 0;
  for (const l of patch.layers) {
    neurons += l.rows.length;
    params += l.deltas.length;
  }
  return { neurons, params };
}

/** What combinePatches sums: a patch, a layer → LayerPatch map (patches already summed), or nothing. */
export type PatchPart = { readonly id?: string; readonly layers: readonly PatchLayer[] } | ReadonlyMap<number, LayerPatch> | null;

/**
 * The one place patches are summed: the active patches, a repair in progress on top of them, a
 * patch to export. Deltas of the same (layer, row) are added (in float32, part after part), rows
 * are the sorted union, layers come out ascending, a layer without rows is left out. Every part
 * must have width `d`. The result is what the runtime takes as its patch inputs (LayerPatch).
 */
export function combinePatches(parts: readonly PatchPart[], d: number): Map<number, LayerPatch> {
  if (!Number.isInteger(d) || d <= 0) throw new RangeError(`hidden size d must be a positive integer (got ${d})`);
  const sums = new Map<number, Map<number, Float32Array>>();
  const add = (where: string, layer: number, l: LayerPatch) => {
    if (l.deltas.length !== l.rows.length * d) {
      throw new InvalidPatchError([`${where}, layer ${layer}: ${l.deltas.length} delta values, expected ${l.rows.length} × ${d}`]);
    }
    let rowMap = sums.get(layer);
    if (rowMap === undefined) sums.set(layer, (rowMap = new Map()));
    l.rows.forEach((row, i) => {
      let acc = rowMap!.get(row);
      if (acc === undefined) rowMap!.set(row, (acc = new Float32Array(d)));
      const off = i * d;
      for (let j = 0; j < d; j++) acc[j]! += l.deltas[off + j]!;
    });
  };
  for (const part of parts) {
    if (part === null) continue;
    if (isLayerMap(part)) for (const [layer, l] of part) add('patches', layer, l);
    else for (const l of part.layers) add(`patch ${part.id ?? '(in progress)'}`, l.layer, l);
  }
  const out = new Map<number, LayerPatch>();
  for (const l of packLayers(sums, d)) out.set(l.layer, { rows: l.rows, deltas: l.deltas });
  return out;
}

function isLayerMap(part: Exclude<PatchPart, null>): part is ReadonlyMap<number, LayerPatch> {
  return part instanceof Map;
}

/** Per-row delta vectors (layer → row → [d]) as Patch layers: layers and rows ascending, empty layers left out, float32. */
export function packLayers(sums: ReadonlyMap<number, ReadonlyMap<number, ArrayLike<number>>>, d: number): PatchLayer[] {
  const out: PatchLayer[] = [];
  for (const layer of [...sums.keys()].sort((a, b) => a - b)) {
    const rowMap = sums.get(layer)!;
    const rows = [...rowMap.keys()].sort((a, b) => a - b);
    if (rows.length === 0) continue;
    const deltas = new Float32Array(rows.length * d);
    rows.forEach((row, i) => deltas.set(rowMap.get(row)!, i * d));
    out.push({ layer, rows, deltas });
  }
  return out;
}

/** The patch that undoes `patch` when stacked on it: same rows, deltas negated. */
export function negatePatch(patch: Patch, id: string = `${patch.id}-negated`): Patch {
  return {
    ...patch,
    id,
    failureIds: [...patch.failureIds],
    layers: patch.layers.map((l) => ({ layer: l.layer, rows: [...l.rows], deltas: l.deltas.map((x) => -x) })),
    scores: { effectiveness: null, generalisation: null, specificity: null },
  };
}

/** A fresh patch id. */
export function newPatchId(): string {
  return randomUUID();
}
