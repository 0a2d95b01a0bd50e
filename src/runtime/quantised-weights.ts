// A model's weights in a quantised format (runtime/; the per-matrix maths is model/quantise.ts, the
// list of matrices graph/quantised.ts): the MatMulNBits matrices and the float weights left over
// (norms, biases, learned positions), made from canonical fp32 weights one matrix at a time
// (quantiseModel), or straight from a model folder a layer at a time without an fp32 copy of the
// model (loadQuantisedModelFolder), or read from the on-disk cache (runtime/quant-cache.ts).
import type { ModelConfig } from '../model/config';
import { openModelFolder, type ModelFolderInfo } from '../model';
import type { Checkpoint } from '../model/checkpoint';
import { canonicalFinalNorm, layerMatrices, layerVectors, type CanonicalWeights, type Norm, type TensorNeed } from '../model/weights';
import { dequantiseMatrix, emptyQuantised, quantisedBytes, quantiseMatrix, quantiseRow, type QuantisedMatrix, type QuantSpec } from '../model/quantise';
import { floatWeightInputs } from '../graph/architectures/decoder';
import { lmHeadName, quantisedWeightSpecs, type QuantisedWeightSpec } from '../graph/quantised';
import { quantBlockSize, formatBits, type WeightFormat } from './weight-formats';
import { weightArrays } from './runtime';
import { readQuantCache, writeQuantCache } from './quant-cache';

export interface QuantisedModel {
  format: Exclude<WeightFormat, 'fp32'>;
  spec: QuantSpec;
  /** quantisedWeightSpecs name → matrix. */
  matrices: Map<string, QuantisedMatrix>;
  /** floatWeightInputs name → values. */
  floats: Map<string, Float32Array>;
}

export function quantSpecOf(format: Exclude<WeightFormat, 'fp32'>, blockSize = quantBlockSize(format)): QuantSpec {
  return { bits: formatBits(format)!, blockSize };
}

/** Quantises canonical weights (every matrix of quantisedWeightSpecs; floats are shared, not copied). */
export function quantiseModel(cfg: ModelConfig, weights: CanonicalWeights, format: Exclude<WeightFormat, 'fp32'>, blockSize = quantBlockSize(format)): QuantisedModel {
  const spec = quantSpecOf(format, blockSize);
  const arrays = weightArrays(cfg, weights);
  const matrices = new Map<string, QuantisedMatrix>();
  for (const w of quantisedWeightSpecs(cfg, spec)) {
    const src = arrays.get(w.source);
    if (!src) throw new Error(`internal: canonical weights lack ${w.source}`);
    matrices.set(w.name, quantiseMatrix(src, w.n, w.k, w.spec));
  }
  const floats = new Map<string, Float32Array>();
  for (const f of floatWeightInputs(cfg, spec)) floats.set(f.name, arrays.get(f.name)!);
  return { format, spec, matrices, floats };
}

/** Bytes of a quantised model's weights (codes, scales, zero points and the float weights). */
export function quantisedModelBytes(q: QuantisedModel): number {
  let n = 0;
  for (const m of q.matrices.values()) n += quantisedBytes(m);
  for (const f of q.floats.values()) n += f.byteLength;
  return n;
}

/**
 * The fp32 model a quantised model computes: every matrix dequantised (Ŵ = s·(q − z)). A tied
 * LM head at 4 bits differs from the 8-bit embedding table, so the result is untied there.
 * Used as the tests' reference and to inspect a quantised model; export never writes it.
 */
export function dequantiseModel(cfg: ModelConfig, q: QuantisedModel): { config: ModelConfig; weights: CanonicalWeights } {
  const get = (name: string): Float32Array => {
    const m = q.matrices.get(name);
    if (m) return dequantiseMatrix(m);
    const f = q.floats.get(name);
    if (!f) throw new Error(`internal: quantised model lacks ${name}`);
    return f;
  };
  const float = (name: string): Float32Array | undefined => q.floats.get(name);
  const head = lmHeadName(cfg, q.spec);
  const embed = get('embed');
  const lmHead = head === 'embed' ? embed : get(head);
  const linear = (name: string, out: number, inp: number) => ({ weight: get(`${name}.weight`), out, in: inp, ...(float(`${name}.bias`) ? { bias: float(`${name}.bias`)! } : {}) });
  const norm = (name: string) => ({ weight: get(`${name}.weight`), ...(float(`${name}.bias`) ? { bias: float(`${name}.bias`)! } : {}) });
  const { hidden: d, intermediate: m, heads: H, kvHeads: KV, headDim: hd } = cfg;
  const layers = Array.from({ length: cfg.layers }, (_, l) => ({
    attnNorm: norm(`l${l}.attn_norm`),
    q: linear(`l${l}.q`, H * hd, d),
    k: linear(`l${l}.k`, KV * hd, d),
    v: linear(`l${l}.v`, KV * hd, d),
    o: linear(`l${l}.o`, d, H * hd),
    mlpNorm: norm(`l${l}.mlp_norm`),
    ...(cfg.family === 'gpt2' ? {} : { gate: linear(`l${l}.gate`, m, d) }),
    up: linear(`l${l}.up`, m, d),
    down: linear(`l${l}.down`, d, m),
  }));
  const weights: CanonicalWeights = { embed, layers, finalNorm: norm('final_norm'), lmHead, ...(float('position_embed') ? { positions: float('position_embed')! } : {}) };
  return { config: { ...cfg, tiedEmbeddings: lmHead === embed }, weights };
}

