// The machine's limits as ORT itself reaches them, measured in the same run as the model:
// matrix-vector bandwidth (one row through a chain of weight matrices: every weight byte is read
// once per run, so bytes / time is the rate weights stream from memory) and matrix-multiply
// throughput (many rows through the same chain). Weights are graph inputs fed from JS arrays and
// multiplied with Gemm(transB=1), exactly as the runtime's graphs do. Chains are opened as
// sessions that the benchmark runs interleaved with the model, so both see the same machine.
import type * as ort from 'onnxruntime-node';
import { Tensor } from 'onnxruntime-node';
import { weightInputs } from '../../src/graph/architectures/decoder';
import { Graph, type Value } from '../../src/graph/builder';
import type { ModelConfig } from '../../src/model/config';
import { createSession, type RuntimeOptions } from '../../src/runtime/providers';
import { summarise, type Timing } from './stats';
import { uniformFiller } from '../../src/util/random';

export interface Chain {
  /** What the chain is, for the report. */
  label: string;
  rows: number;
  /** Weight bytes read per run. */
  bytes: number;
  /** Matrix-multiply FLOPs per run. */
  flops: number;
  provider: string;
  /** One timed run, milliseconds. */
  run(): Promise<number>;
  release(): Promise<void>;
}

export interface ChainResult {
  label: string;
  rows: number;
  bytes: number;
  flops: number;
  provider: string;
  timing: Timing;
  /** bytes / median time, GB/s (meaningful for rows = 1). */
  gbPerS: number;
  /** flops / median time, GFLOP/s (meaningful for many rows). */
  gflopPerS: number;
}

export function chainResult(c: Chain, runs: readonly number[]): ChainResult {
  const timing = summarise(runs);
  return { label: c.label, rows: c.rows, bytes: c.bytes, flops: c.flops, provider: c.provider, timing, gbPerS: c.bytes / timing.medianMs / 1e6, gflopPerS: c.flops / timing.medianMs / 1e6 };
}

/** A chain of `count` [size, size] weight inputs: x [rows, size] → Gemm(x, W_i, transB) → … */
export function squareChainGraph(size: number, count: number, rows: number): Uint8Array {
  const g = new Graph('float32');
  let x = g.input('x', 'float32', [rows, size]);
  for (let i = 0; i < count; i++) x = g.gemm(x, g.input(`w${i}`, 'float32', [size, size]), undefined, true);
  g.output(x, 'y');
  return g.toModel('square-chain');
}

/**
 * Every linear map of the model in decode order, LM head last, applied to `rows` rows; the
 * q → o and gate·up → down paths chain, k and v branch off. Input names are the runtime's weight
 * input names, so the runtime's own weight arrays feed it.
 */
export function modelChainGraph(cfg: ModelConfig, rows: number): { model: Uint8Array; weightNames: string[] } {
  const g = new Graph('float32');
  const { hidden: d, intermediate: m, heads: H, kvHeads: KV, headDim: hd } = cfg;
  const names: string[] = [];
  const w = (name: string, shape: number[]): Value => {
    names.push(name);
    return g.input(name, 'float32', shape);
  };
  const linear = (x: Value, prefix: string, out: number, inp: number, bias: boolean) =>
    g.gemm(x, w(`${prefix}.weight`, [out, inp]), bias ? w(`${prefix}.bias`, [out]) : undefined, true);
  let x = g.input('x', 'float32', [rows, d]);
  for (let l = 0; l < cfg.layers; l++) {
    const q = linear(x, `l${l}.q`, H * hd, d, cfg.qkvBias);
    const kv = g.add(linear(x, `l${l}.k`, KV * hd, d, cfg.qkvBias), linear(x, `l${l}.v`, KV * hd, d, cfg.qkvBias));
    g.output(kv, `kv.${l}`);
    const a = linear(q, `l${l}.o`, d, H * hd, cfg.oBias);
    let z = linear(a, `l${l}.up`, m, d, cfg.mlpBias);
    if (cfg.family === 'llama') z = g.mul(linear(a, `l${l}.gate`, m, d, cfg.mlpBias), z);
    x = linear(z, `l${l}.down`, d, m, cfg.mlpBias);
  }
  g.output(g.gemm(x, w(cfg.tiedEmbeddings ? 'embed' : 'lm_head', [cfg.vocab, d]), undefined, true), 'logits');
  return { model: g.toModel('model-chain'), weightNames: names };
}

async function openChain(label: string, rows: number, bytes: number, flops: number, model: Uint8Array, feeds: Record<string, ort.Tensor>, options: RuntimeOptions): Promise<Chain> {
  const choice = await createSession(model, options);
  return {
    label,
    rows,
    bytes,
    flops,
    provider: choice.provider,
    async run() {
      const t = performance.now();
      await choice.session.run(feeds);
      return performance.now() - t;
    },
    release: () => choice.session.release(),
  };
}

/**
 * The square chain. Its matrices are views into `source` (the model's embedding, say) where it
 * holds at least one size×size block, so measuring the limit costs no memory beyond the model's;
 * a view used twice in the chain is still read from memory each time when the distinct views
 * together are far larger than the caches. Without enough source, fresh weights are made with
 * standard deviation 1/√size so activations keep their scale along the chain.
 */
export async function openSquareChain(size: number, count: number, rows: number, source: Float32Array | null, options: RuntimeOptions): Promise<Chain> {
  const block = size * size;
  const distinct = source ? Math.min(count, Math.floor(source.length / block)) : 0;
  const fill = uniformFiller(7);
  const mats: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    if (distinct > 0 && source) mats.push(source.subarray((i % distinct) * block, (i % distinct + 1) * block));
    else mats.push(fill(block, 0, Math.sqrt(3 / size)));
  }
  const feeds: Record<string, ort.Tensor> = { x: new Tensor('float32', fill(rows * size, 0, 1), [rows, size]) };
  mats.forEach((m, i) => (feeds[`w${i}`] = new Tensor('float32', m, [size, size])));
  const label = `chain of ${count} Gemm ${size}×${size}${distinct > 0 ? ` (${distinct} distinct blocks of the embedding)` : ''}`;
  return openChain(label, rows, count * block * 4, 2 * rows * count * block, squareChainGraph(size, count, rows), feeds, options);
}

/** The model-shaped chain on the runtime's own weight arrays (`weights`: input name → array). */
export async function openModelChain(cfg: ModelConfig, weights: ReadonlyMap<string, Float32Array>, rows: number, options: RuntimeOptions): Promise<Chain> {
  const shapes = new Map(weightInputs(cfg).map((wi) => [wi.name, wi.shape]));
  const { model, weightNames } = modelChainGraph(cfg, rows);
  const feeds: Record<string, ort.Tensor> = { x: new Tensor('float32', uniformFiller(11)(rows * cfg.hidden, 0, 1), [rows, cfg.hidden]) };
  let bytes = 0;
  let macs = 0;
  for (const name of weightNames) {
    const a = weights.get(name);
    const shape = shapes.get(name);
    if (!a || !shape) throw new Error(`internal: the model's weights lack ${name}`);
    feeds[name] = new Tensor('float32', a, shape);
    bytes += a.byteLength;
    if (shape.length === 2) macs += a.length;
  }
  return openChain("the model's linear maps + LM head", rows, bytes, 2 * rows * macs, model, feeds, options);
}
