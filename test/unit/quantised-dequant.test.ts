// The probe's dequantised products (src/graph/quantised.ts) on the fixture checkpoints' matrices,
// int8 and int4 at block sizes 16 and 32, run by onnxruntime:
//  - Ŵ from DequantizeLinear (the forward and the backward copy, whole and in row chunks) equals
//    model/quantise.ts dequantiseMatrix bit for bit, and so does the blocked form, which alone
//    raises a graph to opset 21;
//  - a product cut into row chunks (a tiny chunk budget) gives what the unchunked one gives, and
//    both equal x · Ŵᵀ and their gradient gy · Ŵ computed here in float64;
//  - onnxruntime's optimiser keeps the backward pass's copies of Ŵ, and the uint8 slices and
//    unpacked codes they read, apart from the forward ones (its common-subexpression elimination
//    would otherwise keep them alive from the forward to the backward pass).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureWeights } from '../helpers/fixture-weights';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { dequantiseMatrix, quantiseMatrix, type QuantisedMatrix, type QuantSpec } from '../../src/model/quantise';
import { Graph, OPSET, type FloatType } from '../../src/graph/builder';
import { dequantise, dequantiseRows, quantisedProduct, quantisedTensorShapes, rowChunks, type QuantisedValue, type QuantisedWeightSpec } from '../../src/graph/quantised';
import { buildProbeGraph } from '../../src/graph/architectures/decoder';
import { weightArrays } from '../../src/runtime/runtime';
import { quantiseModel } from '../../src/runtime/quantised-weights';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CASES = ['llama', 'qwen2', 'mistral', 'gpt2', 'gpt-bigcode', 'llama-tied-hd'];
const SPECS: QuantSpec[] = [
  { bits: 8, blockSize: 32 },
  { bits: 4, blockSize: 32 },
  { bits: 8, blockSize: 16 },
  { bits: 4, blockSize: 16 },
];


/** Every linear map and the LM head of a fixture, [out, in]. */
function matrices(name: string): { name: string; w: Float32Array; n: number; k: number }[] {
  const model = fixtureWeights(join(FIXTURES, name));
  const cfg = model.config;
  const arrays = weightArrays(cfg, model.weights);
  const out: { name: string; w: Float32Array; n: number; k: number }[] = [];
  model.weights.layers.forEach((layer, l) => {
    for (const [key, lin] of Object.entries({ q: layer.q, k: layer.k, v: layer.v, o: layer.o, gate: layer.gate, up: layer.up, down: layer.down })) {
      if (lin) out.push({ name: `l${l}.${key}`, w: lin.weight, n: lin.out, k: lin.in });
    }
  });
  out.push({ name: 'head', w: arrays.get(cfg.tiedEmbeddings ? 'embed' : 'lm_head')!, n: cfg.vocab, k: cfg.hidden });
  return out;
}

/** Graph inputs for quantised matrix `q` called `name`, and the feeds that go with them. */
function quantInputs(g: Graph, name: string, q: QuantisedMatrix): { qv: QuantisedValue; feeds: Record<string, ort.Tensor> } {
  const w: QuantisedWeightSpec = { name, source: name, n: q.n, k: q.k, spec: { bits: q.bits, blockSize: q.blockSize } };
  const shapes = quantisedTensorShapes(w);
  const qv = { w, codes: g.input(`${name}.codes`, 'uint8', shapes.codes), scales: g.input(`${name}.scales`, 'float32', shapes.scales), zeroPoints: g.input(`${name}.zp`, 'uint8', shapes.zeroPoints) };
  const feeds = {
    [`${name}.codes`]: new ort.Tensor('uint8', q.codes, shapes.codes),
    [`${name}.scales`]: new ort.Tensor('float32', q.scales, shapes.scales),
    [`${name}.zp`]: new ort.Tensor('uint8', q.zeroPoints, shapes.zeroPoints),
  };
  return { qv, feeds };
}

