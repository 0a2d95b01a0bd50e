// The FIM prompt's layout while typing (issue 15, item 4; runtime/prompt.ts fimText and
// preparePrompt): in PSM the prefix ends at the start of the cursor's line and the typed part of
// the line opens the middle, in the editing situations people meet (end of a line, inside a call
// whose `)` follows the cursor, a new indented line, an empty file, line 0), with token healing
// taking the typed part's last token; successive keystrokes on a line share the prompt's tokens up
// to the typed part (reuse measured as common token prefixes, as the prompt cache finds them);
// generate() and teacher forcing feed the same ids, for new failures and those stored before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fimIds, type FimChoice } from '../../src/runtime/fim';
import { fimText, MAX_MIDDLE_TOKENS, preparePrompt, type PromptLayout } from '../../src/runtime/prompt';
import { generate } from '../../src/runtime/generate';
import { showCompletion } from '../../src/runtime/completion';
import { makeExample } from '../../src/repair/teacher';
import { exampleOf } from '../../src/repair/run';
import { parseFailuresJsonl } from '../../src/failures/failure';
import { PromptCache } from '../../src/runtime/prompt-cache';
import type { KvCache, ModelRuntime } from '../../src/runtime/runtime';
import { fimModelFolder, qwenTokenizer, scriptedRuntime } from './fim-helpers';

const qwen = { format: 'qwen', order: 'psm' } as const satisfies FimChoice;
const CONTEXT = 32768;

const FILE_BEFORE = 'import os\n\n\ndef load(path, factor=2):\n    """Read numbers, one a line."""\n    with open(path) as f:\n        values = [float(x) for x in f]\n';
const FILE_AFTER = '\n    return total\n\n\nif __name__ == "__main__":\n    print(load(os.environ["DATA"]))\n';

test('fimText: PSM splits at the start of the cursor\'s line; SPM and the old cursor layout keep the prefix whole', () => {
  // End of a line.
  assert.deepEqual(fimText('import os\nx = pri', '\n', 'psm'), { prefix: 'import os\n', suffix: '\n', middle: 'x = pri' });
  // Inside a call whose auto-closed bracket follows the cursor: the bracket is not fed (fedSuffix).
  assert.deepEqual(fimText('def f(a):\n    print(a, ', ')\n', 'psm'), { prefix: 'def f(a):\n', suffix: '\n', middle: '    print(a, ' });
  // A rest of the line with more than closers in it is fed whole.
  assert.deepEqual(fimText('def f(a):\n    print(', 'a, b)\n', 'psm'), { prefix: 'def f(a):\n', suffix: 'a, b)\n', middle: '    print(' });
  // A new indented line: the editor's indentation is the typed part.
  assert.deepEqual(fimText('def f(a):\n    ', '\nf(1)\n', 'psm'), { prefix: 'def f(a):\n', suffix: '\nf(1)\n', middle: '    ' });
  // At a line's start nothing is typed yet.
  assert.deepEqual(fimText('x = 1\n', 'y = 2\n', 'psm'), { prefix: 'x = 1\n', suffix: 'y = 2\n', middle: '' });
  // Line 0 and an empty file: no lines before.
  assert.deepEqual(fimText('impo', '\n', 'psm'), { prefix: '', suffix: '\n', middle: 'impo' });
  assert.deepEqual(fimText('', '', 'psm'), { prefix: '', suffix: '', middle: '' });
  // Windows line ends: the split is after the \n, the \r stays with its line.
  assert.deepEqual(fimText('a = 1\r\nb = ', '\r\n', 'psm'), { prefix: 'a = 1\r\n', suffix: '\r\n', middle: 'b = ' });
  assert.deepEqual(fimText('import os\nx = pri', '\n', 'spm'), { prefix: 'import os\nx = pri', suffix: '\n', middle: '' });
  assert.deepEqual(fimText('x = f(', ')\ny = 2\n', 'spm'), { prefix: 'x = f(', suffix: '\ny = 2\n', middle: '' });
  // The old cursor layout fed the suffix as it was.
  assert.deepEqual(fimText('import os\nx = pri', '\n', 'psm', 'cursor'), { prefix: 'import os\nx = pri', suffix: '\n', middle: '' });
  assert.deepEqual(fimText('x = f(', ')\n', 'psm', 'cursor'), { prefix: 'x = f(', suffix: ')\n', middle: '' });
});

