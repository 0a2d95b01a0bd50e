// ModelRuntime: one loaded model on one execution provider. It owns the weight tensors (one copy,
// fed to every session), the active neuron patch (fed as inputs, so applying or undoing a patch
// never rebuilds a session), and three lazily built sessions: decode (KV cache), probe (forward +
// exact backward) and score (forward only, for evaluation).
// With quantised weights (runtime/quantised-weights.ts, docs/quantised.md) every linear map and
// the LM head are MatMulNBits codes: external initializers of the decode session (onnxruntime
// prepacks them for its int8 kernel), inputs of the probe and score sessions (the JS copy, shared,
// multiplied exactly in float32 by Ŵ from one DequantizeLinear per matrix, the LM head in row
// chunks; quantisedSessionMemory says how those sessions allocate); the patch stays a float input.

import * as ort from 'onnxruntime-node';
import type { FloatType } from '../graph/builder';
import { buildDecodeGraph, buildProbeGraph, floatWeightInputs, GREEDY_OUTPUTS, pastName, usesFusedDecode, patchDeltasName, patchRowsName, presentName, weightBlocks, weightFile, type QuantGraphOptions, type WeightMode } from '../graph/architectures/decoder';
import { codesName, quantisedTensorShapes, quantisedWeightSpecs, scalesName, zeroPointsName } from '../graph/quantised';
import type { ModelConfig } from '../model/config';
import { argmax } from '../model/finite';
import type { CanonicalWeights } from '../model/weights';
import type { QuantisedModel } from './quantised-weights';
import { DECODE_ACCURACY_LEVEL, type WeightFormat } from './weight-formats';
import { createSession, tensorByteLimit, type Fallback, type ProviderName, type RuntimeOptions } from './providers';
import { CacheBuffers, compactCache, compactTensors, feedBuffers, writeStep } from './kv-buffers';
import { decodeOutputLocations, DeviceIo, deviceTensorRegistry, disposeDeviceTensors, keepsDataOnDevice } from './device-io';

/** One layer's neuron patch: `deltas` is row-major [rows.length, d]; rows are down-projection inputs. */
export interface LayerPatch {
  rows: readonly number[];
  deltas: Float32Array;
}

export interface KvCache {
  /** Number of positions held. */
  readonly length: number;
  /**
   * Per layer: [KV, length, hd] (the plain decode graph, emptyCache, the prompt cache), or a
   * buffer [1, KV, C, hd] whose first `length` positions are the cache (the fused decode graph on
   * the CPU, runtime/kv-buffers.ts). readCache() gives either as [KV, length, hd]. On the CPU a
   * cache can be decoded from again: its positions are copied when its buffers were extended.
   */
  readonly keys: readonly ort.Tensor[];
  readonly values: readonly ort.Tensor[];
  /**
   * On a GPU provider (WebGPU) the keys and values live in device memory: a cache passed to
   * decode() is spent there (continue from the returned one), and releaseCache() frees one that is
   * not passed on.
   */
  readonly onDevice?: boolean;
}

/** A decode step's last-position logits [V] and the longer cache. */
export interface LogitsStep {
  logits: Float32Array | Float64Array;
  cache: KvCache;
}

/**
 * What decode() answers when asked for the greedy token only: the token itself where the graph
 * computes it (the fused CPU graph: the logits never leave onnxruntime), else the logits.
 */
export type DecodeStep = LogitsStep | { next: number; cache: KvCache };

/** The greedy token of a step: the one the graph chose, or argmax of the logits (the same rules). */
export function greedyToken(step: { next: number } | { logits: ArrayLike<number> }): number {
  return 'next' in step ? step.next : argmax(step.logits);
}

/**
 * The token a fused decode run chose (its GREEDY_OUTPUTS), or null where the logits' sum is not
 * finite: the caller then needs the logits themselves, which argmax judges (NaN, ±Infinity).
 */
export function chosenToken(out: Readonly<Record<string, ort.Tensor>>): number | null {
  return Number.isFinite(Number(out.logit_sum.data[0])) ? Number(out.next.data[0]) : null;
}

export interface ProbeResult {
  loss: number;
  /** Logits [N, V] at the positions where the mask is non-zero, in position order. */
  logits: Float32Array;
  /** The positions those logits belong to. */
  positions: number[];
  /** Input of the down projection per layer, [T, m]. */
  z: Float32Array[];
  /** dL/dh per layer, [T, d]. */
  dh: Float32Array[];
}

