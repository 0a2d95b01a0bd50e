// One decode session (CPU unless asked) on a chosen decode graph (the plain layers of decoder.ts or the fused ones of
// decode-layer.ts), fed as ModelRuntime feeds its decode session on the CPU: float weights as
// initializers when they are small (sessionWeightMode), else as inputs; quantised codes as external initializers (MatMulNBits prepacks them), the neuron patch
// as inputs, the KV cache per layer as the graph takes it ([KV, P, hd], or the fused graph's
// buffers, the new positions written into them: runtime/kv-buffers.ts). For bench/decode-overhead.ts and the tests that
// compare the two graphs (test/unit/decode-layer.test.ts); ModelRuntime itself picks no variant.
import * as ort from 'onnxruntime-node';
import { buildDecodeGraph, floatWeightInputs, GREEDY_OUTPUTS, pastName, usesFusedDecode, patchDeltasName, patchRowsName, presentName, weightFile } from '../../src/graph/architectures/decoder';
import { codesName, quantisedWeightSpecs, scalesName, zeroPointsName } from '../../src/graph/quantised';
import type { ModelConfig } from '../../src/model/config';
import type { CanonicalWeights } from '../../src/model/weights';
import type { QuantisedModel } from '../../src/runtime/quantised-weights';
import { chosenToken, sessionWeightMode, weightArrays, type LayerPatch } from '../../src/runtime/runtime';
import { DECODE_ACCURACY_LEVEL } from '../../src/runtime/weight-formats';
import { CacheBuffers, compactTensors, feedBuffers, writeStep } from '../../src/runtime/kv-buffers';

export interface DecodeSessionOptions {
  fused: boolean;
  /** Execution provider (default cpu); outputs come back to the CPU. */
  provider?: 'cpu' | 'webgpu';
  threads?: number;
  /** MatMulNBits accuracy_level (default DECODE_ACCURACY_LEVEL, as ModelRuntime's decode). */
  accuracyLevel?: number;
  /** onnxruntime's profiler: a JSON trace per session, /tmp/decode-<this label>_<time>.json. */
  profile?: string;
  /** How the float weights (norms, biases, …) reach the graph: fed as inputs each step or as initializers (default: as ModelRuntime decides, sessionWeightMode). */
  floatWeights?: 'inputs' | 'initializers';
  /** onnxruntime session config entries (`session.intra_op.spin_backoff_max` → { session: { intra_op: { spin_backoff_max } } }). */
  config?: Record<string, unknown>;
}

export interface Cache {
  length: number;
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

export interface DecodeSession {
  session: ort.InferenceSession;
  /** Nodes of the graph as built (before onnxruntime's own fusions). */
  nodes: number;
  setPatch(patch: ReadonlyMap<number, LayerPatch>): void;
  /** As ModelRuntime.decode: with 'greedy' the fused graph answers with its chosen token, the logits staying in onnxruntime. */
  decode(ids: readonly number[], cache?: Cache): Promise<{ logits: Float32Array; cache: Cache }>;
  decode(ids: readonly number[], cache: Cache | undefined, want: 'logits' | 'greedy'): Promise<SessionStep>;
}

export type SessionStep = { cache: Cache } & ({ logits: Float32Array } | { next: number });

function emptyCache(cfg: ModelConfig): Cache {
  const empty = () => new ort.Tensor('float32', new Float32Array(0), [cfg.kvHeads, 0, cfg.headDim]);
  return { length: 0, keys: Array.from({ length: cfg.layers }, empty), values: Array.from({ length: cfg.layers }, empty) };
}

function patchFeeds(cfg: ModelConfig, patch: ReadonlyMap<number, LayerPatch>): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (let l = 0; l < cfg.layers; l++) {
    const p = patch.get(l);
    const k = p ? p.rows.length : 0;
    feeds[patchRowsName(l)] = new ort.Tensor('int64', BigInt64Array.from((p?.rows ?? []).map(BigInt)), [k]);
    feeds[patchDeltasName(l)] = new ort.Tensor('float32', p ? p.deltas : new Float32Array(0), [k, cfg.hidden]);
  }
  return feeds;
}

/** Counts NodeProto entries (field 1 of GraphProto, field 7 of ModelProto) without a protobuf library. */
function countNodes(model: Uint8Array): number {
  const varint = (buf: Uint8Array, at: number): [number, number] => {
    let v = 0;
    let shift = 1;
    let i = at;
    for (;;) {
      const b = buf[i++];
      v += (b & 0x7f) * shift;
      if (b < 0x80) return [v, i];
      shift *= 128;
    }
  };
  const fields = (buf: Uint8Array, start: number, end: number, want: number): { start: number; end: number }[] => {
    const out: { start: number; end: number }[] = [];
    let i = start;
    while (i < end) {
      const [key, a] = varint(buf, i);
      const wire = key & 7;
      i = a;
      if (wire === 0) i = varint(buf, i)[1];
      else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else if (wire === 2) {
        const [len, b] = varint(buf, i);
        if (key >>> 3 === want) out.push({ start: b, end: b + len });
        i = b + len;
      } else throw new Error(`unexpected wire type ${wire}`);
    }
    return out;
  };
  const graph = fields(model, 0, model.length, 7)[0];
  return fields(model, graph.start, graph.end, 1).length;
}