test('preparePrompt with Qwen\'s tokenizer: <pre> lines before <suf> suffix <mid> typed part, healing the typed part\'s last token', () => {
  const tok = qwenTokenizer();
  const ids = fimIds(tok, qwen);
  const cases: Array<{ prefix: string; suffix: string; lines: string; middle: string; owed: string; fed?: string }> = [
    // End of a line: the last word is healed, so "pri" may become "print" or "private".
    { prefix: 'import os\nx = pri', suffix: '\n', lines: 'import os\n', middle: 'x =', owed: ' pri' },
    // Mid-line inside a call, `)` after the cursor.
    { prefix: 'def f(a):\n    print(a, se', suffix: ')\nf(1)\n', lines: 'def f(a):\n', middle: '    print(a,', owed: ' se', fed: '\nf(1)\n' },
    // A new indented line: the indentation is all one token, so all of it is owed and the middle opens empty.
    { prefix: 'def f(a):\n    ', suffix: '\nf(1)\n', lines: 'def f(a):\n', middle: '', owed: '    ' },
    // Line 0: nothing before the line.
    { prefix: 'impo', suffix: '', lines: '', middle: 'im', owed: 'po' },
    // At a line's start: nothing typed, nothing healed.
    { prefix: 'x = 1\n', suffix: 'y = 2\n', lines: 'x = 1\n', middle: '', owed: '' },
  ];
  for (const c of cases) {
    const p = preparePrompt(tok, c.prefix, { heal: true, suffix: c.suffix, fim: qwen, maxTokens: 16, context: CONTEXT });
    const middle = c.middle ? tok.encode(c.middle) : [];
    const fed = c.fed ?? c.suffix;
    assert.deepEqual(p.ids, [ids.prefix, ...(c.lines ? tok.encode(c.lines) : []), ids.suffix, ...(fed ? tok.encode(fed) : []), ids.middle, ...middle], JSON.stringify(c.prefix));
    assert.equal(p.owed, c.owed, JSON.stringify(c.prefix));
    assert.deepEqual(p.middleIds, middle);
    assert.equal(p.head + p.owed, c.prefix, 'the prompt as fed and the owed end spell the prefix');
  }
  // Without healing the whole typed part is fed.
  const plain = preparePrompt(tok, 'import os\nx = pri', { heal: false, suffix: '\n', fim: qwen, maxTokens: 16, context: CONTEXT });
  assert.deepEqual(plain.middleIds, tok.encode('x = pri'));
  assert.equal(plain.owed, '');
  // An empty file has nothing to complete, as before.
  assert.throws(() => preparePrompt(tok, '', { heal: true, suffix: '', fim: qwen, maxTokens: 16, context: CONTEXT }), /empty/);
});

test('a typed part too long for a middle (minified code) keeps the prefix running to the cursor', () => {
  const tok = qwenTokenizer();
  const ids = fimIds(tok, qwen);
  const line = 'var a=[' + Array.from({ length: 400 }, (_, i) => i).join(',');
  assert.ok(tok.encode(line).length > MAX_MIDDLE_TOKENS);
  const p = preparePrompt(tok, 'x = 1\n' + line, { heal: true, suffix: '];\n', fim: qwen, maxTokens: 16, context: CONTEXT });
  assert.deepEqual(p.middleIds, []);
  assert.equal(p.ids.at(-1), ids.middle);
  assert.ok(p.owed.length > 0 && line.endsWith(p.owed), 'healed at the end of the prefix, as before');
});

test('over the context the lines before keep their end and the suffix its start; the FIM tokens and the typed part stay', () => {
  const tok = qwenTokenizer();
  const ids = fimIds(tok, qwen);
  const p = preparePrompt(tok, 'a = 1\n'.repeat(200) + '    total = compute(', { heal: true, suffix: ')\n' + 'b = 2\n'.repeat(200), fim: qwen, maxTokens: 16, context: 256 });
  assert.ok(p.truncated > 0 && p.ids.length <= 240);
  assert.equal(p.ids[0], ids.prefix);
  assert.deepEqual(p.ids.slice(p.ids.length - 1 - p.middleIds.length), [ids.middle, ...tok.encode('    total = compute')]);
  assert.equal(p.owed, '(');
});

