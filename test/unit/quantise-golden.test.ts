// Golden tests of the MatMulNBits quantisation (src/model/quantise.ts, src/graph/quantised.ts):
// on every linear map of the fixture checkpoints, int8 and int4 at block sizes 16 and 32, the
// codes are unpacked here by the op's documented layout (independently of the module), the
// dequantised matrix is rebuilt in float64, each weight is within half a step of the original, and
// onnxruntime's CPU MatMulNBits (codes as an input: float32 compute; codes as an initializer at
// accuracy_level 4: int8 activations) agrees with x · Ŵᵀ computed here in float64. Bad specs and
// values are refused with a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { canonicalWeights, isIgnoredTensor, loadConfig, readWeightFolder } from '../../src/model';

/** Config and canonical weights of a fixture (no tokenizer: its timing check is not under test here). */
function loadModelFolder(dir: string) {
  const config = loadConfig(dir);
  const folder = readWeightFolder(dir, { skip: (n) => isIgnoredTensor(config, n) });
  return { config, weights: canonicalWeights(config, folder.tensors, { consume: true }) };
}
import { dequantiseMatrix, quantiseMatrix, QuantError, type QuantisedMatrix, type QuantSpec } from '../../src/model/quantise';
import { Graph } from '../../src/graph/builder';
import { dequantise, quantisedProduct, quantisedTensorShapes, type QuantisedWeightSpec } from '../../src/graph/quantised';
import { weightArrays } from '../../src/runtime/runtime';

const FIXTURES = join(__dirname, '..', 'fixtures', 'models');
const CASES = ['llama', 'qwen2', 'gpt2', 'gpt-bigcode', 'llama-tied-hd'];
const SPECS: QuantSpec[] = [
  { bits: 8, blockSize: 32 },
  { bits: 4, blockSize: 32 },
  { bits: 8, blockSize: 16 },
  { bits: 4, blockSize: 16 },
];

/** W[r, c] from the op's layout, read here: codes [N, kBlocks, bs·bits/8] low-first, zero points packed alike. */
function referenceDequantise(q: QuantisedMatrix): Float64Array {
  const { n, k, bits, blockSize } = q;
  const kBlocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const nibble = (bytes: Uint8Array, at: number, i: number) => (bits === 8 ? bytes[at + i] : (bytes[at + Math.floor(i / 2)] >> (4 * (i % 2))) & 15);
  const out = new Float64Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / blockSize);
      const code = nibble(q.codes, (r * kBlocks + b) * blob, c % blockSize);
      const zero = nibble(q.zeroPoints, r * zpRow, b);
      out[r * k + c] = q.scales[r * kBlocks + b] * (code - zero);
    }
  }
  return out;
}

function matrices(name: string): { name: string; w: Float32Array; n: number; k: number }[] {
  const model = loadModelFolder(join(FIXTURES, name));
  const cfg = model.config;
  const arrays = weightArrays(cfg, model.weights);
  const out: { name: string; w: Float32Array; n: number; k: number }[] = [];
  for (const l of model.weights.layers.keys()) {
    const layer = model.weights.layers[l];
    for (const [key, lin] of Object.entries({ q: layer.q, k: layer.k, v: layer.v, o: layer.o, gate: layer.gate, up: layer.up, down: layer.down })) {
      if (lin) out.push({ name: `l${l}.${key}`, w: lin.weight, n: lin.out, k: lin.in });
    }
  }
  out.push({ name: 'head', w: arrays.get(cfg.tiedEmbeddings ? 'embed' : 'lm_head')!, n: cfg.vocab, k: cfg.hidden });
  return out;
}