/** ModelRuntime.attribution's result: the probe's, with dL/dz_l [T, m] in place of dL/dh_l. */
export interface AttributionProbe extends Omit<ProbeResult, 'dh'> {
  dz: Float32Array[];
}

export interface ScoreResult {
  loss: number;
  logits: Float32Array;
  positions: number[];
}

type FloatArray = Float32Array | Float64Array;

/** The flat name → array view of canonical weights that the graphs' weight inputs expect. */
export function weightArrays(cfg: ModelConfig, w: CanonicalWeights): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  out.set('embed', w.embed);
  if (w.positions) out.set('position_embed', w.positions);
  const put = (prefix: string, p: { weight: Float32Array; bias?: Float32Array }) => {
    out.set(`${prefix}.weight`, p.weight);
    if (p.bias) out.set(`${prefix}.bias`, p.bias);
  };
  w.layers.forEach((layer, l) => {
    put(`l${l}.attn_norm`, layer.attnNorm);
    put(`l${l}.q`, layer.q);
    put(`l${l}.k`, layer.k);
    put(`l${l}.v`, layer.v);
    put(`l${l}.o`, layer.o);
    put(`l${l}.mlp_norm`, layer.mlpNorm);
    if (layer.gate) put(`l${l}.gate`, layer.gate);
    put(`l${l}.up`, layer.up);
    put(`l${l}.down`, layer.down);
  });
  put('final_norm', w.finalNorm);
  if (!cfg.tiedEmbeddings) out.set('lm_head', w.lmHead);
  return out;
}

function argsFloat(floatType: FloatType, data: Float32Array): FloatArray {
  return floatType === 'float64' ? Float64Array.from(data) : data;
}

export interface ModelRuntimeOptions extends RuntimeOptions {
  floatType?: FloatType;
  /** Weights as inputs (shared by all sessions) or as initializers (uploaded once per session); default: sessionWeightMode (inputs on the CPU but a small model's decode session, initializers elsewhere). */
  weights?: WeightMode;
  /**
   * Largest weight tensor, in bytes, a graph may hold; larger matrices are split into row blocks
   * in the graph (null: none). Default: the provider's limit (providers.ts tensorByteLimit).
   */
  maxTensorBytes?: number | null;
  /** MatMulNBits accuracy_level of the decode graph with quantised weights (default DECODE_ACCURACY_LEVEL). */
  accuracyLevel?: number;
  /**
   * With quantised weights: the most bytes of float Ŵ the probe and score graphs build at once;
   * larger matrices are multiplied in row chunks (default DEQUANT_CHUNK_BYTES, graph/quantised.ts).
   */
  dequantChunkBytes?: number;
  /** With quantised weights: how the probe and score sessions allocate (default QUANTISED_PROBE_MEMORY). */
  probeMemory?: ProbeMemory;
}

/** onnxruntime's CPU allocation settings of a session. */
export interface ProbeMemory {
  /** The CPU memory arena (BFC): keeps freed blocks for reuse, so the process keeps its peak. */
  arena: boolean;
  /** Memory patterns: one planned buffer for the intermediate values of a run, per input shape. */
  pattern: boolean;
}

/**
 * How probe and score sessions on quantised weights allocate. Measured at Qwen2.5-Coder-0.5B size
 * (docs/quantised.md): memory patterns off lowered the peak by 0.17 GB at the same speed; the
 * arena off lowered it by 0.2 GB more but made the probe about 1.5–1.8× slower, so it stays on.
 */
export const QUANTISED_PROBE_MEMORY: ProbeMemory = { arena: true, pattern: false };

/**
 * Float weights up to this many bytes are the CPU decode session's own initializers rather than
 * inputs shared with the other sessions (sessionWeightMode): a quantised model's norms and biases
 * (~0.3 MB at 0.5B) and the embedded model (13.6 MB) are under it, an fp32 0.5B (2 GB) is not.
 */
export const DECODE_OWN_WEIGHT_BYTES = 64 * 1024 * 1024;

