// The repair drivers on the random-weight fixture: teacher forcing, planted failures repaired by
// STAR in every selection mode, SGD and MINT running on the same runtime, bad input refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime } from '../../src/runtime/runtime';
import { assess, PatchAccumulator, RepairModel } from '../../src/repair/engine';
import { combinePatches } from '../../src/repair/patch';
import { repairStar } from '../../src/repair/star';
import { repairMint, repairSgd } from '../../src/repair/baselines';
import { makeExample, RepairError } from '../../src/repair/teacher';
import { argmax } from '../../src/model/finite';
import { PAPER_DEFAULTS, prepareFailures, runRepair, type MethodDefaults } from '../../src/repair/run';

const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'llama'));
const fresh = () => new RepairModel(new ModelRuntime(folder.config, folder.weights), folder.weights);
const planted = () => makeExample(folder.tokenizer, 'def f(n):\n    return', ' n + 1', folder.config.maxPositions);

test('teacher forcing: the prompt/target boundary and the positions that predict each desired token', () => {
  const ex = planted();
  const all = folder.tokenizer.encode('def f(n):\n    return n + 1');
  assert.deepEqual([...ex.ids, ex.nextTokens[ex.nextTokens.length - 1]], all);
  assert.deepEqual(ex.desired, all.slice(all.length - ex.desired.length));
  assert.equal(folder.tokenizer.decode(ex.desired), ' n + 1');
  ex.targetPositions.forEach((p, k) => assert.equal(ex.nextTokens[p], ex.desired[k]));
});

test('teacher forcing: bad failures get typed errors', () => {
  const ctx = folder.config.maxPositions;
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof RepairError);
      return e.code;
    }
    return 'no error';
  };
  assert.equal(code(() => makeExample(folder.tokenizer, '', 'x', ctx)), 'empty-prompt');
  assert.equal(code(() => makeExample(folder.tokenizer, 'x = ', '', ctx)), 'empty-desired');
  assert.equal(code(() => makeExample(folder.tokenizer, 'x = ', ' y'.repeat(ctx + 5), ctx)), 'too-long');
  // A long prompt is cut from the left to fit the context, keeping the target whole.
  const long = makeExample(folder.tokenizer, 'a = 1\n'.repeat(200), 'b', ctx);
  assert.ok(long.truncated > 0 && long.ids.length <= ctx);
});

test('an already-correct failure is reported, not patched', async () => {
  const model = fresh();
  const prompt = 'def f(n):';
  const ids = folder.tokenizer.encode(prompt);
  const { logits } = await model.runtime.decode(ids);
  const own = folder.tokenizer.decode([argmax(logits)]);
  const ex = makeExample(folder.tokenizer, prompt, own, folder.config.maxPositions);
  assert.ok((await assess(model.runtime, ex)).allCorrect, 'the model\'s own next token is its teacher-forced argmax');
  await assert.rejects(repairStar(model, [ex]), (e: unknown) => e instanceof RepairError && e.code === 'already-correct');
  await assert.rejects(repairSgd(model, [ex]), (e: unknown) => e instanceof RepairError && e.code === 'already-correct');
});

for (const select of ['global', 'dense', 'layer', 'one-layer'] as const) {
  test(`STAR (${select}) repairs a planted failure on the random-weight fixture`, async () => {
    const model = fresh();
    const ex = planted();
    const out = await repairStar(model, [ex], { select, eta: 1, epochs: 20, fraction: 1 });
    assert.equal(out.before[0].allCorrect, false);
    assert.equal(out.after[0].allCorrect, true, `token accuracy after ${out.after[0].accuracy}`);
    assert.ok(out.after[0].loss < out.before[0].loss);
    if (select === 'layer') assert.equal(new Set(out.acc.toLayers().map((l) => l.layer)).size, 1);
    if (select === 'global') assert.ok(out.acc.neurons <= 64);
    // The runtime now carries the patch; the same patch stacked on a fresh runtime gives the same result.
    const again = fresh();
    again.runtime.setPatch(combinePatches([{ layers: out.acc.toLayers() }], folder.config.hidden));
    assert.equal((await assess(again.runtime, ex)).allCorrect, true);
  });
}

test('STAR batch mode repairs two failures together; iter mode runs token by token', async () => {
  const model = fresh();
  const a = planted();
  const b = makeExample(folder.tokenizer, 'def g(x):\n    return', ' x', folder.config.maxPositions);
  const out = await repairStar(model, [a, b], { eta: 1, epochs: 20 });
  assert.deepEqual(out.after.map((x) => x.allCorrect), [true, true]);
  const iter = await repairStar(fresh(), [a], { mode: 'iter', eta: 0.3, epochs: 10 });
  assert.ok(iter.after[0].accuracy > iter.before[0].accuracy);
});

