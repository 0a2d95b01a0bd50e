// The clean-suggestion rules (runtime/clean.ts, issue 15 item 6), each from a real editing
// situation: what the editor would show, in the rule's words. Also that showCompletion applies
// them (the ghost text, every "is it fixed?" check and the repair target agree).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/model/tokenizer';
import { cleanSuggestion, DEFAULT_INDENT, type CleanContext } from '../../src/runtime/clean';

const tokenizer = loadTokenizer(join(__dirname, '..', '..', 'models', 'tiny-coder'));
const at = (prefix: string, suffix = '', extra: Partial<CleanContext> = {}): CleanContext => ({ prefix, suffix, indent: DEFAULT_INDENT, tokenizer, ...extra });

test('rule 1: after `import os` the suggestion `ources` (import osources) is not shown; a half-typed word is still completed', () => {
  assert.equal(cleanSuggestion('ources', at('import os')), '');
  assert.equal(cleanSuggestion('ath.join(a, b)', at('import os\np = os.p')), 'ath.join(a, b)', 'os.path: "path" is one token of the vocabulary');
  assert.equal(cleanSuggestion('_count += 1', at('total_count = 0\nfor x in xs:\n    total')), '_count += 1', 'a name the file already uses');
  assert.equal(cleanSuggestion(' = 1', at('import os')), ' = 1', 'not a word: nothing to glue');
});

test('rule 1: a suggestion whose last word would run into the word after the cursor loses that word', () => {
  // `return |value` with the suggestion `self.` + `x` would give `self.xvalue`.
  assert.equal(cleanSuggestion('self.x', at('    return ', 'value\n')), 'self.');
  assert.equal(cleanSuggestion('not ', at('    return ', 'value\n')), 'not');
});

test('rule 2: inside `print()` the suggestion `x)` shows `x` (no `print(x))`); a bracket the suggestion opened keeps its closer', () => {
  assert.equal(cleanSuggestion('x)', at('print(', ')\n')), 'x');
  assert.equal(cleanSuggestion('len(x))', at('print(', ')\n')), 'len(x)');
  assert.equal(cleanSuggestion('f(x)', at('print(', ')\n')), 'f(x)', 'its own bracket');
  assert.equal(cleanSuggestion('key]', at('value = d[', ']\n')), 'key');
  assert.equal(cleanSuggestion(' > 0:', at('if x', ':\n    pass\n')), ' > 0', 'the rest of the line (":") is not repeated');
  // In the middle of a line only the first line is kept.
  assert.equal(cleanSuggestion('a, b\nreturn c', at('f(', ')\n')), 'a, b');
});

test('rule 3: a new indented line gets no extra space; later lines use the editor\'s tabs or spaces', () => {
  // The editor indented the new line by 4; the model's token was " return" (one space too many).
  assert.equal(cleanSuggestion(' return x', at('def f(x):\n    ')), 'return x');
  assert.equal(cleanSuggestion('    return x', at('def f(x):\n    ')), '    return x', 'a whole indentation unit deeper is kept');
  const tabs = { insertSpaces: false, tabSize: 4 };
  assert.equal(cleanSuggestion('if x:\n        y()', at('def f(x):\n\t', '', { indent: tabs })), 'if x:\n\t\ty()');
  assert.equal(cleanSuggestion('if x:\n\t\ty()', at('def f(x):\n  ', '', { indent: { insertSpaces: true, tabSize: 2 } })), 'if x:\n    y()');
});

test('rule 4: a suggestion that repeats the next lines is dropped', () => {
  const suffix = '\n    return total\n';
  assert.equal(cleanSuggestion('return total', at('def f(xs):\n    total = sum(xs)\n    ', suffix)), '');
  assert.equal(cleanSuggestion('total += 1', at('def f(xs):\n    total = sum(xs)\n    ', suffix)), 'total += 1');
});
