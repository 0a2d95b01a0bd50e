// The quantised runtime (ModelRuntime on runtime/quantised-weights.ts) against an independent
// reference: the fp32 graphs in float64 on the dequantised weights Ŵ (dequantiseModel). On the
// fixture checkpoints, int8 and int4:
//  - decode (codes as initializers, accuracy_level 0) and its KV cache give the reference's logits;
//  - the probe (codes as inputs; Gemm on Ŵ from DequantizeLinear, backward through a fresh in-graph
//    Ŵ) gives its loss, z and dL/dh (and the attribution probe its dL/dz) — also with a chunk budget so small that the LM head and the
//    MLP products are cut into row chunks — and a float64 central finite difference of the loss
//    in a patch delta agrees with the gradient the float32 probe implies;
//  - a patch (fp32, on top of Ŵ_down) moves logits exactly as it moves the reference's;
//  - at accuracy_level 4 (int8 activations, the default decode) logits stay within 6 %.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureWeights, relErr } from '../helpers/fixture-weights';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { DECODE_OWN_WEIGHT_BYTES, ModelRuntime, sessionWeightMode, type LayerPatch } from '../../src/runtime/runtime';
import { dequantiseModel, quantiseModel, quantisedModelBytes } from '../../src/runtime/quantised-weights';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CASES = ['llama', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-tied-hd'];


function reference(name: string): { ids: number[]; targets: number[]; mask: number[] } {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'reference.json'), 'utf8'));
}

function somePatch(d: number, m: number, layer: number): Map<number, LayerPatch> {
  const rows = [1, Math.floor(m / 2)];
  const deltas = Float32Array.from({ length: rows.length * d }, (_, i) => 0.3 * Math.sin(i + 1));
  return new Map([[layer, { rows, deltas }]]);
}

for (const name of CASES) {
  for (const format of ['int8', 'int4'] as const) {
    test(`quantised ${name} ${format}: decode, cache, probe and patches equal the float64 model on Ŵ`, async () => {
      const model = fixtureWeights(join(FIXTURES, name));
      const cfg = model.config;
      const q = quantiseModel(cfg, model.weights, format);
      const ref = dequantiseModel(cfg, q);
      const r = reference(name);
      const exact = new ModelRuntime(cfg, q, { accuracyLevel: 0 });
      const base = new ModelRuntime(ref.config, ref.weights, { floatType: 'float64' });
      // 4 KiB of float Ŵ per chunk: the LM head (9 chunks) and the MLP matrices are multiplied in row chunks.
      const chunked = new ModelRuntime(cfg, q, { accuracyLevel: 0, dequantChunkBytes: 4096 });
      assert.equal(exact.weightFormat, format);
      assert.equal(exact.weightBytes, quantisedModelBytes(q));

      for (const patch of [new Map<number, LayerPatch>(), somePatch(cfg.hidden, cfg.intermediate, cfg.layers - 1)]) {
        exact.setPatch(patch);
        base.setPatch(patch);
        chunked.setPatch(patch);
        const prompt = r.ids.slice(0, 6);
        const a = await exact.decode(prompt);
        const b = await base.decode(prompt);
        assert.ok(relErr(a.logits, b.logits) <= 1e-5, `decode logits ${relErr(a.logits, b.logits)}`);
        const a2 = await exact.decode([r.ids[6], r.ids[7]], a.cache);
        const b2 = await base.decode([r.ids[6], r.ids[7]], b.cache);
        assert.ok(relErr(a2.logits, b2.logits) <= 1e-5, `cached decode logits ${relErr(a2.logits, b2.logits)}`);

        const pa = await exact.probe(r.ids, r.targets, r.mask);
        const pb = await base.probe(r.ids, r.targets, r.mask);
        assert.ok(Math.abs(pa.loss - pb.loss) <= 1e-5 * Math.abs(pb.loss), `loss ${pa.loss} vs ${pb.loss}`);
        assert.ok(relErr(pa.logits, pb.logits) <= 1e-5, 'probe logits');
        for (let l = 0; l < cfg.layers; l++) {
          assert.ok(relErr(pa.z[l], pb.z[l]) <= 1e-5, `z.${l} ${relErr(pa.z[l], pb.z[l])}`);
          assert.ok(relErr(pa.dh[l], pb.dh[l]) <= 1e-4, `dh.${l} ${relErr(pa.dh[l], pb.dh[l])}`);
        }
        const sa = await exact.score(r.ids, r.targets, r.mask);
        assert.ok(Math.abs(sa.loss - pb.loss) <= 1e-5 * Math.abs(pb.loss), 'score loss');
        // The attribution probe: dL/dz through Ŵ_down (and the patch), from the lowest and a middle layer.
        for (const from of [0, Math.floor(cfg.layers / 2)]) {
          const aa = await exact.attribution(r.ids, r.targets, r.mask, from);
          const ab = await base.attribution(r.ids, r.targets, r.mask, from);
          for (let l = from; l < cfg.layers; l++) assert.ok(relErr(aa.dz[l], ab.dz[l]) <= 1e-4, `dz.${l} from ${from}: ${relErr(aa.dz[l], ab.dz[l])}`);
        }

        const pc = await chunked.probe(r.ids, r.targets, r.mask);
        assert.ok(Math.abs(pc.loss - pb.loss) <= 1e-5 * Math.abs(pb.loss), `chunked loss ${pc.loss} vs ${pb.loss}`);
        assert.ok(relErr(pc.logits, pb.logits) <= 1e-5, 'chunked probe logits');
        for (let l = 0; l < cfg.layers; l++) {
          assert.ok(relErr(pc.z[l], pb.z[l]) <= 1e-5, `chunked z.${l} ${relErr(pc.z[l], pb.z[l])}`);
          assert.ok(relErr(pc.dh[l], pb.dh[l]) <= 1e-4, `chunked dh.${l} ${relErr(pc.dh[l], pb.dh[l])}`);
        }
        const sc = await chunked.score(r.ids, r.targets, r.mask);
        assert.ok(Math.abs(sc.loss - pb.loss) <= 1e-5 * Math.abs(pb.loss), 'chunked score loss');
      }

      // Finite differences: dL/dΔ[row, j] of a layer-0 patch is Σ_t z[t,row]·dh[t,j] from the float32
      // probe; the float64 quantised score graph differentiates the same function numerically.
      exact.setPatch(new Map());
      const probe = await exact.probe(r.ids, r.targets, r.mask);
      const f64 = new ModelRuntime(cfg, q, { floatType: 'float64' });
      const { hidden: d, intermediate: m } = cfg;
      const T = r.ids.length;
      const row = 2;
      const eps = 1e-4;
      for (const j of [0, Math.floor(d / 3), d - 1]) {
        let analytic = 0;
        for (let t = 0; t < T; t++) analytic += probe.z[0][t * m + row] * probe.dh[0][t * d + j];
        const at = async (v: number) => {
          const deltas = new Float32Array(d);
          deltas[j] = v;
          f64.setPatch(new Map([[0, { rows: [row], deltas }]]));
          return (await f64.score(r.ids, r.targets, r.mask)).loss;
        };
        const numeric = ((await at(eps)) - (await at(-eps))) / (2 * eps);
        assert.ok(Math.abs(numeric - analytic) <= 1e-3 * Math.abs(numeric) + 1e-6, `dL/dΔ[${row}, ${j}]: finite difference ${numeric} vs probe ${analytic}`);
      }

      // The default decode (accuracy_level 4: activations in int8 per block) stays close to Ŵ's
      // logits: a sanity bound (the op-level bound is in quantise-golden); on these 32-wide random
      // models int8 activations move logits by 1–4 %, as much as int8 weights do.
      const fast = new ModelRuntime(cfg, q);
      const pf = await fast.decode(r.ids.slice(0, 8));
      const pe = await exact.decode(r.ids.slice(0, 8));
      assert.ok(relErr(pf.logits, pe.logits) <= 6e-2, `accuracy_level 4 logits ${relErr(pf.logits, pe.logits)}`);
      for (const rt of [exact, base, chunked, f64, fast]) await rt.release();
    });
  }
}