/** The prompts (prefix, suffix) a typist's keystrokes produce, typing `line` on a new line between FILE_BEFORE and FILE_AFTER, with the editor's auto-closed brackets. */
function typeLine(line: string): Array<{ prefix: string; suffix: string; lineIndex: number }> {
  const out: Array<{ prefix: string; suffix: string; lineIndex: number }> = [];
  const indent = /^\s*/.exec(line)![0];
  let typed = indent; // Enter brought the indentation
  let closers = '';
  out.push({ prefix: FILE_BEFORE + typed, suffix: closers + FILE_AFTER, lineIndex: 0 });
  for (const ch of line.slice(indent.length)) {
    if (closers && ch === closers[0]) closers = closers.slice(1); // typed over the auto-closed bracket
    else if ('([{'.includes(ch)) closers = { '(': ')', '[': ']', '{': '}' }[ch]! + closers;
    typed += ch;
    out.push({ prefix: FILE_BEFORE + typed, suffix: closers + FILE_AFTER, lineIndex: 0 });
  }
  return out;
}

/**
 * Tokens prefilled per keystroke under the real PromptCache's rules (longest common token prefix
 * with a kept prompt, one token always fed, a prompt that extends a kept one replaces it, four
 * kept): a runtime without layers stands in, so only token ids are compared, never times.
 */
async function prefilled(prompts: number[][]): Promise<number[]> {
  const runtime = {
    patchVersion: 0, config: { kvHeads: 1, headDim: 1 }, floatType: 'float32',
    emptyCache: (): KvCache => ({ length: 0, keys: [], values: [] }),
    readCache: async () => ({ keys: [], values: [] }),
  } as unknown as ModelRuntime;
  const cache = new PromptCache();
  const out: number[] = [];
  for (const ids of prompts) {
    const found = cache.lookup(runtime, ids);
    out.push(ids.length - found.reused);
    await cache.store(runtime, ids, { length: ids.length, keys: [], values: [] });
  }
  return out;
}

function promptsFor(keys: Array<{ prefix: string; suffix: string }>, layout: PromptLayout): number[][] {
  const tok = qwenTokenizer();
  return keys.map((k) => preparePrompt(tok, k.prefix, { heal: true, suffix: k.suffix, fim: qwen, maxTokens: 16, context: CONTEXT, layout }).ids);
}

test('successive keystrokes on a line share the prompt up to the typed part: the suffix is not prefilled again, auto-closed brackets included', async () => {
  const tok = qwenTokenizer();
  const ids = fimIds(tok, qwen);
  const keys = typeLine('    total = sum(values[1:]) * factor(2)');
  assert.ok(keys.some((k) => k.suffix.startsWith('])')), 'the typist meets nested auto-closed brackets');
  const line = promptsFor(keys, 'line');
  const fed = await prefilled(line);
  const suffixTokens = tok.encode(FILE_AFTER).length;
  for (let i = 1; i < keys.length; i++) {
    const mid = line[i].indexOf(ids.middle);
    // Only the middle's new tokens: the lines before, the suffix and the middle token came from the
    // cache — also where an auto-closed bracket appeared after the cursor or was typed over.
    const what = `keystroke ${i} (${JSON.stringify(keys[i].prefix.slice(FILE_BEFORE.length))} before ${JSON.stringify(keys[i].suffix.slice(0, 3))}) prefilled ${fed[i]} tokens`;
    assert.ok(fed[i] < line[i].length - mid, what);
    assert.ok(fed[i] <= 3, what);
  }
  // The layout where the PSM prefix ran to the cursor and the suffix was fed as it was (before the reuse work):
  const cursor = await prefilled(promptsFor(keys, 'cursor'));
  const resuffixed = (xs: number[]) => xs.slice(1).filter((n) => n > suffixTokens).length;
  assert.equal(resuffixed(fed), 0);
  // In the cursor layout every keystroke that adds a token to the (healed) prompt re-prefills the
  // suffix; healing makes the others the same ids as the prompt before (one token fed).
  for (let i = 1; i < keys.length; i++) assert.ok(cursor[i] === 1 || cursor[i] > suffixTokens, `cursor layout, keystroke ${i}: ${cursor[i]}`);
  assert.ok(resuffixed(cursor) >= 10, `suffix prefilled again at ${resuffixed(cursor)} keystrokes (cursor layout)`);
  const sum = (xs: number[]) => xs.slice(1).reduce((a, b) => a + b, 0);
  assert.ok(sum(fed) * 3 < sum(cursor), `line layout ${sum(fed)} tokens, cursor layout ${sum(cursor)}`);
});

