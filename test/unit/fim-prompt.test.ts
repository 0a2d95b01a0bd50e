// Fill-in-the-middle prompts (issue 15, items 1 and 3): the format table's detection from a
// tokenizer's special tokens (synthetic tokenizers for each family, Qwen's real tokenizer, the
// embedded model), the setting's override, PSM/SPM layouts (the PSM line split in detail:
// fim-layout.test.ts), the prompt window of a large file, generate() stopping at FIM stop tokens,
// and a failure carrying its prefix, suffix and format that teacher forcing turns into the same
// token sequence the completion decodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/model/tokenizer';
import { detectFim, FimError, fimIds, resolveFim } from '../../src/runtime/fim';
import { preparePrompt, windowPrompt } from '../../src/runtime/prompt';
import { generate } from '../../src/runtime/generate';
import { readReplay } from '../../src/runtime/replay';
import { makeExample, RepairError } from '../../src/repair/teacher';
import { parseFailuresJsonl, validateFailure } from '../../src/failures/failure';
import { fimModelFolder, qwenTokenizer, scriptedRuntime } from './fim-helpers';

const embedded = loadTokenizer(join(__dirname, '..', '..', 'models', 'tiny-coder'));

test('detectFim: each family from its special tokens; the embedded model has StarCoder\'s (trained on PSM and SPM)', () => {
  for (const name of ['qwen', 'starcoder', 'codellama', 'deepseek'] as const) {
    assert.equal(detectFim(fimModelFolder(name).tokenizer)?.name, name);
  }
  assert.equal(detectFim(fimModelFolder(null).tokenizer), null);
  assert.equal(detectFim(fimModelFolder(null).tokenizer), null, 'no FIM tokens: prefix-only prompts');
  assert.equal(detectFim(embedded)?.name, 'starcoder');
  assert.deepEqual(resolveFim(embedded), { format: 'starcoder', order: 'spm' });
  const ids = fimIds(embedded, { format: 'starcoder', order: 'spm' });
  assert.deepEqual([ids.prefix, ids.middle, ids.suffix], [1024, 1025, 1026], 'the ids tools/train-tiny-coder/bpe.py gives them');
  assert.ok(ids.stops.includes(1023) && ids.stops.includes(1027), 'a middle ends at <|endoftext|> (and never runs into <fim_pad>)');
});

test('Qwen\'s real tokenizer: Qwen2.5-Coder format, PSM (the order it was trained on), stops at <|endoftext|> and <|file_sep|>', () => {
  const tok = qwenTokenizer();
  assert.deepEqual(resolveFim(tok), { format: 'qwen', order: 'psm' });
  const ids = fimIds(tok, { format: 'qwen', order: 'psm' });
  assert.deepEqual([ids.prefix, ids.suffix, ids.middle], [151659, 151661, 151660]);
  assert.ok(ids.stops.includes(151643) && ids.stops.includes(151664));
});

test('the setting overrides: off, a forced order, and a format the tokenizer lacks is refused with what to set', () => {
  const tok = fimModelFolder('starcoder').tokenizer;
  assert.deepEqual(resolveFim(tok), { format: 'starcoder', order: 'spm' }, 'StarCoder was trained on both; SPM keeps the prefix at the end');
  assert.deepEqual(resolveFim(tok, 'auto', 'psm'), { format: 'starcoder', order: 'psm' });
  assert.equal(resolveFim(tok, 'off'), null);
  assert.throws(() => resolveFim(tok, 'codellama'), (e: unknown) => e instanceof FimError && /starRepair\.completions\.fim/.test(e.message));
});

