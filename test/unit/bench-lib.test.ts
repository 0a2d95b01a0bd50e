// Tests of the benchmark helpers (bench/lib/): that the random checkpoint has the runtime's
// shapes and the intended scale, that weight bytes and FLOP counts agree with the graphs'
// weight inputs, that the limit graphs compute what they claim, and that bad options are refused.
// No timing is asserted here: timings belong in BENCHMARKS.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { parseConfig, type ModelConfig } from '../../src/model/config';
import { weightInputs } from '../../src/graph/architectures/decoder';
import { weightArrays } from '../../src/runtime/runtime';
import { BenchArgsError, parseRuntimeArgs } from '../../bench/lib/args';
import { backwardFlops, forwardFlops, linearParamsPerLayer } from '../../bench/lib/flops';
import { modelChainGraph, squareChainGraph } from '../../bench/lib/limits';
import { othersCpuShare } from '../../bench/lib/machine';
import { median, summarise } from '../../bench/lib/stats';
import { markdownTable } from '../../bench/lib/table';
import { weightBytes } from '../../bench/lib/weights';
import { randomCanonicalWeights } from '../../src/model/synthetic';
import { uniformFiller } from '../../src/util/random';

function qwenLike(tied: boolean): ModelConfig {
  return parseConfig({
    architectures: ['Qwen2ForCausalLM'],
    hidden_size: 32,
    intermediate_size: 48,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 3,
    vocab_size: 100,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: tied,
  });
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

test('random weights have the runtime weight inputs\' shapes; tied LM head counts once', () => {
  for (const tied of [true, false]) {
    const cfg = qwenLike(tied);
    const w = randomCanonicalWeights(cfg, 5);
    const arrays = weightArrays(cfg, w);
    let expected = 0;
    for (const wi of weightInputs(cfg)) {
      const a = arrays.get(wi.name);
      assert.ok(a, `missing ${wi.name}`);
      assert.equal(a.length, elements(wi.shape), wi.name);
      expected += 4 * a.length;
    }
    assert.equal(weightBytes(w), expected);
    assert.equal(w.lmHead === w.embed, tied);
  }
});

test('random weights: standard deviation as asked, norms near 1, deterministic per seed', () => {
  const cfg = qwenLike(true);
  const w = randomCanonicalWeights(cfg, 9, 0.02);
  const a = w.embed;
  let sum = 0;
  let sq = 0;
  for (const x of a) {
    sum += x;
    sq += x * x;
  }
  const mean = sum / a.length;
  const std = Math.sqrt(sq / a.length - mean * mean);
  assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
  assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
  assert.ok(w.layers[0].attnNorm.weight.every((x) => x > 0.85 && x < 1.15));
  assert.deepEqual(randomCanonicalWeights(cfg, 9).layers[2].down.weight, w.layers[2].down.weight);
  assert.notDeepEqual(randomCanonicalWeights(cfg, 10).layers[2].down.weight, w.layers[2].down.weight);
  const u = uniformFiller(3)(10000, 1, 0.5);
  assert.ok(u.every((x) => x >= 0.5 && x <= 1.5));
});

test('FLOP counts agree with the weight inputs and with a hand count', () => {
  const cfg = qwenLike(true);
  // Every 2-D weight but the embedding is a linear map of a layer; the tied head is V×d.
  const layerMatrices = weightInputs(cfg).filter((wi) => wi.shape.length === 2 && wi.name !== 'embed').reduce((s, wi) => s + elements(wi.shape), 0);
  assert.equal(cfg.layers * linearParamsPerLayer(cfg), layerMatrices);
  const d = 32, m = 48, H = 4, KV = 2, hd = 8, V = 100, L = 3;
  const lin = d * H * hd + 2 * d * KV * hd + H * hd * d + 3 * d * m;
  const T = 5, S = 7, N = 2;
  assert.equal(forwardFlops(cfg, T, S, N), L * (2 * T * lin + 4 * H * hd * T * S) + 2 * N * V * d);
  assert.equal(backwardFlops(cfg, T, N), (L - 1) * (2 * T * lin + 8 * H * hd * T * T) + 2 * N * V * d);
});

test('square chain graph computes x·W0ᵀ·W1ᵀ, with weights that are views into a larger array', async () => {
  const n = 6;
  const rows = 2;
  const fill = uniformFiller(4);
  const x = fill(rows * n, 0, 1);
  // The benchmark feeds blocks of the embedding: views with a non-zero offset must be honoured.
  const source = fill(3 * n * n, 0, 1);
  const ws = [source.subarray(n * n, 2 * n * n), source.subarray(2 * n * n)];
  const session = await ort.InferenceSession.create(squareChainGraph(n, 2, rows));
  const out = await session.run({ x: new ort.Tensor('float32', x, [rows, n]), w0: new ort.Tensor('float32', ws[0], [n, n]), w1: new ort.Tensor('float32', ws[1], [n, n]) });
  let ref = Array.from(x);
  for (const w of ws) {
    const next = new Array<number>(rows * n).fill(0);
    for (let r = 0; r < rows; r++) for (let o = 0; o < n; o++) for (let i = 0; i < n; i++) next[r * n + o] += ref[r * n + i] * w[o * n + i];
    ref = next;
  }
  const y = out.y.data as Float32Array;
  ref.forEach((v, i) => assert.ok(Math.abs(v - y[i]) < 1e-4, `y[${i}] = ${y[i]}, expected ${v}`));
  await session.release();
});

test('model chain graph takes the runtime\'s weight inputs and yields [rows, V] logits', async () => {
  const cfg = qwenLike(true);
  const rows = 3;
  const { model, weightNames } = modelChainGraph(cfg, rows);
  const shapes = new Map(weightInputs(cfg).map((wi) => [wi.name, wi.shape]));
  const arrays = weightArrays(cfg, randomCanonicalWeights(cfg, 2));
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', uniformFiller(1)(rows * cfg.hidden, 0, 1), [rows, cfg.hidden]) };
  let macs = 0;
  for (const name of weightNames) {
    const shape = shapes.get(name);
    assert.ok(shape, `${name} is not a runtime weight input`);
    feeds[name] = new ort.Tensor('float32', arrays.get(name)!, shape);
    if (shape.length === 2) macs += elements(shape);
  }
  // Every linear map of every layer plus the head, each once.
  assert.equal(macs, cfg.layers * linearParamsPerLayer(cfg) + cfg.vocab * cfg.hidden);
  const session = await ort.InferenceSession.create(model);
  const out = await session.run(feeds);
  assert.deepEqual(out.logits.dims, [rows, cfg.vocab]);
  assert.ok((out.logits.data as Float32Array).every(Number.isFinite));
  await session.release();
});

test('benchmark options: defaults, choices and clear refusals', () => {
  const a = parseRuntimeArgs([]);
  assert.equal(a.ep, 'cpu');
  assert.equal(a.config, 'bench/configs/qwen2.5-coder-0.5b.json');
  assert.ok(a.threads >= 1);
  const b = parseRuntimeArgs(['--ep', 'webgpu', '--config', 'x.json', '--threads', '4', '--seq', '64', '--last-mask', '8']);
  assert.deepEqual([b.ep, b.config, b.threads, b.seq, b.lastMask], ['webgpu', 'x.json', 4, 64, 8]);
  assert.throws(() => parseRuntimeArgs(['--ep', 'tpu']), (e: unknown) => e instanceof BenchArgsError && /--ep must be one of cpu, webgpu, cuda/.test(e.message));
  assert.throws(() => parseRuntimeArgs(['--threads', '0']), /--threads wants a positive whole number/);
  assert.throws(() => parseRuntimeArgs(['--config']), /--config needs a value/);
  assert.throws(() => parseRuntimeArgs(['--fast']), /unknown option "--fast"/);
  assert.throws(() => parseRuntimeArgs(['--seq', '16', '--last-mask', '32']), /cannot exceed --seq/);
});

test('stats, tables and the interference estimate', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.throws(() => median([]), RangeError);
  assert.deepEqual(summarise([5, 1, 3]), { medianMs: 3, minMs: 1, maxMs: 5, runs: [5, 1, 3] });
  assert.equal(markdownTable(['a', 'b'], [['1', 'x|y']]), '| a | b |\n| --- | --- |\n| 1 | x\\|y |');
  assert.throws(() => markdownTable(['a', 'b'], [['1']]), /row 0 has 1 cells/);
  // 2 cores for 10 s = 2000 ticks; 1500 busy ticks of which this process used 5 s → others 10 s of 20.
  const share = othersCpuShare({ busyTicks: 0, ownMicros: 0, wallMs: 0 }, { busyTicks: 1500, ownMicros: 5e6, wallMs: 10000 }, 2);
  assert.equal(share, 0.5);
  assert.equal(othersCpuShare({ busyTicks: null, ownMicros: 0, wallMs: 0 }, { busyTicks: null, ownMicros: 1, wallMs: 1 }, 2), null);
});