export interface CachedQuantisation {
  model: QuantisedModel;
  /** 'cache': read from the cache file; 'quantised': made now (and written to the cache). */
  source: 'cache' | 'quantised';
  /** Why the cache was not used, when it was not. */
  reason?: string;
}

/**
 * quantiseModel through the on-disk cache in `dir` (runtime/quant-cache.ts), keyed by the model's
 * fingerprint, the format and the block size: a valid cache file is used as it is; a missing,
 * damaged or mismatched one is replaced by quantising again. A cache that cannot be written is
 * reported in `reason`, never an error: the weights are still there.
 */
export function quantiseModelCached(cfg: ModelConfig, weights: CanonicalWeights, format: Exclude<WeightFormat, 'fp32'>, cache: { dir: string; fingerprint: string }, blockSize = quantBlockSize(format)): CachedQuantisation {
  const spec = quantSpecOf(format, blockSize);
  const read = readFittingCache(cfg, spec, format, cache);
  if ('matrices' in read) {
    const arrays = weightArrays(cfg, weights);
    const floats = new Map<string, Float32Array>();
    for (const f of floatWeightInputs(cfg, spec)) floats.set(f.name, arrays.get(f.name)!);
    return { model: { format, spec, matrices: read.matrices, floats }, source: 'cache' };
  }
  const model = quantiseModel(cfg, weights, format, blockSize);
  return { model, source: 'quantised', reason: writeCache(cache, format, spec, model.matrices, read.reason) };
}

/** The cached matrices when the cache file is valid and holds exactly the matrices of `cfg` at `spec`; else why not. */
function readFittingCache(cfg: ModelConfig, spec: QuantSpec, format: string, cache: { dir: string; fingerprint: string }): { matrices: Map<string, QuantisedMatrix> } | { reason: string } {
  const read = readQuantCache(cache.dir, cache.fingerprint, format, spec);
  if (!('matrices' in read)) return read;
  const specs = quantisedWeightSpecs(cfg, spec);
  const fits = read.matrices.size === specs.length && specs.every((w) => {
    const m = read.matrices.get(w.name);
    return m !== undefined && m.n === w.n && m.k === w.k && m.bits === w.spec.bits && m.blockSize === w.spec.blockSize;
  });
  return fits ? read : { reason: 'the cached weights do not fit the model' };
}

/** Writes the cache; returns the reason the cache was not used, plus why it could not be written when it could not. */
function writeCache(cache: { dir: string; fingerprint: string }, format: string, spec: QuantSpec, matrices: ReadonlyMap<string, QuantisedMatrix>, reason: string): string {
  try {
    writeQuantCache(cache.dir, cache.fingerprint, format, spec, matrices);
    return reason;
  } catch (e) {
    return `${reason}; the cache could not be written (${(e as Error).message})`;
  }
}

/** Rows of the embedding or LM head read (and quantised) at a time: a few MB of float32. */
const ROW_CHUNK_VALUES = 1 << 20;

/** Quantises a [rows, cols] checkpoint matrix row chunk by row chunk into every matrix of `targets` (a tied int4 head: two). */
function quantiseRowsOf(checkpoint: Checkpoint, need: TensorNeed, targets: readonly QuantisedWeightSpec[], out: Map<string, QuantisedMatrix>): void {
  if (targets.length === 0) return;
  const [rows, cols] = need.shape as [number, number];
  const made = targets.map((w) => {
    if (w.n !== rows || w.k !== cols) throw new Error(`internal: ${w.name} is [${w.n}, ${w.k}] but ${need.name} is [${rows}, ${cols}]`);
    return emptyQuantised(w.n, w.k, w.spec);
  });
  const per = Math.max(1, Math.floor(ROW_CHUNK_VALUES / cols));
  for (let first = 0; first < rows; first += per) {
    const count = Math.min(per, rows - first);
    const values = checkpoint.readRows(need, first, count);
    for (let r = 0; r < count; r++) for (const q of made) quantiseRow(q, first + r, values, r * cols);
  }
  targets.forEach((w, i) => out.set(w.name, made[i]!));
}

/**
 * Streams a checkpoint into a quantised model: the float vectors (norms, biases, learned
 * positions) always; the matrices only when `quantise` (not on a cache hit) — the embedding and
 * an untied LM head by row chunks, each layer read whole in fp32, quantised, and let go.
 * Names follow runtime.ts weightArrays; the result's maps are in quantisedWeightSpecs and
 * floatWeightInputs order, as quantiseModel makes them.
 */