test('preparePrompt: PSM <pre> lines before <suf> suffix <mid> typed part and SPM <pre> <suf> suffix <mid> prefix, with the healed end owed', () => {
  const tok = fimModelFolder('starcoder').tokenizer;
  const ids = fimIds(tok, { format: 'starcoder', order: 'psm' });
  const psm = preparePrompt(tok, 'y = pri', { heal: true, suffix: '(x)\n', fim: { format: 'starcoder', order: 'psm' }, maxTokens: 8, context: 256 });
  assert.equal(psm.owed, 'pri');
  assert.deepEqual(psm.ids, [ids.prefix, ids.suffix, ...tok.encode('(x)\n'), ids.middle, ...tok.encode('y = ')], 'on line 0 the typed part of the line is all of the prefix');
  const below = preparePrompt(tok, 'a = 1\ny = pri', { heal: true, suffix: '(x)\n', fim: { format: 'starcoder', order: 'psm' }, maxTokens: 8, context: 256 });
  assert.deepEqual(below.ids, [ids.prefix, ...tok.encode('a = 1\n'), ids.suffix, ...tok.encode('(x)\n'), ids.middle, ...tok.encode('y = ')]);
  // The layout before the reuse work, for comparisons: the PSM prefix runs to the cursor.
  const cursor = preparePrompt(tok, 'y = pri', { heal: true, suffix: '(x)\n', fim: { format: 'starcoder', order: 'psm' }, maxTokens: 8, context: 256, layout: 'cursor' });
  assert.deepEqual(cursor.ids, [ids.prefix, ...tok.encode('y = '), ids.suffix, ...tok.encode('(x)\n'), ids.middle]);
  const spm = preparePrompt(tok, 'y = pri', { heal: true, suffix: '(x)\n', fim: { format: 'starcoder', order: 'spm' }, maxTokens: 8, context: 256 });
  assert.deepEqual(spm.ids, [ids.prefix, ids.suffix, ...tok.encode('(x)\n'), ids.middle, ...tok.encode('y = ')]);
  // Without FIM the suffix is not in the prompt.
  assert.deepEqual(preparePrompt(tok, 'y = pri', { heal: false, suffix: '(x)', maxTokens: 8, context: 256 }).ids, tok.encode('y = pri'));
  // Over the context: the prefix keeps its end, the suffix its start, the FIM tokens stay.
  const long = preparePrompt(tok, 'a = 1\n'.repeat(100), { heal: false, suffix: 'b = 2\n'.repeat(100), fim: { format: 'starcoder', order: 'psm' }, maxTokens: 16, context: 256 });
  assert.ok(long.ids.length <= 240 && long.truncated > 0);
  assert.equal(long.ids[0], ids.prefix);
  assert.equal(long.ids.at(-1), ids.middle);
});

test('windowPrompt: nearest prefix and suffix within the budgets, cut at line starts; the start holds still while typing; a window of a window is itself', () => {
  const tok = embedded;
  const lines = Array.from({ length: 200 }, (_, i) => `value_${i} = compute(${i}, factor=${i * 3})\n`);
  const prefix = lines.slice(0, 150).join('') + '    ret';
  const suffix = lines.slice(150).join('');
  const w = windowPrompt(tok, prefix, suffix, { prefixTokens: 300, suffixTokens: 60 });
  assert.ok(w.prefixStart > 0 && prefix[w.prefixStart - 1] === '\n', 'cut at a line start');
  assert.ok(tok.encode(w.prefix).length <= 300 * 1.05);
  assert.ok(w.suffix.endsWith('\n') && suffix.startsWith(w.suffix) && tok.encode(w.suffix).length <= 60 * 1.05);
  // Typing on the same line keeps the same start, so the cached prompt stays a prefix of the next one.
  assert.equal(windowPrompt(tok, prefix + 'urn va', suffix, { prefixTokens: 300, suffixTokens: 60 }).prefixStart, w.prefixStart);
  const again = windowPrompt(tok, w.prefix, w.suffix, { prefixTokens: 300, suffixTokens: 60 });
  assert.deepEqual([again.prefix, again.suffix, again.prefixStart], [w.prefix, w.suffix, 0]);
  // A suffix whose first line is over the budget keeps that line (the clean rules read it).
  assert.equal(windowPrompt(tok, 'x', 'a'.repeat(400) + '\nb\n', { prefixTokens: 100, suffixTokens: 5 }).suffix, 'a'.repeat(400) + '\n');
});

