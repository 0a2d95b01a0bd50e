// The window budget (runtime/prompt.ts windowBudget), the one rule the worker and bench:complete
// cut the file by: with a FIM model whose context is small (the embedded model: 512 tokens), the
// window of prefix and suffix must fit beside the completion, so that preparePrompt never cuts the
// prefix token by token — a cut that moved the prompt's start at every keystroke and left the
// prompt cache nothing to reuse (bench:complete --quick measured 81.5 % of each prompt prefilled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/model/tokenizer';
import { resolveFim } from '../../src/runtime/fim';
import { preparePrompt, windowBudget, windowPrompt } from '../../src/runtime/prompt';

const ROOT = join(__dirname, '..', '..');
const tok = loadTokenizer(join(ROOT, 'models', 'tiny-coder'));
const fim = resolveFim(tok);
const file = readFileSync(join(ROOT, 'tools', 'make-fixtures', 'make_fixtures.py'), 'utf8');

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

test('windowBudget: prefix + suffix + completion + sentinels fit the context; the settings only lower it', () => {
  for (const [context, maxTokens] of [[512, 32], [512, 8], [32768, 64], [64, 8]] as const) {
    for (const fimOn of [true, false]) {
      const b = windowBudget(context, maxTokens, { prefixTokens: 1_000_000, suffixTokens: 1_000_000 }, fimOn);
      assert.ok(b.prefixTokens + b.suffixTokens + maxTokens + 4 <= Math.max(context, 16 + maxTokens + 4), `${context}/${maxTokens}/${fimOn}: ${JSON.stringify(b)}`);
      assert.equal(b.suffixTokens === 0, !fimOn);
    }
  }
  assert.deepEqual(windowBudget(32768, 32, { prefixTokens: 1024, suffixTokens: 128 }, true), { prefixTokens: 1024, suffixTokens: 128 });
});

test('typing in a large file with the embedded (FIM, SPM) model: the prompt is never cut, and each keystroke reuses the one before', () => {
  assert.deepEqual(fim, { format: 'starcoder', order: 'spm' });
  const context = 512;
  const maxTokens = 8;
  const budget = windowBudget(context, maxTokens, { prefixTokens: 1024, suffixTokens: 128 }, true);
  // The cursor after 60 % of the file, typing the next line's text one character at a time.
  const at = file.indexOf('\n', Math.floor(file.length * 0.6)) + 1;
  const line = file.slice(at, file.indexOf('\n', at));
  let previous: number[] | null = null;
  let reused = 0;
  let total = 0;
  for (let k = 1; k <= line.length; k++) {
    const win = windowPrompt(tok, file.slice(0, at + k), file.slice(at + line.length), budget);
    const p = preparePrompt(tok, win.prefix, { heal: true, suffix: win.suffix, fim, maxTokens, context });
    assert.equal(p.truncated, 0, `keystroke ${k}: the prompt fits the context without a cut`);
    if (previous) {
      reused += commonPrefix(previous, p.ids);
      total += p.ids.length;
    }
    previous = p.ids;
  }
  assert.ok(reused / total > 0.9, `the tokens shared with the previous keystroke's prompt: ${(100 * reused / total).toFixed(1)} %`);
});