/**
 * How a session takes the float weights (`floatBytes` of them): as the caller `asked`; else
 * initializers off the CPU; on the CPU, inputs (one JS copy shared by every session) — except a
 * decode session whose float weights are small (DECODE_OWN_WEIGHT_BYTES). Its own copy then costs
 * little, a step feeds several tensors per layer fewer, and onnxruntime folds what depends on them
 * alone (the stacked q/k/v biases) and prepacks fp32 matrices once instead of per step.
 */
export function sessionWeightMode(provider: string, decode: boolean, floatBytes: number, asked?: WeightMode): WeightMode {
  if (asked) return asked;
  if (provider !== 'cpu') return 'initializers';
  return decode && floatBytes <= DECODE_OWN_WEIGHT_BYTES ? 'initializers' : 'inputs';
}

/** Session options for `memory`. */
export function quantisedSessionMemory(memory: ProbeMemory): ort.InferenceSession.SessionOptions {
  return { enableCpuMemArena: memory.arena, enableMemPattern: memory.pattern };
}

/** One tensor of a quantised matrix, as the graphs name it. */
interface QuantTensor {
  name: string;
  data: Uint8Array | Float32Array;
  shape: number[];
}

/**
 * 'probe' backpropagates to layer 0; 'probe@l' stops at layer l (buildProbeGraph's fromLayer);
 * 'attribute@l' is the probe from layer l with dL/dz instead of dL/dh (wrt 'z').
 */
type SessionKind = 'decode' | 'probe' | 'score' | `probe@${number}` | `attribute@${number}`;

interface LoadedSession {
  session: ort.InferenceSession;
  provider: string;
  weights: WeightMode;
  /** The weight tensors the graph takes as inputs (blocks of split weights), when weights are inputs. */
  weightFeeds: Record<string, ort.Tensor>;
  /** A decode session of the fused layers: its caches are buffers with room, extended step by step (runtime/kv-buffers.ts). */
  cacheBuffers: boolean;
}

export class ModelRuntime {
  readonly config: ModelConfig;
  readonly floatType: FloatType;
  provider = 'cpu';
  fallbacks: Fallback[] = [];
  private readonly options: ModelRuntimeOptions;
  private readonly weightData = new Map<string, FloatArray>();
  private readonly weightFeeds: Record<string, ort.Tensor> = {};
  /** Quantised matrices' tensors (empty for fp32) and their feeds. */
  private readonly quantTensors: QuantTensor[] = [];
  private readonly quantFeeds: Record<string, ort.Tensor> = {};
  private readonly quantised: QuantisedModel | null;
  private patchFeeds: Record<string, ort.Tensor> = {};
  private chosenProvider: string | null = null;
  private sessions = new Map<SessionKind, Promise<LoadedSession>>();
  // Data kept on the device between runs (device-io.ts): the patch, uploaded once per setPatch().
  private patchGeneration = 0;
  private devicePatch: { version: number; feeds: Promise<Record<string, ort.Tensor>>; resolved?: Record<string, ort.Tensor> } | null = null;
  private deviceIo: DeviceIo | null = null;
  private readonly releasedCaches = new WeakSet<KvCache>();
  /** The buffers the fused decode graph writes its caches into, and which caches were extended. */
  private readonly cacheBuffers = new CacheBuffers();

  /** `weights`: canonical fp32 weights, or a quantised model (runtime/quantised-weights.ts). */
  constructor(config: ModelConfig, weights: CanonicalWeights | QuantisedModel, options: ModelRuntimeOptions = {}) {
    this.config = config;
    this.options = options;
    this.floatType = options.floatType ?? 'float32';
    const quantised = 'matrices' in weights ? weights : null;
    this.quantised = quantised;
    const arrays = quantised ? quantised.floats : weightArrays(config, weights as CanonicalWeights);
    if (quantised) {
      for (const w of quantisedWeightSpecs(config, quantised.spec)) {
        const m = quantised.matrices.get(w.name);
        const shapes = quantisedTensorShapes(w);
        if (!m || m.n !== w.n || m.k !== w.k || m.bits !== w.spec.bits || m.blockSize !== w.spec.blockSize || m.codes.length !== shapes.codes.reduce((a, b) => a * b, 1)) {
          throw new Error(`quantised weights: ${w.name} is ${m ? `[${m.n}, ${m.k}] at ${m.bits} bits, block ${m.blockSize}` : 'missing'}; the model needs [${w.n}, ${w.k}] at ${w.spec.bits} bits, block ${w.spec.blockSize}`);
        }
        this.quantTensors.push({ name: codesName(w.name), data: m.codes, shape: shapes.codes }, { name: scalesName(w.name), data: m.scales, shape: shapes.scales }, { name: zeroPointsName(w.name), data: m.zeroPoints, shape: shapes.zeroPoints });
      }
      for (const t of this.quantTensors) this.quantFeeds[t.name] = new ort.Tensor(t.data instanceof Uint8Array ? 'uint8' : 'float32', t.data, t.shape);
    }
    for (const wi of floatWeightInputs(config, quantised?.spec)) {
      const data = arrays.get(wi.name);
      if (!data) throw new Error(`internal: canonical weights lack ${wi.name}`);
      const typed = argsFloat(this.floatType, data);
      this.weightData.set(wi.name, typed);
      this.weightFeeds[wi.name] = new ort.Tensor(this.floatType, typed, wi.shape);
    }
    this.setPatch(new Map());
  }

