// Golden tests of the runtime against PyTorch: for each architecture family, the committed
// random-weight checkpoint's logits, dL/dh_l and dL/dW_down (computed by tools/make-fixtures with
// torch autograd in float64) must match the ONNX graphs; plus an independent float64 central
// finite-difference check of dL/dW_down, KV-cache decoding vs recomputation, and patches as inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFolder, parseSafetensorsHeader, type ModelFolder } from '../../src/model';
import { ModelRuntime, type LayerPatch } from '../../src/runtime/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CASES = ['llama', 'llama-tied-hd', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-f16', 'llama-bf16', 'llama-sharded'];

interface Reference {
  ids: number[];
  targets: number[];
  mask: number[];
  loss: number;
  greedy_prompt: number[];
  greedy: number[];
  tensors: Map<string, { shape: number[]; data: Float64Array }>;
}

function loadReference(dir: string): Reference {
  const json = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  const buf = readFileSync(join(dir, 'reference.safetensors'));
  const header = parseSafetensorsHeader(buf);
  const tensors = new Map<string, { shape: number[]; data: Float64Array }>();
  for (const [name, t] of header.tensors) {
    if (t.dtype !== 'F64') continue;
    const bytes = buf.subarray(header.dataOffset + t.begin, header.dataOffset + t.end);
    const data = new Float64Array(bytes.length / 8);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readDoubleLE(i * 8);
    tensors.set(name, { shape: t.shape, data });
  }
  return { ...json, tensors };
}

function ref(r: Reference, name: string): Float64Array {
  const t = r.tensors.get(name);
  if (!t) throw new Error(`reference lacks ${name}`);
  return t.data;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** max |a-b| / max |b|: relative to the tensor's scale, so tiny entries don't dominate. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  return maxAbs(a, b) / Math.max(scale, 1e-30);
}

/** dL/dW_down in the checkpoint's storage layout, from z [T,m] and dh [T,d]. */
function downGradient(model: ModelFolder, z: ArrayLike<number>, dh: ArrayLike<number>, T: number): Float64Array {
  const { intermediate: m, hidden: d } = model.config;
  const conv1d = model.config.architecture === 'GPT2LMHeadModel'; // [m, d]; others [d, m]
  const out = new Float64Array(m * d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < m; i++) {
      const zi = z[t * m + i];
      for (let j = 0; j < d; j++) out[conv1d ? i * d + j : j * m + i] += zi * dh[t * d + j];
    }
  }
  return out;
}

/** dL/dz_l [T, m] = dL/dh_l · (W_down + patch)ᵀ in float64: canonical W_down is [d, m], neuron i its column i. */
function activationGradient(model: ModelFolder, layer: number, dh: ArrayLike<number>, T: number, patch?: LayerPatch): Float64Array {
  const { intermediate: m, hidden: d } = model.config;
  const W = model.weights.layers[layer]!.down.weight;
  const out = new Float64Array(T * m);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < m; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += dh[t * d + j] * W[j * m + i];
      out[t * m + i] = s;
    }
    patch?.rows.forEach((i, k) => {
      for (let j = 0; j < d; j++) out[t * m + i] += dh[t * d + j] * patch.deltas[k * d + j];
    });
  }
  return out;
}

/** Reference logits at the masked positions, [N, V]. */
function maskedLogits(r: Reference, V: number): Float64Array {
  const all = ref(r, 'logits');
  const rows = r.mask.flatMap((m, i) => (m !== 0 ? [i] : []));
  const out = new Float64Array(rows.length * V);
  rows.forEach((t, n) => out.set(all.subarray(t * V, (t + 1) * V), n * V));
  return out;
}