test('STAR+ line search fixes the planted failure at the paper default η', async () => {
  const out = await repairStar(fresh(), [planted()], { lineSearch: true });
  assert.equal(out.after[0].allCorrect, true);
});

test('SGD changes every neuron and lowers the loss; MINT patches at most 10 neurons per token', async () => {
  const sgd = await repairSgd(fresh(), [planted()], { eta: 1 });
  assert.equal(sgd.acc.neurons, folder.config.layers * folder.config.intermediate);
  assert.equal(sgd.after[0].allCorrect, true);
  const mint = await repairMint(fresh(), [planted()], { f: 0.5 });
  assert.ok(mint.acc.neurons <= 10 * planted().desired.length);
  assert.ok(mint.after[0].loss <= mint.before[0].loss + 1e-6 || mint.acc.neurons === 0);
});

test('cancelling a repair throws a cancelled RepairError', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(repairStar(fresh(), [planted()], { eta: 1 }, { signal: ac.signal }), (e: unknown) => e instanceof RepairError && e.code === 'cancelled');
});

test('PatchAccumulator adds deltas per (layer, row) and exports sorted rows', () => {
  const acc = new PatchAccumulator(2);
  acc.add(1, 5, [1, 2]);
  acc.add(1, 3, [0, 1], 2);
  acc.add(1, 5, [1, 1], -1);
  const layers = acc.toLayers();
  assert.deepEqual(layers[0].rows, [3, 5]);
  assert.deepEqual([...layers[0].deltas], [0, 2, 0, 1]);
  const stacked = combinePatches([new Map([[1, { rows: [5], deltas: Float32Array.from([10, 10]) }]]), { layers: acc.toLayers() }], 2);
  assert.deepEqual([...stacked.get(1)!.deltas], [0, 2, 10, 11]);
});

test('PatchAccumulator: lent views never change under later writes; reclaimed, writes go in place; remove and clone keep the rest', () => {
  const acc = new PatchAccumulator(2);
  acc.addRows(0, [4, 1], [1, 1, 2, 2]);
  const lent = acc.lend();
  assert.deepEqual(lent.get(0)!.rows, [1, 4], 'lent rows are ascending');
  assert.deepEqual([...lent.get(0)!.deltas], [2, 2, 1, 1]);
  acc.addRows(0, [1, 7], [10, 10, 5, 5]);
  acc.add(0, 4, [1, 0], 3);
  assert.deepEqual([...lent.get(0)!.deltas], [2, 2, 1, 1], 'a write while lent copied the layer first');
  assert.deepEqual(acc.toLayers(), [{ layer: 0, rows: [1, 4, 7], deltas: Float32Array.from([12, 12, 4, 1, 5, 5]) }]);
  const again = acc.lend();
  acc.reclaim();
  acc.add(0, 7, [1, 1]);
  assert.deepEqual([...again.get(0)!.deltas], [12, 12, 4, 1, 6, 6], 'reclaimed: the write went into the same buffer');
  const copy = acc.clone();
  acc.remove(0, 1);
  assert.deepEqual(acc.toLayers(), [{ layer: 0, rows: [4, 7], deltas: Float32Array.from([4, 1, 6, 6]) }]);
  assert.deepEqual([...acc.get(0, 7)], [6, 6]);
  assert.deepEqual([...acc.get(0, 1)], [0, 0]);
  assert.equal(copy.neurons, 3);
  assert.throws(() => acc.addRows(0, [1], [1]), RangeError);
});

test('RepairModel.apply lends the accumulator over an empty base and lets go on apply(null); over a base it computes with a sum', async () => {
  const model = fresh();
  const acc = new PatchAccumulator(folder.config.hidden);
  acc.add(1, 3, new Float64Array(folder.config.hidden).fill(0.5));
  const probe = async () => (await model.runtime.decode([5, 6, 7])).logits.slice();
  const plain = await probe();
  model.apply(acc);
  const patched = await probe();
  assert.notDeepEqual(patched, plain);
  acc.add(1, 3, new Float64Array(folder.config.hidden).fill(0.5)); // while lent: the runtime keeps its patch
  assert.deepEqual(await probe(), patched);
  model.apply(null);
  assert.deepEqual(await probe(), plain);
  acc.add(1, 3, new Float64Array(folder.config.hidden).fill(-0.5)); // in place again: back to 0.5
  model.apply(acc);
  assert.deepEqual(await probe(), patched);
  const based = new RepairModel(model.runtime, folder.weights, new Map([[1, { rows: [3], deltas: new Float32Array(folder.config.hidden).fill(0.25) }]]));
  const half = new PatchAccumulator(folder.config.hidden);
  half.add(1, 3, new Float64Array(folder.config.hidden).fill(0.25));
  based.apply(half);
  assert.deepEqual(await probe(), patched, 'base 0.25 + repair 0.25 = the 0.5 patch');
});