  /** The format of the weights the sessions run on. */
  get weightFormat(): WeightFormat {
    return this.quantised?.format ?? 'fp32';
  }

  /** Bytes of the weights this runtime holds (a tied LM head counted once). */
  get weightBytes(): number {
    let n = 0;
    const seen = new Set<ArrayBufferLike>();
    for (const data of this.weightData.values()) {
      if (!seen.has(data.buffer) || data.byteLength !== data.buffer.byteLength) n += data.byteLength;
      seen.add(data.buffer);
    }
    for (const t of this.quantTensors) n += t.data.byteLength;
    return n;
  }

  /** Replaces the active neuron patch (layer → rows + deltas). Layers not named get k = 0. */
  setPatch(patch: ReadonlyMap<number, LayerPatch>): void {
    const d = this.config.hidden;
    const feeds: Record<string, ort.Tensor> = {};
    for (let l = 0; l < this.config.layers; l++) {
      const p = patch.get(l);
      const k = p ? p.rows.length : 0;
      if (p && p.deltas.length !== k * d) throw new Error(`patch for layer ${l}: ${p.deltas.length} delta values, expected ${k}×${d}`);
      for (const r of p?.rows ?? []) {
        if (!Number.isInteger(r) || r < 0 || r >= this.config.intermediate) throw new Error(`patch for layer ${l}: row ${r} is outside 0..${this.config.intermediate - 1}`);
      }
      feeds[patchRowsName(l)] = new ort.Tensor('int64', BigInt64Array.from((p?.rows ?? []).map(BigInt)), [k]);
      feeds[patchDeltasName(l)] = new ort.Tensor(this.floatType, p ? argsFloat(this.floatType, p.deltas) : new (this.floatType === 'float64' ? Float64Array : Float32Array)(0), [k, d]);
    }
    this.patchFeeds = feeds;
    this.patchGeneration++;
  }

  /** Bumped by every setPatch(): what was computed under an older version (a cached prompt, runtime/prompt-cache.ts) is stale. */
  get patchVersion(): number {
    return this.patchGeneration;
  }

  /**
   * How a session of `kind` takes the quantised tensors (null: fp32 weights). Decode: initializers
   * at the decode accuracy level (MatMulNBits prepacks constant codes for its int8 kernel). Probe
   * and score on the CPU: inputs (the one JS copy, no second copy per session) at accuracy 0, so
   * their forward pass is the exact float32 product with Ŵ that their backward pass differentiates.
   */
  private quantFor(kind: SessionKind, weights: WeightMode): QuantGraphOptions | null {
    const q = this.quantised;
    if (!q) return null;
    if (kind === 'decode') return { ...q.spec, accuracyLevel: this.options.accuracyLevel ?? DECODE_ACCURACY_LEVEL, mode: 'initializers', product: 'nbits' };
    return { ...q.spec, accuracyLevel: 0, mode: weights, product: 'dequantised', ...(this.options.dequantChunkBytes !== undefined ? { chunkBytes: this.options.dequantChunkBytes } : {}) };
  }