async function run(g: Graph, feeds: Record<string, ort.Tensor>, options: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(g.toModel(), { intraOpNumThreads: 1, ...options });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

test('a blocked DequantizeLinear raises a graph to opset 21 and equals the per-axis form the probe uses; other graphs stay at OPSET (18)', async () => {
  const plain = new Graph('float32');
  plain.output(plain.add(plain.input('x', 'float32', [2]), plain.scalar(1)), 'y');
  assert.equal(plain.opset, OPSET);
  assert.equal(OPSET, 18);
  const k = 40;
  const q = quantiseMatrix(Float32Array.from({ length: 3 * k }, (_, i) => Math.sin(i) / 4), 3, k, { bits: 8, blockSize: 16 });
  const perAxis = new Graph('float32');
  const a = quantInputs(perAxis, 'w', q);
  perAxis.output(dequantise(perAxis, a.qv), 'w_hat');
  assert.equal(perAxis.opset, OPSET, 'the probe graphs stay at opset 18');
  const blocked = new Graph('float32');
  const b = quantInputs(blocked, 'w', q);
  const codes = blocked.reshape(b.qv.codes, [3, 48], [3, 48]);
  blocked.output(blocked.dequantizeLinear(codes, blocked.reshape(b.qv.scales, [3, 3], [3, 3]), blocked.reshape(b.qv.zeroPoints, [3, 3], [3, 3]), 1, 16), 'w_hat');
  assert.equal(blocked.opset, 21);
  const ref = dequantiseMatrix(q);
  const x = (await run(perAxis, a.feeds)).w_hat.data as Float32Array;
  const y = (await run(blocked, b.feeds)).w_hat.data as Float32Array;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < k; c++) {
      assert.ok(Object.is(x[r * k + c], ref[r * k + c]), `per axis [${r}, ${c}]`);
      assert.ok(Object.is(y[r * 48 + c], ref[r * k + c]), `blocked [${r}, ${c}]`);
    }
  }
});

for (const name of CASES) {
  for (const spec of SPECS) {
    test(`dequantise ${name} int${spec.bits} block ${spec.blockSize}: DequantizeLinear Ŵ, whole and in row chunks, equals dequantiseMatrix bit for bit`, async () => {
      const g = new Graph('float32');
      let feeds: Record<string, ort.Tensor> = {};
      const expected = new Map<string, Float32Array>();
      for (const m of matrices(name)) {
        const q = quantiseMatrix(m.w, m.n, m.k, spec);
        const inputs = quantInputs(g, m.name, q);
        feeds = { ...feeds, ...inputs.feeds };
        const ref = dequantiseMatrix(q);
        expected.set(`${m.name}.whole`, ref);
        g.output(dequantise(g, inputs.qv), `${m.name}.whole`);
        // Row chunks of about a quarter of the rows (a budget of a quarter of Ŵ's float32 bytes), both copies.
        for (const copy of ['forward', 'backward'] as const) {
          const chunks = rowChunks(m, 4, m.n * m.k);
          assert.ok(chunks.length >= 4, `${m.name}: ${chunks.length} chunks`);
          chunks.forEach((r, c) => {
            g.output(dequantiseRows(g, inputs.qv, r, 'float32', copy), `${m.name}.${copy}.${c}`);
            expected.set(`${m.name}.${copy}.${c}`, ref.subarray(r.start * m.k, (r.start + r.count) * m.k));
          });
        }
      }
      const out = await run(g, feeds);
      for (const [key, ref] of expected) {
        const got = out[key].data as Float32Array;
        assert.equal(got.length, ref.length, key);
        for (let i = 0; i < ref.length; i++) assert.ok(Object.is(got[i], ref[i]), `${key}[${i}]: ${got[i]} vs dequantiseMatrix ${ref[i]}`);
      }
    });
  }
}

/** x · Ŵᵀ and d(Σ r ⊙ y)/dx = r · Ŵ in `floatType`, with products cut at `chunkBytes`. */
async function productAndGradient(q: QuantisedMatrix, x: Float64Array, r: Float64Array, T: number, floatType: FloatType, chunkBytes: number): Promise<{ y: ArrayLike<number>; gx: ArrayLike<number> }> {
  const g = new Graph(floatType);
  const { qv, feeds } = quantInputs(g, 'w', q);
  const xi = g.input('x', floatType, [T, q.k]);
  const ri = g.input('r', floatType, [T, q.n]);
  const y = quantisedProduct(g, xi, qv, 0, 'dequantised', chunkBytes);
  const loss = g.reduceSum(g.mul(y, ri), [0, 1], false);
  const [gx] = g.grad(loss, [xi]);
  g.output(y, 'y');
  g.output(gx, 'gx');
  const F = floatType === 'float64' ? Float64Array : Float32Array;
  const out = await run(g, { ...feeds, x: new ort.Tensor(floatType, F.from(x), [T, q.k]), r: new ort.Tensor(floatType, F.from(r), [T, q.n]) });
  return { y: out.y.data as ArrayLike<number>, gx: out.gx.data as ArrayLike<number> };
}

