// The fused decode layers (src/graph/architectures/decode-layer.ts) against the plain decode graph
// of decoder.ts, which runtime-golden and quantised-runtime check against float64 references: on
// every fixture model, fp32, int8 and int4 (MatMulNBits at accuracy_level 0, so both graphs compute
// in float32 throughout), with and without a neuron patch, over a prompt, single-token steps and a
// multi-token step on a cache, the logits and the returned caches agree within float32 rounding,
// and the caches keep decode's [KV, length, hd] layout. Also: heads rotated by GroupQueryAttention
// itself (head size 16) and a sliding window shorter than the sequence; the int8 default
// (accuracy_level 4) stays close; configurations the fused kernels cannot serve fall back. Where a
// WebGPU adapter exists (lavapipe here; STAR_REQUIRE_WEBGPU=1 makes its absence a failure), the
// fused graph on WebGPU gives the plain CPU graph's logits and caches on the fp32 fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureWeights, relErr } from '../helpers/fixture-weights';
import { join } from 'node:path';
import { loadConfig } from '../../src/model';
import type { ModelConfig } from '../../src/model/config';
import type { CanonicalWeights } from '../../src/model/weights';
import { randomCanonicalWeights } from '../../src/model/synthetic';
import { quantiseModel, type QuantisedModel } from '../../src/runtime/quantised-weights';
import type { LayerPatch } from '../../src/runtime/runtime';
import { buildDecodeGraph } from '../../src/graph/architectures/decoder';
import { fusedDecodeReason } from '../../src/graph/architectures/decode-layer';
import { openDecodeSession, type Cache, type DecodeSession } from '../../bench/lib/decode-session';
import { CACHE_GROWTH, compactCache } from '../../src/runtime/kv-buffers';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CASES = ['llama', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-tied-hd'];
const PROMPT = [5, 17, 42, 3, 99, 7];

function fixture(name: string): { config: ModelConfig; weights: CanonicalWeights } {
  return fixtureWeights(join(FIXTURES, name));
}


function somePatch(cfg: ModelConfig): Map<number, LayerPatch> {
  const rows = [1, Math.floor(cfg.intermediate / 2)];
  const deltas = Float32Array.from({ length: rows.length * cfg.hidden }, (_, i) => 0.3 * Math.sin(i + 1));
  return new Map([[cfg.layers - 1, { rows, deltas }]]);
}

/** `a` the fused graph's caches (buffers [1, KV, C, hd], C ≥ length), `b` the plain graph's ([KV, length, hd]): the same positions. */
function assertCachesAgree(cfg: ModelConfig, a: Cache, b: Cache, tol: number, what: string): void {
  assert.equal(a.length, b.length);
  for (let l = 0; l < cfg.layers; l++) {
    for (const [x, y] of [[a.keys[l], b.keys[l]], [a.values[l], b.values[l]]]) {
      assert.deepEqual([x.dims[0], x.dims[1], x.dims[3]], [1, cfg.kvHeads, cfg.headDim], `${what}: fused cache layout`);
      assert.ok(x.dims[2] >= a.length, `${what}: the buffer holds the cache`);
      assert.deepEqual(y.dims, [cfg.kvHeads, b.length, cfg.headDim], `${what}: plain cache layout`);
      assert.ok(relErr(compactCache(x, a.length), y.data as Float32Array) < tol, `${what}: layer ${l} cache differs`);
    }
  }
}

/** Prompt, three single tokens, then two tokens at once, each step's logits and cache compared. */
async function compareRuns(cfg: ModelConfig, fused: DecodeSession, plain: DecodeSession, tol: number, what: string): Promise<void> {
  let a = await fused.decode(PROMPT);
  let b = await plain.decode(PROMPT);
  const steps: number[][] = [[11], [23], [8], [61, 2]];
  for (let s = 0; s <= steps.length; s++) {
    const err = relErr(a.logits, b.logits);
    assert.ok(err < tol, `${what}, step ${s}: logits differ by ${err.toExponential(2)} of their scale`);
    assertCachesAgree(cfg, a.cache, b.cache, tol, `${what}, step ${s}`);
    if (s === steps.length) break;
    a = await fused.decode(steps[s], a.cache);
    b = await plain.decode(steps[s], b.cache);
  }
}

async function compareModels(cfg: ModelConfig, weights: CanonicalWeights | QuantisedModel, what: string, accuracyLevel = 0, tol = 2e-5, provider: 'cpu' | 'webgpu' = 'cpu'): Promise<void> {
  assert.equal(fusedDecodeReason(cfg, 'float32'), null, `${what}: the fused layers should serve this model`);
  const fused = await openDecodeSession(cfg, weights, { fused: true, accuracyLevel, threads: 1, provider });
  const plain = await openDecodeSession(cfg, weights, { fused: false, accuracyLevel, threads: 1 });
  assert.ok(fused.nodes < plain.nodes, `${what}: ${fused.nodes} nodes fused, ${plain.nodes} plain`);
  await compareRuns(cfg, fused, plain, tol, `${what}, no patch`);
  fused.setPatch(somePatch(cfg));
  plain.setPatch(somePatch(cfg));
  await compareRuns(cfg, fused, plain, tol, `${what}, patched`);
  await fused.session.release();
  await plain.session.release();
}

for (const name of CASES) {
  test(`fused decode layers equal the plain decode graph: ${name}, fp32, int8 and int4`, async () => {
    const { config, weights } = fixture(name);
    await compareModels(config, weights, `${name} fp32`);
    await compareModels(config, quantiseModel(config, weights, 'int8'), `${name} int8`);
    await compareModels(config, quantiseModel(config, weights, 'int4'), `${name} int4`);
  });
}

/** A fixture's config with fields changed (as parsed: ModelConfig's own names). */
function variant(name: string, changes: Partial<ModelConfig>): ModelConfig {
  return { ...loadConfig(join(FIXTURES, name)), ...changes };
}

test('fused decode layers: RoPE inside GroupQueryAttention (head size 32) and a sliding window of 3, on random weights', async () => {
  const qwen = variant('qwen2', { heads: 2, kvHeads: 1, headDim: 32, hidden: 64 });
  await compareModels(qwen, randomCanonicalWeights(qwen, 3, 0.2), 'qwen2 head size 32');
  await compareModels(qwen, quantiseModel(qwen, randomCanonicalWeights(qwen, 3, 0.2), 'int8'), 'qwen2 head size 32 int8');
  const window = variant('mistral', { slidingWindow: 3 });
  await compareModels(window, randomCanonicalWeights(window, 4, 0.2), 'mistral window 3');
  const windowRope = variant('mistral', { slidingWindow: 4, heads: 2, kvHeads: 1, headDim: 16 });
  await compareModels(windowRope, randomCanonicalWeights(windowRope, 5, 0.2), 'mistral window 4, head size 16');
});

test('fused decode layers: caches kept in buffers grow past their room, and a cache decoded from twice stays right', async () => {
  const { config, weights } = fixture('qwen2');
  const fused = await openDecodeSession(config, weights, { fused: true, threads: 1 });
  const plain = await openDecodeSession(config, weights, { fused: false, threads: 1 });
  // A prompt that nearly fills the first buffer, then single tokens across its end and a
  // multi-token step across the next one's.
  const prompt = Array.from({ length: CACHE_GROWTH - 2 }, (_, i) => (i * 37 + 5) % config.vocab);
  let a = await fused.decode(prompt);
  let b = await plain.decode(prompt);
  const firstBuffer = a.cache.keys[0];
  for (const step of [[3], [9], [14], [27], Array.from({ length: CACHE_GROWTH - 3 }, (_, i) => (i * 11 + 1) % config.vocab)]) {
    const branch = a.cache;
    const plainBranch = b.cache;
    a = await fused.decode(step, branch);
    b = await plain.decode(step, plainBranch);
    assert.ok(relErr(a.logits, b.logits) < 2e-5, `after ${a.cache.length} positions: logits`);
    assertCachesAgree(config, a.cache, b.cache, 2e-5, `after ${a.cache.length} positions`);
    // The cache this step extended, decoded from again (another continuation of the same text):
    // its positions are copied out of the extended buffers, which stay as they are.
    const again = await fused.decode([50], branch);
    const reference = await plain.decode([50], plainBranch);
    assert.ok(relErr(again.logits, reference.logits) < 2e-5, `a second continuation from ${branch.length} positions`);
    assert.notEqual(again.cache.keys[0], a.cache.keys[0], 'the second continuation has buffers of its own');
    assertCachesAgree(config, a.cache, b.cache, 2e-5, `the first continuation after the second`);
  }
  assert.notEqual(a.cache.keys[0], firstBuffer, 'the buffers grew');
  await fused.session.release();
  await plain.session.release();
});

test('fused decode layers: int8 at the default accuracy_level 4 stay close to the plain graph', async () => {
  const { config, weights } = fixture('qwen2');
  await compareModels(config, quantiseModel(config, weights, 'int8'), 'qwen2 int8 accuracy 4', 4, 0.05);
});

test('fused decode layers: refused where the kernels cannot serve, and the plain graph is built instead', () => {
  const cfg = loadConfig(join(FIXTURES, 'llama'));
  assert.match(fusedDecodeReason(cfg, 'float64') ?? '', /float32 only/);
  assert.match(fusedDecodeReason({ ...cfg, headDim: 12 }, 'float32') ?? '', /multiple of 8/);
  assert.deepEqual(buildDecodeGraph(cfg, 'float64', 'inputs', { fused: true }), buildDecodeGraph(cfg, 'float64', 'inputs'));
});

test('fused decode layers on WebGPU equal the plain graph on the CPU (fp32 fixtures)', async (t) => {
  const { config, weights } = fixture('qwen2');
  try {
    await (await openDecodeSession(config, weights, { fused: true, provider: 'webgpu' })).session.release();
  } catch (e) {
    if (process.env.STAR_REQUIRE_WEBGPU === '1') assert.fail(`STAR_REQUIRE_WEBGPU=1 but no WebGPU session: ${(e as Error).message}`);
    t.skip(`no WebGPU session here: ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  for (const name of CASES) {
    const m = fixture(name);
    await compareModels(m.config, m.weights, `${name} fp32 on WebGPU`, 0, 1e-4, 'webgpu');
  }
});