for (const name of CASES) {
  test(`golden ${name}: float32 logits, dL/dh and dL/dW match PyTorch`, async () => {
    const dir = join(FIXTURES, name);
    const model = loadModelFolder(dir);
    const r = loadReference(dir);
    const rt = new ModelRuntime(model.config, model.weights);
    const probe = await rt.probe(r.ids, r.targets, r.mask);
    const T = r.ids.length;
    assert.ok(maxAbs(probe.logits, maskedLogits(r, model.config.vocab)) <= 1e-4, `logits max abs error ${maxAbs(probe.logits, maskedLogits(r, model.config.vocab))}`);
    assert.ok(Math.abs(probe.loss - r.loss) <= 1e-4);
    for (let l = 0; l < model.config.layers; l++) {
      assert.ok(relErr(probe.z[l], ref(r, `z.${l}`)) <= 1e-4, `z.${l}`);
      const e = relErr(probe.dh[l], ref(r, `dh.${l}`));
      assert.ok(e <= 1e-4, `dh.${l} relative error ${e}`);
      const ew = relErr(downGradient(model, probe.z[l], probe.dh[l], T), ref(r, `dW.${l}`));
      assert.ok(ew <= 1e-4, `dW.${l} relative error ${ew}`);
    }
    await rt.release();
  });

  test(`golden ${name}: probes whose backward pass stops at a layer give PyTorch's z and dL/dh for the layers above, and dL/dz = dL/dh · W_downᵀ`, async () => {
    const dir = join(FIXTURES, name);
    const model = loadModelFolder(dir);
    const r = loadReference(dir);
    const rt = new ModelRuntime(model.config, model.weights, { floatType: 'float64' });
    const L = model.config.layers;
    const T = r.ids.length;
    for (let from = 0; from < L; from++) {
      const probe = await rt.probe(r.ids, r.targets, r.mask, from);
      const attribution = await rt.attribution(r.ids, r.targets, r.mask, from);
      for (const [kind, p, grads] of [['dh', probe, probe.dh], ['dz', attribution, attribution.dz]] as const) {
        assert.ok(Math.abs(p.loss - r.loss) <= 1e-7 * Math.abs(r.loss));
        for (let l = 0; l < L; l++) {
          if (l < from) {
            assert.equal(grads[l].length, 0, `no ${kind} below layer ${from}`);
            continue;
          }
          assert.ok(relErr(p.z[l], ref(r, `z.${l}`)) <= 1e-7, `z.${l} from layer ${from} (${kind})`);
          const expected = kind === 'dh' ? ref(r, `dh.${l}`) : activationGradient(model, l, ref(r, `dh.${l}`), T);
          const e = relErr(grads[l], expected);
          assert.ok(e <= 1e-7, `${kind}.${l} from layer ${from}: relative error ${e}`);
        }
      }
    }
    await assert.rejects(rt.probe(r.ids, r.targets, r.mask, L), /outside/);
    await assert.rejects(rt.attribution(r.ids, r.targets, r.mask, L), /outside/);
    await rt.release();
  });

  test(`golden ${name}: float64 graphs agree with PyTorch to 1e-7`, async () => {
    const dir = join(FIXTURES, name);
    const model = loadModelFolder(dir);
    const r = loadReference(dir);
    const rt = new ModelRuntime(model.config, model.weights, { floatType: 'float64' });
    const probe = await rt.probe(r.ids, r.targets, r.mask);
    assert.ok(Math.abs(probe.loss - r.loss) <= 1e-7 * Math.abs(r.loss), `loss ${probe.loss} vs ${r.loss}`);
    for (let l = 0; l < model.config.layers; l++) {
      const e = relErr(probe.dh[l], ref(r, `dh.${l}`));
      assert.ok(e <= 1e-7, `dh.${l} relative error ${e}`);
    }
    await rt.release();
  });
}

test('float64 central finite differences of dL/dW_down agree with the backward graph', async () => {
  for (const name of ['llama', 'qwen2', 'gpt2', 'gpt-bigcode']) {
    const model = loadModelFolder(join(FIXTURES, name));
    const r = loadReference(join(FIXTURES, name));
    const rt = new ModelRuntime(model.config, model.weights, { floatType: 'float64' });
    const probe = await rt.probe(r.ids, r.targets, r.mask);
    const { hidden: d } = model.config;
    const layer = model.config.layers - 1;
    for (const [neuron, j] of [[3, 5], [17, 0], [0, d - 1]]) {
      // dL/dW[neuron, j] through a patch that adds ±h to that single weight.
      const analytic = (() => {
        let s = 0;
        for (let t = 0; t < r.ids.length; t++) s += probe.z[layer][t * model.config.intermediate + neuron] * probe.dh[layer][t * d + j];
        return s;
      })();
      const h = 1e-5;
      const lossWith = async (step: number) => {
        const deltas = new Float32Array(d);
        deltas[j] = step;
        rt.setPatch(new Map([[layer, { rows: [neuron], deltas }]]));
        return (await rt.score(r.ids, r.targets, r.mask)).loss;
      };
      const fd = ((await lossWith(h)) - (await lossWith(-h))) / (2 * h);
      assert.ok(Math.abs(fd - analytic) <= 1e-6 * Math.max(1, Math.abs(analytic)), `${name} dW[${neuron},${j}]: analytic ${analytic}, finite difference ${fd}`);
    }
    await rt.release();
  }
});