test('runRepair: a request without a selection takes the model\'s tuned one, else the first that fits (dense here, the authors\' default)', async () => {
  const { prepared } = prepareFailures(folder.tokenizer, [{ id: 'f', prompt: 'def f(n):\n    return', desired: ' n + 1' }], folder.config.maxPositions);
  const tuned: MethodDefaults = { ...PAPER_DEFAULTS, star: { eta: 1, select: 'global' } };
  const global = await runRepair(fresh(), folder.tokenizer, 'fp', prepared, { method: 'star', mode: 'batch' }, tuned);
  assert.equal(global.patch.options['select'], 'global');
  const dense = await runRepair(fresh(), folder.tokenizer, 'fp', prepared, { method: 'star', mode: 'batch', eta: 1 });
  assert.equal(dense.patch.options['select'], 'dense');
  const asked = await runRepair(fresh(), folder.tokenizer, 'fp', prepared, { method: 'star', mode: 'batch', select: 'layer' }, tuned);
  assert.equal(asked.patch.options['select'], 'layer');
});

test('runRepair refuses a patch too large to send and store before any work, and defaults a real model to global', async () => {
  const { prepared } = prepareFailures(folder.tokenizer, [{ id: 'f', prompt: 'def f(n):\n    return', desired: ' n + 1' }], folder.config.maxPositions);
  // Qwen2.5-Coder-1.5B's shape over the fixture's runtime: the check reads the shape only, so a
  // refused request never reaches the runtime (which would fail on the fixture's smaller arrays).
  const model = fresh();
  const big = { ...folder.config, layers: 28, hidden: 1536, intermediate: 8960 };
  let touched = 0;
  const shaped = new Proxy(model, {
    get: (t, k) => (k === 'config' ? big : k === 'apply' || k === 'runtime' ? (touched++, Reflect.get(t, k)) : Reflect.get(t, k)),
  });
  const tooLarge = (e: unknown) => e instanceof RepairError && e.code === 'patch-too-large' && /: a patch of [0-9,]+ delta values is more than the 8,388,608 one patch may hold/.test(e.message);
  await assert.rejects(runRepair(shaped, folder.tokenizer, 'fp', prepared, { method: 'star', select: 'dense' }), tooLarge);
  await assert.rejects(runRepair(shaped, folder.tokenizer, 'fp', prepared, { method: 'star', select: 'layer' }), tooLarge);
  await assert.rejects(runRepair(shaped, folder.tokenizer, 'fp', prepared, { method: 'sgd' }), tooLarge);
  await assert.rejects(runRepair(shaped, folder.tokenizer, 'fp', prepared, { method: 'star', select: 'global', topK: 6000 }), tooLarge);
  assert.equal(touched, 0, 'nothing ran');
  // The same shape without a selection: global (top 64), which fits — it gets past the check to the runtime.
  const outcome: unknown = await runRepair(shaped, folder.tokenizer, 'fp', prepared, { method: 'star' }).then(() => null, (e: unknown) => e);
  assert.ok(!tooLarge(outcome) && touched > 0, String(outcome));
});

test('specificity-preserving STAR: preserved samples join the system and the loss, and stay right', async () => {
  const model = fresh();
  // Samples the model completes right: its own next token after a few prompts.
  const keep = [];
  for (const p of ['x = 1', 'return', 'import', 'def f(n):', 'if x:', 'y = 2', 'class A:', 'for i in', 'while', 'print(']) {
    const { logits } = await model.runtime.decode(folder.tokenizer.encode(p));
    try {
      const ex = makeExample(folder.tokenizer, p, folder.tokenizer.decode([argmax(logits)]), folder.config.maxPositions);
      if ((await assess(model.runtime, ex)).allCorrect) keep.push(ex);
    } catch {
      // Random weights often emit half a UTF-8 character, which no text asks for again.
    }
  }
  assert.ok(keep.length >= 2, `${keep.length} samples the model gets right`);
  const out = await repairStar(model, [planted()], { eta: 1, epochs: 20, preserveRows: 16 }, {}, keep);
  assert.equal(out.after[0].allCorrect, true, 'the failure is fixed');
  model.apply(out.acc);
  for (const ex of keep) assert.equal((await assess(model.runtime, ex)).allCorrect, true, 'a preserved sample is still right');
  await assert.rejects(repairStar(fresh(), [planted()], { preserveRows: -1 }), (e: unknown) => e instanceof RepairError && e.code === 'invalid-option');
});
