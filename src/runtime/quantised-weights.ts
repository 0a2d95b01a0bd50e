// A model's weights in a quantised format (runtime/; the per-matrix maths is model/quantise.ts, the
// list of matrices graph/quantised.ts): the MatMulNBits matrices and the float weights left over
// (norms, biases, learned positions), made from canonical fp32 weights one matrix at a time, or
// read from the on-disk cache (quantiseModelCached, runtime/quant-cache.ts).
import type { ModelConfig } from '../model/config';
import type { CanonicalWeights } from '../model/weights';
import { dequantiseMatrix, quantisedBytes, quantiseMatrix, type QuantisedMatrix, type QuantSpec } from '../model/quantise';
import { floatWeightInputs } from '../graph/architectures/decoder';
import { lmHeadName, quantisedWeightSpecs } from '../graph/quantised';
import { QUANT_BLOCK_SIZE, formatBits, type WeightFormat } from './weight-formats';
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

export function quantSpecOf(format: Exclude<WeightFormat, 'fp32'>, blockSize = QUANT_BLOCK_SIZE): QuantSpec {
  return { bits: formatBits(format)!, blockSize };
}

/** Quantises canonical weights (every matrix of quantisedWeightSpecs; floats are shared, not copied). */
export function quantiseModel(cfg: ModelConfig, weights: CanonicalWeights, format: Exclude<WeightFormat, 'fp32'>, blockSize = QUANT_BLOCK_SIZE): QuantisedModel {
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
export function quantiseModelCached(cfg: ModelConfig, weights: CanonicalWeights, format: Exclude<WeightFormat, 'fp32'>, cache: { dir: string; fingerprint: string }, blockSize = QUANT_BLOCK_SIZE): CachedQuantisation {
  const spec = quantSpecOf(format, blockSize);
  const read = readQuantCache(cache.dir, cache.fingerprint, format, spec);
  let reason: string | undefined;
  if ('matrices' in read) {
    const fits = quantisedWeightSpecs(cfg, spec).every((w) => {
      const m = read.matrices.get(w.name);
      return m !== undefined && m.n === w.n && m.k === w.k && m.bits === w.spec.bits && m.blockSize === w.spec.blockSize;
    });
    if (fits && read.matrices.size === quantisedWeightSpecs(cfg, spec).length) {
      const arrays = weightArrays(cfg, weights);
      const floats = new Map<string, Float32Array>();
      for (const f of floatWeightInputs(cfg, spec)) floats.set(f.name, arrays.get(f.name)!);
      return { model: { format, spec, matrices: read.matrices, floats }, source: 'cache' };
    }
    reason = 'the cached weights do not fit the model';
  } else reason = read.reason;
  const model = quantiseModel(cfg, weights, format, blockSize);
  try {
    writeQuantCache(cache.dir, cache.fingerprint, format, spec, model.matrices);
  } catch (e) {
    reason = `${reason}; the cache could not be written (${(e as Error).message})`;
  }
  return { model, source: 'quantised', reason };
}
