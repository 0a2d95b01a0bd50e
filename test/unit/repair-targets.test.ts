// "Fixed" means what the editor shows (issue 13): a failure's target is the token sequence the
// editor's completion walks (healing, the line end in context, the budget), so teacher forcing and
// the shown completion agree; a failure whose plain teacher-forced tokens are right but whose shown
// completion is wrong is repaired, not refused; old stored failures still load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModelFolder } from '../../src/model';
import { validateFailure } from '../../src/failures/failure';
import { assess, RepairModel } from '../../src/repair/engine';
import { prepareFailures, runRepair } from '../../src/repair/run';
import { makeExample } from '../../src/repair/teacher';
import { DEFAULT_REPLAY, showCompletion, showsDesired } from '../../src/runtime/completion';
import { ModelRuntime } from '../../src/runtime/runtime';

const folder = loadModelFolder(join(__dirname, '..', '..', 'models', 'tiny-coder'));
const tok = folder.tokenizer;
const ctx = folder.config.maxPositions;
const runtime = new ModelRuntime(folder.config, folder.weights, { threads: 1 });

const PROMPTS = [
  'import os\nimport ',
  'def add(a, b):\n    return ',
  'for line in ',
  'class Point:\n    def __init__(self, x, y):\n        self.',
  'if __name__ == "__main__":\n    ',
  'with open(path) as f:\n    data = f.',
];

test('the replayed target ends where the editor ends: the line break as the model tokenises it in context', () => {
  const ex = makeExample(tok, 'x = 1\n', 'y = 2', ctx, { replay: DEFAULT_REPLAY, after: '\n    z = 3' });
  const text = tok.decode(ex.desired);
  assert.ok(text.includes('y = 2'), `the target spells the desired text (${JSON.stringify(text)})`);
  assert.ok(/\n/.test(tok.tokenText(ex.desired.at(-1)!)), 'the last target token carries the line break');
  assert.equal(text.slice(text.indexOf('y = 2') + 5, text.indexOf('y = 2') + 6), '\n', 'nothing between the desired text and the line end');
  // Plain teacher forcing (docs/algorithm.md "Targets" as written) has no end token.
  const plain = makeExample(tok, 'x = 1\n', 'y = 2', ctx);
  assert.ok(!tok.decode(plain.desired).includes('\n'));
});

test('token healing: the first target tokens spell the healed text back and may only be what healing can choose', () => {
  const ex = makeExample(tok, 'import o', 's', ctx, { replay: DEFAULT_REPLAY });
  assert.ok(ex.allowed[0] !== null, 'the first target position is constrained');
  assert.ok(ex.allowed[0]!.includes(ex.desired[0]));
  for (const id of ex.allowed[0]!) {
    const t = tok.tokenText(id);
    assert.ok(' o'.startsWith(t) || t.startsWith(' o'), `${JSON.stringify(t)} agrees with the healed " o"`);
  }
  assert.equal(ex.allowed.at(-1), null, 'after the healed text the choice is free');
});

test('teacher forcing over the replayed target agrees with the completion the editor shows', async () => {
  let checked = 0;
  for (const prompt of PROMPTS) {
    const shown = await showCompletion(runtime, tok, prompt, DEFAULT_REPLAY);
    // A completion the budget cut has no room for one more character.
    if (shown.text.trim() === '' || !shown.ended) continue;
    const after = shown.generation.text.slice(shown.text.length) || undefined;
    // The model's own completion: right both ways.
    const own = makeExample(tok, prompt, shown.text, ctx, { replay: DEFAULT_REPLAY, after });
    assert.equal((await assess(runtime, own)).allCorrect, true, `own completion after ${JSON.stringify(prompt)}`);
    assert.equal(await showsDesired(runtime, tok, prompt, shown.text, DEFAULT_REPLAY), true);
    // The document may go on with another line break than the model's: the editor shows the same line.
    const elsewhere = makeExample(tok, prompt, shown.text, ctx, { replay: DEFAULT_REPLAY, after: '\n\n\n        zz' });
    assert.equal((await assess(runtime, elsewhere)).allCorrect, true, `own completion, another line end, after ${JSON.stringify(prompt)}`);
    // Another text: wrong both ways.
    const other = shown.text + 'q';
    const ex = makeExample(tok, prompt, other, ctx, { replay: DEFAULT_REPLAY });
    assert.equal((await assess(runtime, ex)).allCorrect, await showsDesired(runtime, tok, prompt, other, DEFAULT_REPLAY));
    checked++;
  }
  assert.ok(checked >= 4, `checked ${checked} prompts`);
});

test('a failure right under plain teacher forcing but wrong in the editor is repaired, not refused', async () => {
  // A prefix of the model's own line: every token of it is the argmax, but the editor shows more.
  let found: { prompt: string; desired: string } | null = null;
  for (const prompt of PROMPTS) {
    const shown = await showCompletion(runtime, tok, prompt, DEFAULT_REPLAY);
    const words = shown.text.split(/(?=[ .(])/);
    if (words.length < 2) continue;
    const desired = words.slice(0, -1).join('');
    const plain = makeExample(tok, prompt, desired, ctx);
    if (desired.trim() && (await assess(runtime, plain)).allCorrect) {
      found = { prompt, desired };
      break;
    }
  }
  assert.ok(found, 'some prompt gives such a failure');
  assert.equal(await showsDesired(runtime, tok, found.prompt, found.desired, DEFAULT_REPLAY), false, 'the editor shows more than the desired text');
  const { prepared } = prepareFailures(tok, [{ id: 'f', ...found }], ctx);
  assert.equal((await assess(runtime, prepared[0].example)).allCorrect, false, 'the replayed target (with its line end) fails');
  const model = new RepairModel(new ModelRuntime(folder.config, folder.weights, { threads: 1 }), folder.weights);
  const result = await runRepair(model, tok, folder.fingerprint, prepared, { method: 'star', mode: 'batch', select: 'dense', eta: 0.1, epochs: 20 });
  assert.deepEqual(result.fixed, ['f'], 'after the repair the editor shows the desired text');
  assert.equal(await showsDesired(model.runtime, tok, found.prompt, found.desired, DEFAULT_REPLAY), true);
  await model.runtime.release();
});

test('failures stored before replay settings existed still load, and replay the extension\'s defaults', () => {
  const old = { id: 'a', createdAt: '2026-11-20T10:00:00.000Z', source: 'rejected', languageId: 'python', prompt: 'import ', desired: 're', status: 'pending' };
  const f = validateFailure(old);
  assert.equal(f.replay, undefined);
  const { prepared } = prepareFailures(tok, [f], ctx);
  assert.deepEqual(prepared[0].replay, DEFAULT_REPLAY);
  const withReplay = validateFailure({ ...old, after: '\nimport os', replay: { heal: false, stop: 'block', maxTokens: 64 } });
  assert.deepEqual(withReplay.replay, { heal: false, stop: 'block', maxTokens: 64 });
  assert.throws(() => validateFailure({ ...old, replay: { heal: true, stop: 'page', maxTokens: 32 } }), /replay/);
});