test('KV-cache decoding yields the reference greedy tokens and the same logits as recomputing', async () => {
  for (const name of ['llama', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-tied-hd']) {
    const model = loadModelFolder(join(FIXTURES, name));
    const r = loadReference(join(FIXTURES, name));
    const rt = new ModelRuntime(model.config, model.weights);
    let { logits, cache } = await rt.decode(r.greedy_prompt);
    const seq = [...r.greedy_prompt];
    const produced: number[] = [];
    for (let i = 0; i < r.greedy.length; i++) {
      let best = 0;
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
      produced.push(best);
      seq.push(best);
      const full = await rt.decode(seq);
      ({ logits, cache } = await rt.decode([best], cache));
      assert.ok(maxAbs(full.logits, logits) <= 1e-4, `${name}: cached vs recomputed logits differ by ${maxAbs(full.logits, logits)}`);
    }
    assert.deepEqual(produced, r.greedy, `${name} greedy tokens`);
    await rt.release();
  }
});

test('a patch given as inputs equals editing those rows of the down projection', async () => {
  for (const name of ['llama', 'gpt2', 'gpt-bigcode']) {
    const model = loadModelFolder(join(FIXTURES, name));
    const r = loadReference(join(FIXTURES, name));
    const { intermediate: m, hidden: d } = model.config;
    const rows = [1, 7, m - 1];
    const deltas = Float32Array.from({ length: rows.length * d }, (_, i) => Math.sin(i) * 0.3);
    const patch = new Map<number, LayerPatch>([[0, { rows, deltas }]]);
    const patched = new ModelRuntime(model.config, model.weights);
    patched.setPatch(patch);
    const viaInputs = await patched.score(r.ids, r.targets, r.mask);
    // Canonical down weights are [d, m] (Linear layout): neuron i is column i.
    const edited = structuredClone(model.weights);
    const down = edited.layers[0].down.weight;
    rows.forEach((row, k) => {
      for (let j = 0; j < d; j++) down[j * m + row] += deltas[k * d + j];
    });
    const viaWeights = await new ModelRuntime(model.config, edited).score(r.ids, r.targets, r.mask);
    assert.ok(maxAbs(viaInputs.logits, viaWeights.logits) <= 1e-5, `${name}: ${maxAbs(viaInputs.logits, viaWeights.logits)}`);
    // And undoing (an empty patch) restores the original logits exactly.
    patched.setPatch(new Map());
    const plain = await patched.score(r.ids, r.targets, r.mask);
    assert.ok(maxAbs(plain.logits, maskedLogits(r, model.config.vocab)) <= 1e-4);
    await patched.release();
  }
});

test('the attribution probe\'s dL/dz goes through the patch as the runtime has it', async () => {
  for (const name of ['llama', 'gpt2', 'gpt-bigcode']) {
    const model = loadModelFolder(join(FIXTURES, name));
    const r = loadReference(join(FIXTURES, name));
    const { intermediate: m, hidden: d, layers: L } = model.config;
    const patch = new Map<number, LayerPatch>([0, L - 1].map((l) => {
      const rows = [2, 5, m - 1];
      return [l, { rows, deltas: Float32Array.from({ length: rows.length * d }, (_, i) => Math.cos(i + l) * 0.4) }];
    }));
    const rt = new ModelRuntime(model.config, model.weights, { floatType: 'float64' });
    rt.setPatch(patch);
    const probe = await rt.probe(r.ids, r.targets, r.mask);
    const a = await rt.attribution(r.ids, r.targets, r.mask);
    for (let l = 0; l < L; l++) {
      const e = relErr(a.dz[l], activationGradient(model, l, probe.dh[l], r.ids.length, patch.get(l)));
      assert.ok(e <= 1e-9, `${name} dz.${l}: relative error ${e}`);
    }
    await rt.release();
  }
});

test('weights as external initializers (the GPU path) give the same results as weights fed as inputs', async () => {
  for (const name of ['llama', 'gpt2', 'qwen2']) {
    const model = loadModelFolder(join(FIXTURES, name));
    const r = loadReference(join(FIXTURES, name));
    const asInputs = new ModelRuntime(model.config, model.weights, { weights: 'inputs' });
    const asInitializers = new ModelRuntime(model.config, model.weights, { weights: 'initializers' });
    const a = await asInputs.probe(r.ids, r.targets, r.mask);
    const b = await asInitializers.probe(r.ids, r.targets, r.mask);
    assert.ok(maxAbs(a.logits, b.logits) <= 1e-5, `${name} logits`);
    for (let l = 0; l < model.config.layers; l++) assert.ok(relErr(b.dh[l], a.dh[l]) <= 1e-5, `${name} dh.${l}`);
    const da = await asInputs.decode(r.greedy_prompt);
    const db = await asInitializers.decode(r.greedy_prompt);
    assert.ok(maxAbs(da.logits, db.logits) <= 1e-5, `${name} decode logits`);
    await asInputs.release();
    await asInitializers.release();
  }
});