// The CPU decode session holds small float weights (a quantised model's norms and biases, a small
// fp32 model) as its own initializers (sessionWeightMode): onnxruntime folds the stacked q/k/v
// biases once and prepacks fp32 matrices.
test("sessionWeightMode: a small model's CPU decode session holds its float weights; other sessions and large models share them", () => {
  const small = DECODE_OWN_WEIGHT_BYTES;
  const large = DECODE_OWN_WEIGHT_BYTES + 1;
  assert.equal(sessionWeightMode('cpu', true, small), 'initializers');
  assert.equal(sessionWeightMode('cpu', true, large), 'inputs');
  assert.equal(sessionWeightMode('cpu', false, small), 'inputs');
  assert.equal(sessionWeightMode('webgpu', false, large), 'initializers');
  assert.equal(sessionWeightMode('cpu', true, small, 'inputs'), 'inputs');
  assert.equal(sessionWeightMode('webgpu', true, small, 'inputs'), 'inputs');
});

// Both feedings compute the same function.
for (const format of ['fp32', 'int8', 'int4'] as const) {
  test(`decode with the float weights as initializers equals decode with them fed as inputs (qwen2, ${format})`, async () => {
    const model = fixtureWeights(join(FIXTURES, 'qwen2'));
    const cfg = model.config;
    const weights = format === 'fp32' ? model.weights : quantiseModel(cfg, model.weights, format);
    const own = new ModelRuntime(cfg, weights, { weights: 'initializers' });
    const fed = new ModelRuntime(cfg, weights, { weights: 'inputs' });
    const patch = somePatch(cfg.hidden, cfg.intermediate, 0);
    own.setPatch(patch);
    fed.setPatch(patch);
    const r = reference('qwen2');
    const a = await own.decode(r.ids.slice(0, 6));
    const b = await fed.decode(r.ids.slice(0, 6));
    assert.ok(relErr(a.logits, b.logits) <= 1e-6, `prompt logits ${relErr(a.logits, b.logits)}`);
    const a2 = await own.decode([r.ids[6]], a.cache);
    const b2 = await fed.decode([r.ids[6]], b.cache);
    assert.ok(relErr(a2.logits, b2.logits) <= 1e-6, `step logits ${relErr(a2.logits, b2.logits)}`);
    await own.release();
    await fed.release();
  });
}