test('SPM: typing an auto-closed bracket re-prefills nothing either (the suffix comes first)', async () => {
  const tok = qwenTokenizer();
  const spm = { format: 'qwen', order: 'spm' } as const satisfies FimChoice;
  const keys = typeLine('    total = sum(values) * factor');
  const fed = await prefilled(keys.map((k) => preparePrompt(tok, k.prefix, { heal: true, suffix: k.suffix, fim: spm, maxTokens: 16, context: CONTEXT }).ids));
  const whole = tok.encode(FILE_BEFORE).length;
  for (let i = 1; i < keys.length; i++) assert.ok(fed[i] <= 3, `keystroke ${i} (${JSON.stringify(keys[i].prefix.slice(FILE_BEFORE.length))}): ${fed[i]} of ~${whole} tokens`);
});

test('generate and teacher forcing inside a call: the auto-closed ")" is not fed, the shown text does not repeat it', async () => {
  const folder = fimModelFolder('qwen');
  const tok = folder.tokenizer;
  const ids = fimIds(tok, qwen);
  const script = [...tok.encode('x)'), tok.encode('<|fim_pad|>')[0]];
  const { runtime, fed } = scriptedRuntime(tok.vocabSize, (step, logits) => {
    logits[script[Math.min(step, script.length - 1)]] = 9;
  });
  const replay = { heal: false, stop: 'line' as const, maxTokens: 8, fim: qwen };
  const shown = await showCompletion(runtime, tok, 'a = 1\nprint(', replay, { suffix: ')\nb = 2\n' });
  assert.deepEqual(fed[0], [ids.prefix, ...tok.encode('a = 1\n'), ids.suffix, ...tok.encode('\nb = 2\n'), ids.middle, ...tok.encode('print(')]);
  assert.equal(shown.generation.text, 'x)');
  assert.equal(shown.text, 'x', 'the clean rules read the whole suffix: the ")" after the cursor is not repeated');
  const ex = makeExample(tok, 'a = 1\nprint(', 'x', 256, { replay, suffix: ')\nb = 2\n' });
  assert.deepEqual(ex.ids.slice(0, fed[0].length), fed[0], 'repair teacher-forces over the prompt the editor fed');
});

test('a new line re-prefills the suffix once, then its keystrokes reuse it', async () => {
  const tok = qwenTokenizer();
  const first = typeLine('    total = 0');
  const done = first.at(-1)!.prefix + '\n';
  const next = [{ prefix: done + '    ', suffix: FILE_AFTER }, { prefix: done + '    for', suffix: FILE_AFTER }, { prefix: done + '    for v', suffix: FILE_AFTER }];
  const fed = await prefilled(promptsFor([first.at(-1)!, ...next], 'line'));
  const suffixTokens = tok.encode(FILE_AFTER).length;
  assert.ok(fed[1] > suffixTokens, 'the line change re-prefills the suffix');
  assert.ok(fed[2] <= 3 && fed[3] <= 3, `then ${fed[2]}, ${fed[3]} tokens`);
});

