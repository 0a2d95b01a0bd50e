// The benchmark runner on the random-weight fixture: every method is scored on effectiveness,
// generalisation to its group and specificity, from the unpatched model each time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { ModelRuntime } from '../../src/runtime/runtime';
import { RepairModel } from '../../src/repair/engine';
import { BenchContext, benchMethod, loadBenchData } from '../../src/eval/bench';
import { assess } from '../../src/repair/engine';
import { makeExample } from '../../src/repair/teacher';
import { showCompletion, showsDesired, type CompletionReplay } from '../../src/runtime/completion';

/** Short completions without healing keep the random-weight fixture's targets small. */
const REPLAY: CompletionReplay = { heal: false, stop: 'line', maxTokens: 6 };

test('bench: STAR, SGD and MINT each repair every target from the unpatched model and are scored', async () => {
  const folder = loadModelFolder(join(__dirname, '..', 'fixtures', 'models', 'llama'));
  const runtime = new ModelRuntime(folder.config, folder.weights);
  // Correct samples: what the editor shows after a few prompts (the model's own completion).
  const correct: object[] = [];
  for (const p of ['def f(n):', 'x = 1', 'return', 'import', 'if x:', 'y = 2', 'class A:', 'for i in']) {
    const shown = await showCompletion(runtime, folder.tokenizer, p, REPLAY);
    const rest = shown.generation.text.slice(shown.text.length);
    if (shown.text.trim() === '') continue;
    // Random weights often emit half a UTF-8 character, which no text can ask for again: skip those.
    try {
      makeExample(folder.tokenizer, p, shown.text, 128, { replay: REPLAY, after: rest || undefined });
    } catch {
      continue;
    }
    if (await showsDesired(runtime, folder.tokenizer, p, shown.text, REPLAY)) correct.push({ id: p, split: 'test', prompt: p, desired: shown.text, ...(rest ? { after: rest } : {}) });
  }
  assert.ok(correct.length >= 2);
  const failures = [
    { id: 'a1', group: 'g0', split: 'test', prompt: 'def f(n):\n    return', desired: ' n + 1' },
    { id: 'a2', group: 'g0', split: 'test', prompt: 'def g(n):\n    return', desired: ' n + 1' },
    { id: 'b1', group: 'g1', split: 'test', prompt: 'x = ', desired: '[1]' },
    { id: 'v1', group: 'g2', split: 'validation', prompt: 'y = ', desired: '(2)' },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'star-bench-'));
  writeFileSync(join(dir, 'failures.jsonl'), failures.map((f) => JSON.stringify(f)).join('\n'));
  writeFileSync(join(dir, 'correct.jsonl'), correct.map((f) => JSON.stringify(f)).join('\n'));
  const ctx = new BenchContext(new RepairModel(runtime, folder.weights), folder.tokenizer, loadBenchData(dir), { split: 'test', perGroup: 5, regressionSamples: 10, replay: REPLAY });
  assert.equal(ctx.regression.length, correct.length, 'every correct sample is right the editor\'s way');
  const defaults = { star: { eta: 1 }, sgd: { eta: 1 }, mint: { f: 0.3 } };
  const star = await benchMethod(ctx, 'star', { method: 'star', mode: 'batch', select: 'global', epochs: 30 }, defaults);
  assert.equal(star.repaired, 3);
  assert.equal(star.effectiveness.fixed, 3, 'every planted failure is fixed the editor\'s way');
  assert.equal(star.fixedIds.length, 3);
  assert.equal(star.generalisation.total, 2, 'each g0 failure is scored on the other one');
  assert.equal(star.specificity.total, 3 * correct.length);
  assert.ok(star.msPerFailure > 0 && star.neurons > 0 && star.neurons <= 64);
  const sgd = await benchMethod(ctx, 'sgd', { method: 'sgd', mode: 'batch', select: 'global' }, defaults);
  assert.equal(sgd.neurons, folder.config.layers * folder.config.intermediate);
  const mint = await benchMethod(ctx, 'mint', { method: 'mint', mode: 'iter', select: 'global' }, defaults);
  assert.equal(mint.repaired, 3);
  // Each repair starts from the unpatched model: the before-assessments are unchanged afterwards.
  const again = await assess(runtime, ctx.failures[0].example);
  assert.equal(again.allCorrect, false);
});