/** A decode session of `cfg` on fp32 or quantised weights, with the plain or fused layers. */
export async function openDecodeSession(cfg: ModelConfig, weights: CanonicalWeights | QuantisedModel, options: DecodeSessionOptions): Promise<DecodeSession> {
  const quantised = 'matrices' in weights ? weights : null;
  const arrays = quantised ? quantised.floats : weightArrays(cfg, weights as CanonicalWeights);
  const weightFeeds: Record<string, ort.Tensor> = {};
  const externalData: { path: string; data: Uint8Array }[] = [];
  const floats = floatWeightInputs(cfg, quantised?.spec);
  const floatBytes = floats.reduce((n, wi) => n + arrays.get(wi.name)!.byteLength, 0);
  const floatMode = sessionWeightMode(options.provider ?? 'cpu', true, floatBytes, options.floatWeights);
  for (const wi of floats) {
    const data = arrays.get(wi.name)!;
    if (floatMode === 'inputs') weightFeeds[wi.name] = new ort.Tensor('float32', data, wi.shape);
    else externalData.push({ path: weightFile(wi.name), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  if (quantised) {
    for (const w of quantisedWeightSpecs(cfg, quantised.spec)) {
      const m = quantised.matrices.get(w.name)!;
      for (const [name, data] of [[codesName(w.name), m.codes], [scalesName(w.name), m.scales], [zeroPointsName(w.name), m.zeroPoints]] as const) {
        externalData.push({ path: weightFile(name), data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
      }
    }
  }
  const quant = quantised ? { ...quantised.spec, accuracyLevel: options.accuracyLevel ?? DECODE_ACCURACY_LEVEL, mode: 'initializers' as const, product: 'nbits' as const } : null;
  const model = buildDecodeGraph(cfg, 'float32', floatMode, { quant, fused: options.fused });
  const buffers = usesFusedDecode(cfg, 'float32', { fused: options.fused }) ? new CacheBuffers() : null;
  const session = await ort.InferenceSession.create(model, {
    executionProviders: [options.provider ?? 'cpu'],
    graphOptimizationLevel: 'all',
    ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    ...(options.profile ? { enableProfiling: true, profileFilePrefix: `/tmp/decode-${options.profile}` } : {}),
    ...(externalData.length > 0 ? { externalData } : {}),
    ...(options.config ? { extra: options.config } : {}),
  });
  let patch = patchFeeds(cfg, new Map());
  return {
    session,
    nodes: countNodes(model),
    setPatch: (p) => {
      patch = patchFeeds(cfg, p);
    },
    decode: (async (ids: readonly number[], cache: Cache = emptyCache(cfg), want: 'logits' | 'greedy' = 'logits'): Promise<SessionStep> => {
      const feeds: Record<string, ort.Tensor> = { ...weightFeeds, ...patch };
      feeds.ids = new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [ids.length]);
      feeds.positions = new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(cache.length + i))), [ids.length]);
      if (buffers) {
        // As ModelRuntime.decode: the fused graph reads the past from the buffers and hands back the new positions.
        const b = buffers.forStep(cache, ids.length);
        const greedy = want === 'greedy';
        const out = await session.run(feeds, feedBuffers(feeds, b, greedy ? GREEDY_OUTPUTS : ['logits']));
        writeStep(b, out as Record<string, ort.Tensor>, cache.length);
        const longer = { length: cache.length + ids.length, keys: b.keys, values: b.values };
        const next = greedy ? chosenToken(out as Record<string, ort.Tensor>) : null;
        if (greedy && next === null) throw new Error('non-finite logits (ModelRuntime.decode would decode the step again for them)');
        return next !== null ? { next, cache: longer } : { logits: out.logits.data as Float32Array, cache: longer };
      }
      const past = compactTensors(cache);
      for (let l = 0; l < cfg.layers; l++) {
        feeds[pastName(l, 'key')] = past.keys[l];
        feeds[pastName(l, 'value')] = past.values[l];
      }
      const out = await session.run(feeds);
      const keys = Array.from({ length: cfg.layers }, (_, l) => out[presentName(l, 'key')] as ort.Tensor);
      const values = Array.from({ length: cfg.layers }, (_, l) => out[presentName(l, 'value')] as ort.Tensor);
      return { logits: out.logits.data as Float32Array, cache: { length: cache.length + ids.length, keys, values } };
    }) as DecodeSession['decode'],
  };
}