  private build(kind: SessionKind, weights: WeightMode, maxTensorBytes: number | null, provider: string): Uint8Array {
    const quant = this.quantFor(kind, weights);
    // The fused decode layers (decode-layer.ts) on the CPU only: CUDA's GroupQueryAttention is fp16/bf16, and WebGPU's speed is unmeasured.
    if (kind === 'decode') return buildDecodeGraph(this.config, this.floatType, weights, { maxTensorBytes, quant, fused: this.fusedDecodeOn(provider) });
    if (kind === 'score') return buildProbeGraph(this.config, { backward: false, floatType: this.floatType, weights, maxTensorBytes, quant });
    const wrt = kind.startsWith('attribute@') ? 'z' : 'h';
    const fromLayer = kind === 'probe' ? 0 : Number(kind.slice(kind.indexOf('@') + 1));
    return buildProbeGraph(this.config, { backward: true, fromLayer, wrt, floatType: this.floatType, weights, maxTensorBytes, quant });
  }

  /** Whether the decode graph on `provider` is built from the fused layers (buildDecodeGraph decides, from this request). */
  private fusedDecodeOn(provider: string): boolean {
    return usesFusedDecode(this.config, this.floatType, { fused: provider === 'cpu' });
  }

  /** How a session of `kind` on `provider` takes the float weights (sessionWeightMode). */
  private weightModeFor(provider: string, kind: SessionKind): WeightMode {
    return sessionWeightMode(provider, kind === 'decode', this.floatWeightBytes, this.options.weights);
  }

  /** Bytes of the float weights (all of an fp32 model; the vectors and tables a quantised one keeps in float). */
  private get floatWeightBytes(): number {
    let n = 0;
    for (const data of this.weightData.values()) n += data.byteLength;
    return n;
  }

  private tensorLimitFor(provider: string, mode: WeightMode): number | null {
    return this.options.maxTensorBytes !== undefined ? this.options.maxTensorBytes : tensorByteLimit(provider, mode);
  }

  /** The largest weight tensor the graphs on the chosen provider hold (null: none split); settled by the first session. */
  get maxTensorBytes(): number | null {
    const provider = this.chosenProvider ?? this.options.provider ?? 'cpu';
    return this.tensorLimitFor(provider, this.weightModeFor(provider, 'probe'));
  }

  /** Each weight tensor of a graph under `limit`, as a view of the weight's rows (no copy). */
  private weightTensors(limit: number | null): { name: string; data: FloatArray; shape: number[] }[] {
    if (this.quantised) return [...this.weightData.entries()].map(([name, data]) => ({ name, data, shape: this.weightFeeds[name].dims as number[] }));
    return weightBlocks(this.config, limit, this.floatType).map((b) => {
      const whole = this.weightData.get(b.weight)!;
      if (b.name === b.weight) return { name: b.name, data: whole, shape: b.shape };
      const cols = b.shape.length === 2 ? b.shape[1] : 1;
      return { name: b.name, data: whole.subarray(b.rowStart * cols, (b.rowStart + b.rows) * cols), shape: b.shape };
    });
  }

