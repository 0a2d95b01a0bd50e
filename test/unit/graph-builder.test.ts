// Every op's vector-Jacobian rule, checked against float64 central finite differences of the same
// graph run by onnxruntime: for a random cotangent c, d(c·f(x))/dx from grad() vs. finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph, type Value } from '../../src/graph/builder';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

interface Case {
  name: string;
  inputs: Record<string, number[]>; // shapes
  build: (g: Graph, xs: Record<string, Value>) => Value;
  positive?: boolean;
}

const cases: Case[] = [
  { name: 'add broadcast', inputs: { a: [3, 4], b: [4] }, build: (g, { a, b }) => g.add(a, b) },
  { name: 'sub broadcast keepdim', inputs: { a: [3, 4], b: [3, 1] }, build: (g, { a, b }) => g.sub(a, b) },
  { name: 'mul', inputs: { a: [2, 3, 4], b: [3, 4] }, build: (g, { a, b }) => g.mul(a, b) },
  { name: 'div', inputs: { a: [3, 4], b: [3, 4] }, build: (g, { a, b }) => g.div(a, b), positive: true },
  { name: 'exp log sqrt reciprocal', inputs: { a: [5] }, build: (g, { a }) => g.reciprocal(g.sqrt(g.log(g.add(g.exp(a), g.scalar(1))))), positive: true },
  { name: 'tanh sigmoid neg', inputs: { a: [6] }, build: (g, { a }) => g.add(g.neg(g.tanh(a)), g.mul(g.sigmoid(a), a)) },
  { name: 'matmul batched', inputs: { a: [2, 3, 4], b: [2, 4, 5] }, build: (g, { a, b }) => g.matmul(a, b) },
  { name: 'matmul 2d', inputs: { a: [3, 4], b: [4, 2] }, build: (g, { a, b }) => g.matmul(a, b) },
  { name: 'gemm transB with bias', inputs: { a: [3, 4], w: [5, 4], c: [5] }, build: (g, { a, w, c }) => g.gemm(a, w, c, true) },
  { name: 'gemm plain', inputs: { a: [3, 4], w: [4, 5] }, build: (g, { a, w }) => g.gemm(a, w, undefined, false) },
  { name: 'reshape transpose', inputs: { a: [4, 6] }, build: (g, { a }) => g.transpose(g.reshape(a, [0, 2, 3]), [1, 0, 2]) },
  { name: 'split concat', inputs: { a: [3, 6] }, build: (g, { a }) => { const [p, q] = g.split(a, 1, [2, 4]); return g.concat([g.mul(q, q), p], 1); } },
  { name: 'split unused part', inputs: { a: [3, 6] }, build: (g, { a }) => g.split(a, 1, [2, 4])[1] },
  { name: 'reduceSum / reduceMean', inputs: { a: [3, 4] }, build: (g, { a }) => g.add(g.reduceSum(a, [0], false), g.reduceMean(g.mul(a, a), [0], false)) },
  { name: 'softmax', inputs: { a: [3, 5] }, build: (g, { a }) => g.softmax(a, -1) },
  { name: 'logSoftmax', inputs: { a: [3, 5] }, build: (g, { a }) => g.logSoftmax(a, 1) },
  { name: 'unsqueeze squeeze', inputs: { a: [3, 4] }, build: (g, { a }) => g.squeeze(g.mul(g.unsqueeze(a, 0), g.unsqueeze(a, 0)), 0) },
  { name: 'gather rows', inputs: { a: [5, 3] }, build: (g, { a }) => g.gather(a, g.ints([4, 0, 4]), 0) },
  { name: 'gather columns', inputs: { a: [3, 5] }, build: (g, { a }) => g.gather(a, g.ints([1, 3]), 1) },
  { name: 'gatherElements', inputs: { a: [3, 5] }, build: (g, { a }) => g.gatherElements(a, g.constant([0, 4, 2], [3, 1], 'int64'), 1) },
];

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float64Array>> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const out = await session.run(feeds);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float64Array]));
}

for (const c of cases) {
  test(`vjp: ${c.name}`, async () => {
    const r = rng(c.name.length * 7919);
    const names = Object.keys(c.inputs);
    const values: Record<string, Float64Array> = {};
    for (const n of names) {
      const size = c.inputs[n].reduce((a, b) => a * b, 1);
      values[n] = Float64Array.from({ length: size }, () => (c.positive ? 0.5 + r() : 2 * r()));
    }
    // f(x) = sum(cot ⊙ op(x)) with a fixed random cotangent, so every output entry matters.
    const build = () => {
      const g = new Graph('float64');
      const xs = Object.fromEntries(names.map((n) => [n, g.input(n, 'float64', c.inputs[n])]));
      const y = c.build(g, xs);
      const cot = g.input('cot', 'float64', y.shape);
      const loss = g.reduceSum(g.mul(y, cot), y.shape.map((_, i) => i), false);
      return { g, xs, y, loss };
    };
    const { g, xs, y, loss } = build();
    const grads = g.grad(loss, names.map((n) => xs[n]));
    g.output(loss, 'loss');
    grads.forEach((gv, i) => g.output(gv, `grad_${names[i]}`));
    const yShape = y.shape as number[];
    const cotData = Float64Array.from({ length: yShape.reduce((a, b) => a * b, 1) }, () => 2 * r());
    const feeds = (vals: Record<string, Float64Array>) => ({
      ...Object.fromEntries(names.map((n) => [n, new ort.Tensor('float64', vals[n], c.inputs[n])])),
      cot: new ort.Tensor('float64', cotData, yShape),
    });
    const bytes = g.toModel();
    const analytic = await run(bytes, feeds(values));
    const h = 1e-6;
    for (const n of names) {
      const ga = analytic[`grad_${n}`];
      for (let k = 0; k < values[n].length; k++) {
        const plus = { ...values, [n]: Float64Array.from(values[n]) };
        const minus = { ...values, [n]: Float64Array.from(values[n]) };
        plus[n][k] += h;
        minus[n][k] -= h;
        const fp = (await run(bytes, feeds(plus))).loss[0];
        const fm = (await run(bytes, feeds(minus))).loss[0];
        const fd = (fp - fm) / (2 * h);
        assert.ok(Math.abs(fd - ga[k]) <= 1e-6 * Math.max(1, Math.abs(fd)), `${c.name} d/d${n}[${k}]: analytic ${ga[k]} vs finite difference ${fd}`);
      }
    }
  });
}

test('grad refuses a loss that does not depend on wrt', () => {
  const g = new Graph('float64');
  const a = g.input('a', 'float64', [2]);
  const b = g.input('b', 'float64', [2]);
  assert.throws(() => g.grad(g.reduceSum(a, [0], false), [b]), /does not depend/);
});

test('erf gradient (float32 graph) equals 2/sqrt(pi)·exp(-x²)', async () => {
  const g = new Graph('float32');
  const a = g.input('a', 'float32', [5]);
  const [ga] = g.grad(g.reduceSum(g.erf(a), [0], false), [a]);
  g.output(ga, 'ga');
  const x = Float32Array.from([-2, -0.5, 0, 0.3, 1.7]);
  const session = await ort.InferenceSession.create(g.toModel());
  const out = (await session.run({ a: new ort.Tensor('float32', x, [5]) })).ga.data as Float32Array;
  x.forEach((v, i) => assert.ok(Math.abs(out[i] - (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v)) < 1e-6));
});