test('generate heals the typed part of the line: the first token spells the owed text back, and the shown text follows it', async () => {
  const folder = fimModelFolder('qwen');
  const tok = folder.tokenizer;
  const ids = fimIds(tok, qwen);
  const print = tok.encode('print')[0];
  assert.equal(tok.tokenText(print), 'print');
  const [x, pad] = [tok.encode('x')[0], tok.encode('<|fim_pad|>')[0]];
  const { runtime, fed } = scriptedRuntime(tok.vocabSize, (step, logits) => {
    // The first step prefers "x", which does not spell the owed "pri": healing must choose "print".
    logits[x] = 9;
    logits[print] = 5;
    if (step > 0) logits[pad] = 20;
  });
  const g = await generate(runtime, tok, 'a = 1\ny = pri', { maxTokens: 8, heal: true, suffix: '(x)\n', fim: qwen });
  assert.deepEqual(fed[0], [ids.prefix, ...tok.encode('a = 1\n'), ids.suffix, ...tok.encode('(x)\n'), ids.middle, ...tok.encode('y = ')]);
  assert.equal(g.healed, 'pri');
  assert.equal(g.tokens[0], print);
  assert.equal(g.text, 'nt');
});

test('teacher forcing feeds the same layout: lines before, suffix, the typed part as the middle\'s start, then the healed text and the desired text', () => {
  const tok = qwenTokenizer();
  const prefix = 'def area(r):\n    return 3.14 * r';
  const replay = { heal: true, stop: 'line' as const, maxTokens: 16, fim: qwen };
  const ex = makeExample(tok, prefix, ' * r', CONTEXT, { replay, suffix: '\n\nprint(area(2))\n' });
  const prompt = preparePrompt(tok, prefix, { heal: true, suffix: '\n\nprint(area(2))\n', fim: qwen, maxTokens: 16, context: CONTEXT });
  assert.deepEqual(ex.ids.slice(0, prompt.ids.length), prompt.ids);
  assert.deepEqual(prompt.middleIds, tok.encode('    return 3.14 *'));
  assert.equal(tok.decode(ex.desired.slice(0, -1)), ' r * r', 'the owed " r", then the desired text');
  assert.equal(ex.desired.at(-1), fimIds(tok, qwen).stops[0]);
});

test('failures stored before the line layout load and are teacher-forced over the prompt they record, laid out as the editor now shows it', () => {
  const tok = qwenTokenizer();
  const ids = fimIds(tok, qwen);
  // A JSONL line as the store wrote it before this layout: prefix, suffix and FIM format only.
  const stored = '{"id":"f1","createdAt":"2026-11-30T10:00:00.000Z","source":"rejected","languageId":"python","prompt":"def f(a):\\n    print(a, se","suffix":")\\nf(1)\\n","rejected":"lf","desired":"p=\\"-\\"","replay":{"heal":true,"stop":"line","maxTokens":32,"fim":{"format":"qwen","order":"psm"}},"status":"pending"}\n'
    // and one from before FIM: no suffix, no replay.
    + '{"id":"f0","createdAt":"2026-10-01T10:00:00.000Z","source":"rejected","languageId":"python","prompt":"x = 1\\ny = ","desired":"x + 1","status":"pending"}\n';
  const { failures, errors } = parseFailuresJsonl(stored);
  assert.deepEqual(errors, []);
  const [fim, old] = failures;
  const ex = exampleOf(tok, fim, CONTEXT);
  const prompt = preparePrompt(tok, fim.prompt, { heal: true, suffix: fim.suffix, fim: qwen, maxTokens: 32, context: CONTEXT });
  assert.deepEqual(ex.ids.slice(0, prompt.ids.length), prompt.ids, 'the completion\'s prompt: repair changes what the editor shows there');
  // The stored suffix's auto-closed ")" is not fed, as in the editor's prompt now.
  assert.deepEqual(prompt.ids, [ids.prefix, ...tok.encode('def f(a):\n'), ids.suffix, ...tok.encode('\nf(1)\n'), ids.middle, ...tok.encode('    print(a,')]);
  assert.equal(tok.decode(ex.desired.slice(0, -1)), ' sep="-"');
  // Prefix-only, as before: the healed prefix, then the target.
  const plain = exampleOf(tok, old, CONTEXT);
  const before = preparePrompt(tok, old.prompt, { heal: true, maxTokens: 32, context: CONTEXT });
  assert.equal(before.fim, null);
  assert.deepEqual(plain.ids.slice(0, before.ids.length), before.ids);
});