/** A graph computing x · Ŵᵀ with one MatMulNBits node (codes as inputs or initializers), and Ŵ itself. */
async function runOp(q: QuantisedMatrix, x: Float32Array, rows: number, accuracyLevel: number, constant: boolean): Promise<{ y: Float32Array; w: Float32Array }> {
  const g = new Graph('float32');
  const spec: QuantisedWeightSpec = { name: 'w', source: 'w', n: q.n, k: q.k, spec: { bits: q.bits, blockSize: q.blockSize } };
  const shapes = quantisedTensorShapes(spec);
  const tensor = (name: string, dtype: 'uint8' | 'float32', shape: number[], bytes: number) => (constant ? g.externalConstant(name, dtype, shape, `${name}.bin`, bytes) : g.input(name, dtype, shape));
  const qv = {
    w: spec,
    codes: tensor('codes', 'uint8', shapes.codes, q.codes.byteLength),
    scales: tensor('scales', 'float32', shapes.scales, q.scales.byteLength),
    zeroPoints: tensor('zp', 'uint8', shapes.zeroPoints, q.zeroPoints.byteLength),
  };
  const input = g.input('x', 'float32', ['T', q.k]);
  g.output(quantisedProduct(g, input, qv, accuracyLevel), 'y');
  g.output(dequantise(g, qv), 'w_hat');
  const asBytes = (a: Uint8Array | Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const options: ort.InferenceSession.SessionOptions = constant
    ? { externalData: [{ path: 'codes.bin', data: asBytes(q.codes) }, { path: 'scales.bin', data: asBytes(q.scales) }, { path: 'zp.bin', data: asBytes(q.zeroPoints) }] }
    : {};
  const session = await ort.InferenceSession.create(g.toModel(), { ...options, intraOpNumThreads: 1 });
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', x, [rows, q.k]) };
  if (!constant) {
    feeds.codes = new ort.Tensor('uint8', q.codes, shapes.codes);
    feeds.scales = new ort.Tensor('float32', q.scales, shapes.scales);
    feeds.zp = new ort.Tensor('uint8', q.zeroPoints, shapes.zeroPoints);
  }
  const out = await session.run(feeds);
  await session.release();
  return { y: out.y.data as Float32Array, w: out.w_hat.data as Float32Array };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

for (const name of CASES) {
  for (const spec of SPECS) {
    test(`quantise ${name} int${spec.bits} block ${spec.blockSize}: codes, Ŵ and MatMulNBits against a float64 reference`, async () => {
      const rand = rng(7);
      for (const m of matrices(name)) {
        const q = quantiseMatrix(m.w, m.n, m.k, spec);
        const ref = referenceDequantise(q);
        // The module's float32 dequantisation is the reference rounded to float32, entry by entry.
        const mine = dequantiseMatrix(q);
        for (let i = 0; i < ref.length; i++) assert.equal(mine[i], Math.fround(ref[i]), `${m.name}[${i}]: dequantised ${mine[i]} vs ${ref[i]}`);
        // Each weight is within half a quantisation step of the original.
        const kBlocks = Math.ceil(m.k / spec.blockSize);
        for (let r = 0; r < m.n; r++) {
          for (let c = 0; c < m.k; c++) {
            const step = q.scales[r * kBlocks + Math.floor(c / spec.blockSize)];
            const err = Math.abs(ref[r * m.k + c] - m.w[r * m.k + c]);
            assert.ok(err <= step / 2 + 1e-6 * step + 1e-12, `${m.name}[${r}, ${c}]: |ŵ − w| = ${err} above half a step ${step / 2}`);
          }
        }
        const rows = 3;
        const x = Float32Array.from({ length: rows * m.k }, () => 2 * rand());
        const expected = new Float64Array(rows * m.n);
        for (let t = 0; t < rows; t++) for (let n = 0; n < m.n; n++) {
          let s = 0;
          for (let c = 0; c < m.k; c++) s += x[t * m.k + c] * ref[n * m.k + c];
          expected[t * m.n + n] = s;
        }
        // Codes as an input: float32 compute; error of a float32 dot product of length K.
        const exact = await runOp(q, x, rows, 0, false);
        for (let i = 0; i < ref.length; i++) assert.equal(exact.w[i], mine[i], `${m.name}: in-graph dequantisation at ${i}`);
        for (let t = 0; t < rows; t++) for (let n = 0; n < m.n; n++) {
          let mag = 0;
          for (let c = 0; c < m.k; c++) mag += Math.abs(x[t * m.k + c] * ref[n * m.k + c]);
          const e = Math.abs(exact.y[t * m.n + n] - expected[t * m.n + n]);
          assert.ok(e <= 1e-6 * mag + 1e-7, `${m.name}: float32 MatMulNBits off by ${e} (Σ|x·ŵ| = ${mag})`);
        }
        // Codes as an initializer at accuracy_level 4: x is quantised to int8 per block of
        // blockSize values (scale max|x_block| / 127), so each product moves by at most half
        // that step times |ŵ| (one step allowed, for the kernel's own block choice).
        const int8 = await runOp(q, x, rows, 4, true);
        for (let t = 0; t < rows; t++) for (let n = 0; n < m.n; n++) {
          let bound = 1e-5;
          for (let b = 0; b < kBlocks; b++) {
            let amax = 0;
            for (let c = b * spec.blockSize; c < Math.min(m.k, (b + 1) * spec.blockSize); c++) amax = Math.max(amax, Math.abs(x[t * m.k + c]));
            for (let c = b * spec.blockSize; c < Math.min(m.k, (b + 1) * spec.blockSize); c++) bound += (amax / 127) * Math.abs(ref[n * m.k + c]);
          }
          const e = Math.abs(int8.y[t * m.n + n] - expected[t * m.n + n]);
          assert.ok(e <= bound, `${m.name}: accuracy_level 4 MatMulNBits off by ${e}, bound ${bound}`);
        }
      }
    });
  }
}

test('quantise: an all-zero block and exact zeros dequantise to 0; a constant block keeps its value', () => {
  const k = 40;
  const w = new Float32Array(2 * k);
  for (let c = 0; c < k; c++) w[k + c] = c < 32 ? 0.25 : 0;
  for (const bits of [4, 8] as const) {
    const q = quantiseMatrix(w, 2, k, { bits, blockSize: 32 });
    const d = dequantiseMatrix(q);
    for (let c = 0; c < k; c++) assert.equal(d[c], 0);
    for (let c = 32; c < k; c++) assert.equal(d[k + c], 0);
    for (let c = 0; c < 32; c++) assert.ok(Math.abs(d[k + c] - 0.25) < 1e-7, `int${bits}: ${d[k + c]}`);
  }
});

test('quantise: bad specs and values are refused with a clear error', () => {
  const w = new Float32Array(64).fill(0.5);
  assert.throws(() => quantiseMatrix(w, 2, 32, { bits: 3 as 4, blockSize: 32 }), (e: unknown) => e instanceof QuantError && /4 or 8 bits/.test(e.message));
  assert.throws(() => quantiseMatrix(w, 2, 32, { bits: 8, blockSize: 24 }), /power of two ≥ 16/);
  assert.throws(() => quantiseMatrix(w, 2, 32, { bits: 8, blockSize: 8 }), /power of two ≥ 16/);
  assert.throws(() => quantiseMatrix(w, 3, 32, { bits: 8, blockSize: 32 }), /needs 96 values, not 64/);
  const bad = w.slice();
  bad[37] = Number.NaN;
  assert.throws(() => quantiseMatrix(bad, 2, 32, { bits: 4, blockSize: 16 }), /row 1, column 5: NaN cannot be quantised/);
});