function streamCheckpoint(cfg: ModelConfig, checkpoint: Checkpoint, spec: QuantSpec, quantise: boolean): { matrices: Map<string, QuantisedMatrix>; floats: Map<string, Float32Array> } {
  const specs = quantisedWeightSpecs(cfg, spec);
  const bySource = new Map<string, QuantisedWeightSpec[]>();
  for (const w of specs) bySource.set(w.source, [...(bySource.get(w.source) ?? []), w]);
  const made = new Map<string, QuantisedMatrix>();
  const arrays = new Map<string, Float32Array>();
  const putNorm = (prefix: string, n: Norm): void => {
    arrays.set(`${prefix}.weight`, n.weight);
    if (n.bias) arrays.set(`${prefix}.bias`, n.bias);
  };
  const { plan } = checkpoint;
  const get = (need: TensorNeed): Float32Array => checkpoint.read(need);
  if (quantise) quantiseRowsOf(checkpoint, plan.embed, bySource.get('embed') ?? [], made);
  if (plan.positions) arrays.set('position_embed', get(plan.positions));
  plan.layers.forEach((layer, l) => {
    const vectors = layerVectors(cfg, layer, get);
    putNorm(`l${l}.attn_norm`, vectors.attnNorm);
    putNorm(`l${l}.mlp_norm`, vectors.mlpNorm);
    for (const [n, b] of Object.entries(vectors.bias)) arrays.set(`l${l}.${n}.bias`, b);
    if (!quantise) return;
    for (const [n, w] of Object.entries(layerMatrices(cfg, layer, get))) {
      for (const target of bySource.get(`l${l}.${n}.weight`) ?? []) made.set(target.name, quantiseMatrix(w, target.n, target.k, target.spec));
    }
  });
  putNorm('final_norm', canonicalFinalNorm(plan, get));
  if (quantise && plan.lmHead) quantiseRowsOf(checkpoint, plan.lmHead, bySource.get('lm_head') ?? [], made);

  const matrices = new Map<string, QuantisedMatrix>();
  if (quantise) {
    for (const w of specs) {
      const m = made.get(w.name);
      if (!m) throw new Error(`internal: the checkpoint stream made no ${w.name}`);
      matrices.set(w.name, m);
    }
  }
  const floats = new Map<string, Float32Array>();
  for (const f of floatWeightInputs(cfg, spec)) {
    const a = arrays.get(f.name);
    if (!a) throw new Error(`internal: the checkpoint stream read no ${f.name}`);
    floats.set(f.name, a);
  }
  return { matrices, floats };
}

export interface QuantisedFolder extends CachedQuantisation {
  /** The folder's config, tokenizer, fingerprint, dtype and parameter count; no fp32 weights. */
  folder: ModelFolderInfo;
}

export interface QuantisedLoadOptions {
  /** Folder of the quantised-weight cache (runtime/quant-cache.ts); absent: quantise on every load. */
  cacheDir?: string;
  blockSize?: number;
  /** Hears the name of every tensor whose data is read from the checkpoint. */
  onRead?: (name: string) => void;
}

/**
 * Loads a model folder straight into a quantised format, never holding the model in fp32: the
 * checkpoint's headers are checked first (as loadModelFolder checks them), then it is read a layer
 * at a time (the embedding and an untied head by row chunks), each matrix quantised at once and
 * its float32 values let go; only norms, biases and learned positions stay float. With a valid
 * cache the matrices are not read from the checkpoint at all, only the float vectors. The result
 * equals quantiseModel(loadModelFolder(dir)) exactly.
 */
export function loadQuantisedModelFolder(dir: string, format: Exclude<WeightFormat, 'fp32'>, options: QuantisedLoadOptions = {}): QuantisedFolder {
  const { folder, checkpoint } = openModelFolder(dir, { onRead: options.onRead });
  try {
    const cfg = folder.config;
    const spec = quantSpecOf(format, options.blockSize);
    const cache = options.cacheDir ? { dir: options.cacheDir, fingerprint: folder.fingerprint } : null;
    const read = cache ? readFittingCache(cfg, spec, format, cache) : null;
    if (read && 'matrices' in read) {
      const { floats } = streamCheckpoint(cfg, checkpoint, spec, false);
      return { folder, model: { format, spec, matrices: read.matrices, floats }, source: 'cache' };
    }
    const { matrices, floats } = streamCheckpoint(cfg, checkpoint, spec, true);
    const model: QuantisedModel = { format, spec, matrices, floats };
    if (!cache || !read) return { folder, model, source: 'quantised' };
    return { folder, model, source: 'quantised', reason: writeCache(cache, format, spec, matrices, read.reason) };
  } finally {
    checkpoint.close();
  }
}