test('generate with a FIM prompt feeds the layout and stops at the format\'s stop token', async () => {
  const folder = fimModelFolder('qwen');
  const tok = folder.tokenizer;
  const ids = fimIds(tok, { format: 'qwen', order: 'psm' });
  const [x, fimPad] = [tok.encode('x')[0], tok.encode('<|fim_pad|>')[0]];
  const { runtime, fed } = scriptedRuntime(tok.vocabSize, (step, logits) => {
    logits[step === 0 ? x : fimPad] = 5;
  });
  const g = await generate(runtime, tok, 'print(', { maxTokens: 8, suffix: ')\n', fim: { format: 'qwen', order: 'psm' } });
  // The auto-closed ")" after the cursor is not fed (runtime/prompt.ts fedSuffix); the line break is.
  assert.deepEqual(fed[0], [ids.prefix, ids.suffix, ...tok.encode('\n'), ids.middle, ...tok.encode('print(')]);
  assert.equal(g.text, 'x');
  assert.equal(g.stoppedBy, 'eos');
});

test('a failure carries its suffix and FIM format; old failures and replays without them still load', () => {
  const replay = readReplay({ heal: true, stop: 'line', maxTokens: 32, fim: { format: 'qwen', order: 'psm' }, indent: { insertSpaces: false, tabSize: 8 } }, 'replay');
  assert.deepEqual(replay.fim, { format: 'qwen', order: 'psm' });
  assert.deepEqual(readReplay({ heal: true, stop: 'line', maxTokens: 32 }, 'replay'), { heal: true, stop: 'line', maxTokens: 32 });
  assert.throws(() => readReplay({ heal: true, stop: 'line', maxTokens: 32, fim: { format: 'gpt', order: 'psm' } }, 'replay'), /format/);
  const base = { id: 'a', createdAt: new Date(0).toISOString(), source: 'rejected', languageId: 'python', prompt: 'print(', desired: 'x', status: 'pending' };
  assert.equal(validateFailure({ ...base, suffix: ')\n', replay }).suffix, ')\n');
  assert.equal(validateFailure(base).suffix, undefined);
  const { failures, errors } = parseFailuresJsonl('{"prompt":"print(","desired":"x"}\n{"prompt":"f(","desired":"y","suffix":7}\n');
  assert.equal(failures.length, 1);
  assert.match(errors[0].message, /"suffix" must be a string/);
});

test('teacher forcing over the FIM prompt: the same ids the completion feeds, the middle, then the format\'s stop token', () => {
  for (const order of ['psm', 'spm'] as const) {
    const tok = fimModelFolder('starcoder').tokenizer;
    const fim = { format: 'starcoder' as const, order };
    const replay = { heal: true, stop: 'line' as const, maxTokens: 16, fim };
    const ex = makeExample(tok, 'y = pri', 'nt(x', 256, { replay, suffix: ')\n', after: ')\n' });
    const prompt = preparePrompt(tok, 'y = pri', { heal: true, suffix: ')\n', fim, maxTokens: 16, context: 256 });
    assert.deepEqual(ex.ids.slice(0, prompt.ids.length), prompt.ids, `${order}: the prompt is the completion's`);
    const stop = fimIds(tok, fim).stops[0];
    assert.equal(ex.desired.at(-1), stop, `${order}: the middle ends with the stop token`);
    assert.equal(tok.decode(ex.desired.slice(0, -1)), 'print(x');
    assert.ok(ex.alsoRight.at(-1)!.includes(tok.encode('\n')[0]), 'a line break ends it with the same text');
  }
  // The clean rules decide too: text that repeats the rest of the line cannot be what the editor shows.
  const tok = fimModelFolder('qwen').tokenizer;
  assert.throws(() => makeExample(tok, 'print(', 'x)', 256, { replay: { heal: false, stop: 'line', maxTokens: 16, fim: { format: 'qwen', order: 'psm' } }, suffix: ')\n' }),
    (e: unknown) => e instanceof RepairError && /clean-suggestion/.test(e.message));
});

test('teacher forcing with Qwen\'s real tokenizer: the FIM tokens frame the prompt and <|endoftext|> ends the middle', () => {
  const tok = qwenTokenizer();
  const fim = { format: 'qwen' as const, order: 'psm' as const };
  const ex = makeExample(tok, 'def area(r):\n    return 3.14 * ', 'r * r', 32768, { replay: { heal: true, stop: 'line', maxTokens: 32, fim }, suffix: '\n\nprint(area(2))\n' });
  assert.equal(ex.ids[0], 151659);
  assert.ok(ex.ids.includes(151661) && ex.ids.includes(151660));
  assert.equal(ex.desired.at(-1), 151643);
});
