// The greedy decode (ModelRuntime.decode(ids, cache, 'greedy')): on the fused CPU graph the token
// is chosen in the graph (ArgMax) and the logits stay in onnxruntime.
//  - The graph's rule (greedyOutputs) on crafted logits: the first index of the largest, and a sum
//    that is finite only where every logit is (ties, -Infinity, NaN, +Infinity, a sum past float32).
//  - On the fixture checkpoints, fp32, int8 and int4, with and without a patch: a greedy chain's
//    tokens are argmax of the logits chain's, and its caches continue to the same logits.
//  - generate() asks for the greedy token only where it needs no logits (not while healing, not for
//    the first token's alternatives, not when sampling) and writes what it writes from the logits.
//  - A step whose logits are not finite is decoded again and answers with its logits, from which
//    greedyToken (argmax's rules) refuses to choose (logits-not-finite); its cache is left intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph } from '../../src/graph/builder';
import { greedyOutputs, usesFusedDecode } from '../../src/graph/architectures/decoder';
import { argmax } from '../../src/model/finite';
import { ModelError } from '../../src/model/errors';
import { greedyToken, ModelRuntime, type DecodeStep, type KvCache, type LayerPatch } from '../../src/runtime/runtime';
import { quantiseModel } from '../../src/runtime/quantised-weights';
import { fixtureWeights } from '../helpers/fixture-weights';
import { loadModelFolder } from '../../src/model/index';
import { generate, type GenerateOptions } from '../../src/runtime/generate';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');

test('greedyOutputs: the first largest logit, and a sum finite only where every logit is', async () => {
  const V = 6;
  const g = new Graph();
  greedyOutputs(g, g.input('logits', 'float32', [1, V]));
  const session = await ort.InferenceSession.create(g.toModel());
  const run = async (values: number[]) => {
    const out = await session.run({ logits: new ort.Tensor('float32', Float32Array.from(values), [1, V]) });
    return { next: Number(out.next.data[0]), sum: Number(out.logit_sum.data[0]) };
  };
  const cases: { logits: number[]; finite: boolean }[] = [
    { logits: [0.5, -2, 3.25, 1, 3.24, -7], finite: true },
    { logits: [1, 5, 2, 5, 5, 0], finite: true }, // ties: the first
    { logits: [-1, -1, -1, -1, -1, -1], finite: true },
    { logits: [-Infinity, 2, 3, 1, 0, 0], finite: false }, // allowed by argmax, but the runtime must look
    { logits: [1, NaN, 3, 1, 0, 0], finite: false },
    { logits: [1, 2, Infinity, 1, 0, 0], finite: false },
    { logits: [3e38, 3e38, 1, 0, 0, 0], finite: false }, // finite logits, sum past float32: looked at too
  ];
  for (const c of cases) {
    const r = await run(c.logits);
    assert.equal(Number.isFinite(r.sum), c.finite, `sum of ${c.logits}`);
    if (c.finite) assert.equal(r.next, argmax(Float32Array.from(c.logits)), `next of ${c.logits}`);
  }
  await session.release();
});

function somePatch(d: number, m: number, layer: number): Map<number, LayerPatch> {
  const rows = [1, Math.floor(m / 2)];
  return new Map([[layer, { rows, deltas: Float32Array.from({ length: rows.length * d }, (_, i) => 0.3 * Math.sin(i + 1)) }]]);
}

/** Every neuron of `layer` moved by ±3e38: the MLP's output overflows to ±Infinity, the logits become NaN. */
function overflowingPatch(d: number, m: number, layer: number): Map<number, LayerPatch> {
  const rows = Array.from({ length: m }, (_, i) => i);
  return new Map([[layer, { rows, deltas: Float32Array.from({ length: m * d }, (_, i) => (i % 2 === 0 ? 3e38 : -3e38)) }]]);
}

function tokenOf(step: DecodeStep, inGraph: boolean): number {
  assert.equal('next' in step, inGraph, inGraph ? 'the fused graph answers with its token' : 'other graphs answer with the logits');
  return greedyToken(step);
}

for (const name of ['llama', 'qwen2', 'mistral', 'gpt2', 'llama-tied-hd']) {
  for (const format of ['fp32', 'int8', 'int4'] as const) {
    test(`greedy decode ${name} ${format}: the graph's tokens are argmax of the logits, and the caches go on alike`, async () => {
      const model = fixtureWeights(join(FIXTURES, name));
      const cfg = model.config;
      const rt = new ModelRuntime(cfg, format === 'fp32' ? model.weights : quantiseModel(cfg, model.weights, format), { provider: 'cpu' });
      const inGraph = usesFusedDecode(cfg, 'float32', { fused: true });
      try {
        for (const patch of [new Map<number, LayerPatch>(), somePatch(cfg.hidden, cfg.intermediate, cfg.layers - 1)]) {
          rt.setPatch(patch);
          const prompt = [3, 1, 4, 1, 5, 9].map((t) => t % cfg.vocab);
          let viaLogits = await rt.decode(prompt);
          let greedy = await rt.decode(prompt, undefined, 'greedy');
          for (let i = 0; i < 6; i++) {
            const want = argmax(viaLogits.logits);
            assert.equal(tokenOf(greedy, inGraph), want, `token ${i}`);
            // The greedy chain's cache holds what the logits chain's does: the same logits from both.
            const a = await rt.decode([want], viaLogits.cache);
            const b = await rt.decode([want], greedy.cache);
            assert.deepEqual(b.logits, a.logits, `logits after step ${i}`);
            viaLogits = a;
            greedy = await rt.decode([want], greedy.cache, 'greedy');
          }
        }
      } finally {
        await rt.release();
      }
    });
  }
}