for (const name of CASES) {
  for (const spec of SPECS.slice(0, 2)) {
    test(`chunked product ${name} int${spec.bits}: row chunks give the unchunked product and gradient, both x · Ŵᵀ and gy · Ŵ`, async () => {
      const rand = rng(11);
      const T = 5;
      for (const m of matrices(name).filter((mm) => mm.name === 'head' || mm.name.endsWith('.down') || mm.name.endsWith('.q'))) {
        const q = quantiseMatrix(m.w, m.n, m.k, spec);
        const w = Float64Array.from(dequantiseMatrix(q));
        const x = Float64Array.from({ length: T * m.k }, () => 2 * rand());
        const r = Float64Array.from({ length: T * m.n }, () => 2 * rand());
        const y = new Float64Array(T * m.n);
        const gx = new Float64Array(T * m.k);
        for (let t = 0; t < T; t++) {
          for (let n = 0; n < m.n; n++) {
            for (let c = 0; c < m.k; c++) {
              y[t * m.n + n] += x[t * m.k + c] * w[n * m.k + c];
              gx[t * m.k + c] += r[t * m.n + n] * w[n * m.k + c];
            }
          }
        }
        // A budget of a third of Ŵ in float64: three or more chunks (uneven when 3 ∤ N).
        const tiny = Math.floor((m.n * m.k * 8) / 3);
        assert.ok(rowChunks(m, 8, tiny).length >= 3);
        for (const ft of ['float64', 'float32'] as const) {
          const whole = await productAndGradient(q, x, r, T, ft, Number.MAX_SAFE_INTEGER);
          const chunked = await productAndGradient(q, x, r, T, ft, tiny);
          const tol = ft === 'float64' ? 1e-12 : 1e-5;
          const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
            let scale = 0;
            for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
            for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * scale, `${m.name} ${ft} ${what}[${i}]: ${a[i]} vs ${b[i]}`);
          };
          close(chunked.y, whole.y, 'chunked y vs whole');
          close(chunked.gx, whole.gx, 'chunked dL/dx vs whole');
          close(chunked.y, y, 'y vs x·Ŵᵀ');
          close(chunked.gx, gx, 'dL/dx vs gy·Ŵ');
        }
      }
    });
  }
}

/** How many nodes of `opType` an ONNX model holds (its NodeProto op_type fields, field 4). */
function countOps(model: Uint8Array, opType: string): number {
  const needle = Buffer.concat([Buffer.from([0x22, opType.length]), Buffer.from(opType, 'latin1')]);
  const hay = Buffer.from(model.buffer, model.byteOffset, model.byteLength);
  let n = 0;
  for (let at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + 1)) n++;
  return n;
}

for (const format of ['int8', 'int4'] as const) {
  test(`probe graph ${format}: onnxruntime's optimiser keeps every backward copy of Ŵ (and of the codes it reads) apart from the forward one`, async () => {
    const model = fixtureWeights(join(FIXTURES, 'qwen2'));
    const cfg = model.config;
    const qm = quantiseModel(cfg, model.weights, format);
    // A chunk budget of 4 KiB: the LM head and the MLP matrices are multiplied in chunks.
    const quant = { ...qm.spec, accuracyLevel: 0, mode: 'inputs' as const, product: 'dequantised' as const, chunkBytes: 4096 };
    const forward = countOps(buildProbeGraph(cfg, { backward: false, quant }), 'DequantizeLinear');
    const bytes = buildProbeGraph(cfg, { backward: true, quant });
    assert.ok(countOps(bytes, 'DequantizeLinear') > forward, `the probe graph has ${countOps(bytes, 'DequantizeLinear')} DequantizeLinear nodes, the forward alone ${forward}`);
    const dir = mkdtempSync(join(tmpdir(), 'star-dq-'));
    try {
      const path = join(dir, 'optimised.onnx');
      const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', optimizedModelFilePath: path, intraOpNumThreads: 1 });
      await session.release();
      const optimised = readFileSync(path);
      // onnxruntime 1.30 never merges DequantizeLinear nodes, but it does merge the uint8 nodes
      // before them (row slices of the codes, the nibble unpacking) where their inputs are the same:
      // a merged one would hold its chunk of codes from the forward to the backward pass.
      const ops = format === 'int4' ? ['DequantizeLinear', 'Slice', 'BitwiseAnd', 'BitShift'] : ['DequantizeLinear', 'Slice'];
      for (const op of ops) {
        const emitted = countOps(bytes, op);
        assert.ok(emitted > 0, op);
        assert.equal(countOps(optimised, op), emitted, `onnxruntime kept ${countOps(optimised, op)} of ${emitted} ${op} nodes`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