  private async load(kind: SessionKind): Promise<LoadedSession> {
    // onnxruntime's fused kernels (QuickGelu, SimplifiedLayerNorm, …) exist for float32 only.
    const extra: ort.InferenceSession.SessionOptions = {
      ...(this.floatType === 'float64' ? { graphOptimizationLevel: 'basic' as const } : {}),
      ...(this.quantised && kind !== 'decode' ? quantisedSessionMemory(this.options.probeMemory ?? QUANTISED_PROBE_MEMORY) : {}),
    };
    // Every session after the first starts from the provider the first one settled on.
    const provider = (this.chosenProvider ?? this.options.provider ?? 'cpu') as ProviderName;
    const modes = new Map<string, { mode: WeightMode; limit: number | null }>();
    const choice = await createSession(
      (p) => {
        const mode = this.weightModeFor(p, kind);
        const limit = this.tensorLimitFor(p, mode);
        modes.set(p, { mode, limit });
        const quant = this.quantFor(kind, mode);
        const quantData = quant?.mode === 'initializers' ? this.quantTensors.map(({ name, data }) => ({ path: weightFile(name), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) })) : [];
        if (mode === 'inputs') return { model: this.build(kind, mode, limit, p), ...(quantData.length > 0 ? { options: { externalData: quantData } } : {}) };
        const externalData = [...this.weightTensors(limit).map(({ name, data }) => ({ path: weightFile(name), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) })), ...quantData];
        const device = kind === 'decode' && keepsDataOnDevice(p) ? { preferredOutputLocation: decodeOutputLocations(this.config.layers) } : {};
        return { model: this.build(kind, mode, limit, p), options: { externalData, ...device } };
      },
      { ...this.options, provider },
      extra,
    );
    if (this.chosenProvider === null) {
      this.chosenProvider = choice.provider;
      this.fallbacks = choice.fallbacks;
    }
    this.provider = choice.provider;
    const { mode, limit } = modes.get(choice.provider) ?? { mode: 'inputs' as const, limit: null };
    const quantFeeds = this.quantFor(kind, mode)?.mode === 'inputs' ? this.quantFeeds : {};
    return {
      session: choice.session, provider: choice.provider, weights: mode, weightFeeds: { ...(mode === 'inputs' ? this.weightFeedsFor(limit) : {}), ...quantFeeds },
      cacheBuffers: kind === 'decode' && this.fusedDecodeOn(choice.provider),
    };
  }

  /** Weight feeds for a graph under `limit`: the whole weights' tensors, or views of their row blocks. */
  private weightFeedsFor(limit: number | null): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of this.weightTensors(limit)) feeds[t.name] = this.weightFeeds[t.name] ?? new ort.Tensor(this.floatType, t.data, t.shape);
    return feeds;
  }

  private async session(kind: SessionKind): Promise<LoadedSession> {
    let s = this.sessions.get(kind);
    if (!s) {
      s = this.load(kind);
      this.sessions.set(kind, s);
      s.catch(() => this.sessions.delete(kind));
    }
    const loaded = await s;
    if (keepsDataOnDevice(loaded.provider)) await this.syncDevicePatch(loaded.provider);
    return loaded;
  }

  private io(provider: string): DeviceIo {
    this.deviceIo ??= new DeviceIo(provider);
    return this.deviceIo;
  }

  /** Uploads the patch to the device unless the current one is there already. */
  private async syncDevicePatch(provider: string): Promise<void> {
    const current = this.devicePatch;
    if (current?.version === this.patchGeneration) {
      await current.feeds;
      return;
    }
    const entry: { version: number; feeds: Promise<Record<string, ort.Tensor>>; resolved?: Record<string, ort.Tensor> } = { version: this.patchGeneration, feeds: this.io(provider).upload(this.patchFeeds) };
    this.devicePatch = entry;
    try {
      entry.resolved = await entry.feeds;
    } catch (e) {
      if (this.devicePatch === entry) this.devicePatch = null;
      throw e;
    }
    // Runs that took the old tensors were queued before the upload, so they have run by now.
    if (current) disposeDeviceTensors(Object.values(await current.feeds.catch(() => ({}))));
  }

  /** Bytes of the patch that a run feeds: the device copy when it is current, else the CPU tensors. */
  private currentPatchFeeds(loaded: LoadedSession): Record<string, ort.Tensor> {
    const d = this.devicePatch;
    return keepsDataOnDevice(loaded.provider) && d?.version === this.patchGeneration && d.resolved ? d.resolved : this.patchFeeds;
  }

  /** How many times the patch was uploaded to the device (once per change on GPU providers). */
  get patchUploads(): number {
    return this.deviceIo?.uploads ?? 0;
  }

  /** Weight feeds (when the session takes weights as inputs) and the active patch. */
  private baseFeeds(loaded: LoadedSession): Record<string, ort.Tensor> {
    const patch = this.currentPatchFeeds(loaded);
    return { ...loaded.weightFeeds, ...patch };
  }

  /** Builds and loads the sessions now instead of on first use. */
  async warm(kinds: readonly ('decode' | 'probe' | 'score')[] = ['decode']): Promise<void> {
    await Promise.all(kinds.map((k) => this.session(k)));
  }

  emptyCache(): KvCache {
    const { kvHeads, headDim, layers } = this.config;
    const empty = () => new ort.Tensor(this.floatType, new (this.floatType === 'float64' ? Float64Array : Float32Array)(0), [kvHeads, 0, headDim]);
    return { length: 0, keys: Array.from({ length: layers }, empty), values: Array.from({ length: layers }, empty) };
  }

  /** Frees a cache's device memory; nothing for a CPU cache or one already spent or freed. */
  releaseCache(cache: KvCache): void {
    if (!cache.onDevice || this.releasedCaches.has(cache)) return;
    this.releasedCaches.add(cache);
    deviceTensorRegistry.unregister(cache);
    disposeDeviceTensors([...cache.keys, ...cache.values]);
  }

  /** A cache's keys and values [KV, length, hd] per layer, on the CPU wherever they live (a buffer cache's: copies). */
  async readCache(cache: KvCache): Promise<{ keys: FloatArray[]; values: FloatArray[] }> {
    if (this.releasedCaches.has(cache)) throw new Error('readCache: this cache was spent by decode() or released');
    if (!cache.onDevice) return { keys: cache.keys.map((t) => compactCache(t, cache.length)), values: cache.values.map((t) => compactCache(t, cache.length)) };
    const feeds: Record<string, ort.Tensor> = {};
    cache.keys.forEach((t, l) => (feeds[`k${l}`] = t));
    cache.values.forEach((t, l) => (feeds[`v${l}`] = t));
    const out = cache.onDevice ? await this.io(this.provider).download(feeds) : feeds;
    return { keys: cache.keys.map((_, l) => out[`k${l}`].data as FloatArray), values: cache.values.map((_, l) => out[`v${l}`].data as FloatArray) };
  }

  /**
   * Runs `ids` after the cached positions; returns the last position's logits [V] and the longer
   * cache. With `want` 'greedy' the caller needs only the greedy token (greedyToken): the fused CPU
   * graph then answers with the token it chose and the logits stay in onnxruntime (no copy into
   * JavaScript, no pass over them here); other graphs answer with the logits.
   */
  decode(ids: readonly number[], cache?: KvCache): Promise<LogitsStep>;
  decode(ids: readonly number[], cache: KvCache | undefined, want: 'logits' | 'greedy'): Promise<DecodeStep>;
  async decode(ids: readonly number[], cache: KvCache = this.emptyCache(), want: 'logits' | 'greedy' = 'logits'): Promise<DecodeStep> {
    if (ids.length === 0) throw new Error('decode needs at least one token');
    const loaded = await this.session('decode');
    const feeds = this.baseFeeds(loaded);
    feeds.ids = new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [ids.length]);
    feeds.positions = new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(cache.length + i))), [ids.length]);
    if (loaded.cacheBuffers) {
      // The fused graph reads the past from the buffers and hands back the new positions, written into them here.
      const buffers = this.cacheBuffers.forStep(cache, ids.length);
      const greedy = want === 'greedy';
      const out = await loaded.session.run(feeds, feedBuffers(feeds, buffers, greedy ? GREEDY_OUTPUTS : ['logits']));
      writeStep(buffers, out as Record<string, ort.Tensor>, cache.length);
      const longer: KvCache = { length: cache.length + ids.length, keys: buffers.keys, values: buffers.values };
      if (!greedy) return { logits: out.logits.data as Float32Array, cache: longer };
      const next = chosenToken(out as Record<string, ort.Tensor>);
      if (next !== null) return { next, cache: longer };
      // A NaN or infinite logit: the step again, for the logits argmax judges (its rules say
      // whether a token can be chosen at all). `cache` is intact: its positions are below the step's.
      return this.decode(ids, cache);
    }
    // The plain graph takes decode's compact layout (a buffer cache is copied into it).
    const past = cache.onDevice ? cache : compactTensors(cache);
    for (let l = 0; l < this.config.layers; l++) {
      feeds[pastName(l, 'key')] = past.keys[l];
      feeds[pastName(l, 'value')] = past.values[l];
    }
    const out = await loaded.session.run(feeds);
    const keys: ort.Tensor[] = [];
    const values: ort.Tensor[] = [];
    for (let l = 0; l < this.config.layers; l++) {
      keys.push(out[presentName(l, 'key')] as ort.Tensor);
      values.push(out[presentName(l, 'value')] as ort.Tensor);
    }
    const onDevice = keepsDataOnDevice(loaded.provider);
    const next: KvCache = { length: cache.length + ids.length, keys, values, onDevice };
    if (onDevice) {
      this.releaseCache(cache);
      deviceTensorRegistry.register(next, [...keys, ...values], next);
    }
    return { logits: out.logits.data as Float32Array | Float64Array, cache: next };
  }

  private sequenceFeeds(loaded: LoadedSession, ids: readonly number[], targets: readonly number[], mask: readonly number[]): Record<string, ort.Tensor> {
    const T = ids.length;
    if (T === 0) throw new Error('empty sequence');
    if (targets.length !== T || mask.length !== T) throw new Error(`ids, targets and mask differ in length (${T}, ${targets.length}, ${mask.length})`);
    if (T > this.config.maxPositions) throw new Error(`sequence of ${T} tokens is longer than the model's context (${this.config.maxPositions})`);
    if (!mask.some((m) => m !== 0)) throw new Error('the loss mask selects no position');
    const F = this.floatType === 'float64' ? Float64Array : Float32Array;
    return {
      ...this.baseFeeds(loaded),
      ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [T]),
      positions: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [T]),
      targets: new ort.Tensor('int64', BigInt64Array.from(targets.map(BigInt)), [T]),
      mask: new ort.Tensor(this.floatType, F.from(mask), [T]),
    };
  }

  /**
   * Forward + exact backward of the masked cross-entropy: loss, logits, z_l and dL/dh_l. With
   * `fromLayer` > 0 the backward pass stops at that layer and z, dL/dh of the layers below it are
   * empty arrays (one session per lowest layer, built on first use).
   */
  async probe(ids: readonly number[], targets: readonly number[], mask: readonly number[], fromLayer = 0): Promise<ProbeResult> {
    const { grads, ...r } = await this.backward('probe', 'dh', ids, targets, mask, fromLayer);
    return { ...r, dh: grads };
  }

  /**
   * The probe with the gradient of the MLP activations instead: loss, logits, z_l and dL/dz_l
   * ([T, m], through the down projection and the patch as the runtime has them) for layers ≥
   * `fromLayer` (below: empty arrays). Attribution reads this (repair/locate.ts
   * attributionFromGradient): dL/dz_{t,i} is dL/dh_t · W_i, computed by the backward pass.
   */
  async attribution(ids: readonly number[], targets: readonly number[], mask: readonly number[], fromLayer = 0): Promise<AttributionProbe> {
    const { grads, ...r } = await this.backward('attribution', 'dz', ids, targets, mask, fromLayer);
    return { ...r, dz: grads };
  }

  /** Runs a backward graph (probe or attribution) from `fromLayer`; `grad` names its per-layer gradient outputs. */
  private async backward(what: 'probe' | 'attribution', grad: 'dh' | 'dz', ids: readonly number[], targets: readonly number[], mask: readonly number[], fromLayer: number) {
    if (!Number.isInteger(fromLayer) || fromLayer < 0 || fromLayer >= this.config.layers) throw new Error(`${what}: fromLayer ${fromLayer} is outside 0..${this.config.layers - 1}`);
    const kind: SessionKind = what === 'attribution' ? `attribute@${fromLayer}` : fromLayer === 0 ? 'probe' : `probe@${fromLayer}`;
    const loaded = await this.session(kind);
    const out = await loaded.session.run(this.sequenceFeeds(loaded, ids, targets, mask));
    const layer = (name: string, l: number) => (l < fromLayer ? new Float32Array(0) : (out[`${name}.${l}`].data as Float32Array));
    const z: Float32Array[] = [];
    const grads: Float32Array[] = [];
    for (let l = 0; l < this.config.layers; l++) {
      z.push(layer('z', l));
      grads.push(layer(grad, l));
    }
    return { loss: Number(out.loss.data[0]), logits: out.logits.data as Float32Array, positions: mask.flatMap((m, i) => (m !== 0 ? [i] : [])), z, grads };
  }

  /** Forward only: loss and logits at the masked positions. */
  async score(ids: readonly number[], targets: readonly number[], mask: readonly number[]): Promise<ScoreResult> {
    const loaded = await this.session('score');
    const out = await loaded.session.run(this.sequenceFeeds(loaded, ids, targets, mask));
    return { loss: Number(out.loss.data[0]), logits: out.logits.data as Float32Array, positions: mask.flatMap((m, i) => (m !== 0 ? [i] : [])) };
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).session.release();
    const patch = this.devicePatch;
    this.devicePatch = null;
    if (patch) disposeDeviceTensors(Object.values(await patch.feeds.catch(() => ({}))));
    await this.deviceIo?.release();
    this.deviceIo = null;
  }
}