test('greedy decode: non-finite logits come back as logits, greedyToken refuses them, and the cache stays usable', async () => {
  const model = fixtureWeights(join(FIXTURES, 'qwen2'));
  const cfg = model.config;
  assert.ok(usesFusedDecode(cfg, 'float32', { fused: true }), 'the fixture decodes on the fused graph');
  const rt = new ModelRuntime(cfg, quantiseModel(cfg, model.weights, 'int8'), { provider: 'cpu' });
  try {
    const prompt = [5, 7, 11, 2];
    const start = await rt.decode(prompt);
    const expected = await rt.decode([argmax(start.logits)], start.cache);
    rt.setPatch(overflowingPatch(cfg.hidden, cfg.intermediate, cfg.layers - 1));
    const broken = await rt.decode([argmax(start.logits)], start.cache);
    assert.ok(broken.logits.some((v) => !Number.isFinite(v)), 'the patch breaks the logits');
    // The greedy step answers with the logits, and choosing from them is refused.
    const step = await rt.decode([argmax(start.logits)], start.cache, 'greedy');
    assert.ok('logits' in step, 'a step with non-finite logits answers with the logits');
    assert.throws(() => greedyToken(step), (e: unknown) => {
      assert.ok(e instanceof ModelError, String(e));
      assert.equal(e.code, 'logits-not-finite');
      return true;
    });
    // Without the patch, the same cache gives what it gave before the failed step.
    rt.setPatch(new Map());
    const again = await rt.decode([argmax(start.logits)], start.cache);
    assert.deepEqual(again.logits, expected.logits);
    const greedy = await rt.decode([argmax(start.logits)], start.cache as KvCache, 'greedy');
    assert.ok('next' in greedy);
    assert.equal(greedy.next, argmax(expected.logits));
  } finally {
    await rt.release();
  }
});

test('generate(): greedy steps are decoded for their token only, with the same completion as from the logits', async () => {
  const folder = loadModelFolder(join(FIXTURES, 'llama'));
  const rt = new ModelRuntime(folder.config, folder.weights, { provider: 'cpu' });
  assert.ok(usesFusedDecode(folder.config, 'float32', { fused: true }));
  /** The runtime as generate() sees it, counting what each decode asked for; `logitsOnly` drops the ask. */
  const watched = (logitsOnly: boolean) => {
    const asked: string[] = [];
    const view = Object.create(rt) as ModelRuntime;
    view.decode = ((ids: readonly number[], cache?: KvCache, want?: 'logits' | 'greedy') => {
      asked.push(want ?? 'logits');
      return logitsOnly || want !== 'greedy' ? rt.decode(ids, cache) : rt.decode(ids, cache, 'greedy');
    }) as ModelRuntime['decode'];
    return { view, asked };
  };
  try {
    const cases: { options: GenerateOptions; logitSteps: number }[] = [
      { options: { maxTokens: 8 }, logitSteps: 0 },
      { options: { maxTokens: 8, firstChoices: 3 }, logitSteps: 1 }, // the first token's alternatives
      { options: { maxTokens: 8, heal: true }, logitSteps: 1 }, // at least the healing step
      { options: { maxTokens: 8, temperature: 0.7, seed: 3 }, logitSteps: -1 }, // every step
    ];
    for (const { options, logitSteps } of cases) {
      const fast = watched(false);
      const slow = watched(true);
      const a = await generate(fast.view, folder.tokenizer, 'def f(n):\n    ret', options);
      const b = await generate(slow.view, folder.tokenizer, 'def f(n):\n    ret', options);
      assert.deepEqual(a.tokens, b.tokens, JSON.stringify(options));
      assert.equal(a.text, b.text);
      assert.deepEqual(a.firstChoices, b.firstChoices);
      const logits = fast.asked.filter((w) => w === 'logits').length;
      if (logitSteps < 0) assert.equal(logits, fast.asked.length, `sampling asks for the logits: ${fast.asked}`);
      else if (options.heal) assert.ok(logits >= logitSteps && logits < fast.asked.length, `healing: ${fast.asked}`);
      else assert.equal(logits, logitSteps, `${JSON.stringify(options)}: ${fast.asked}`);
    }
  } finally {
    await rt.release();
  }
});
