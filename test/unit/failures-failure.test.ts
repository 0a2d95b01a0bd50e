// Failure record: validation messages, creation, the CLI's JSONL format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createFailure, validateFailure, parseFailuresJsonl, formatFailuresJsonl, InvalidFailureError, type Failure,
} from '../../src/failures/failure';

const NOW = new Date('2024-05-06T07:08:09.000Z');

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidFailureError, `expected InvalidFailureError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected an InvalidFailureError');
}

test('createFailure fills defaults and validates', () => {
  const f = createFailure({ prompt: 'def f(x):\n    ', desired: 'return x + 1' }, {}, NOW);
  assert.equal(f.status, 'pending');
  assert.equal(f.source, 'manual');
  assert.equal(f.createdAt, NOW.toISOString());
  assert.match(f.id, /^[0-9a-f-]{36}$/);
  assert.equal('uri' in f, false, 'absent optional fields stay absent');
  const g = createFailure({ prompt: 'p', desired: 'd', source: 'rejected', languageId: 'python', uri: 'file:///a.py', line: 3, rejected: 'x', group: 'g1' }, {}, NOW);
  assert.deepEqual({ uri: g.uri, line: g.line, rejected: g.rejected, group: g.group }, { uri: 'file:///a.py', line: 3, rejected: 'x', group: 'g1' });
});

test('empty prompt and empty desired are refused with messages that say what to do', () => {
  const problems = problemsOf(() => createFailure({ prompt: '', desired: '' }));
  assert.equal(problems.length, 2);
  assert.match(problems[0]!, /"prompt" is empty: give the text that comes before/);
  assert.match(problems[1]!, /"desired" is empty: give the completion/);
});

test('wrong types are all reported at once', () => {
  const problems = problemsOf(() => validateFailure({
    id: 7, createdAt: 'yesterday', source: 'typed', languageId: '', prompt: ['a'], desired: null, status: 'done', line: -1, uri: 3, rejected: {},
  }));
  const text = problems.join('\n');
  for (const needle of ['"id"', '"createdAt"', '"source" must be one of rejected, manual, imported', '"languageId"',
    '"prompt" must be a string (got an array)', '"desired" must be a string (got null)', '"status" must be one of',
    '"line"', '"uri"', '"rejected" must be a string when present (got an object)']) {
    assert.ok(text.includes(needle), `missing ${needle} in:\n${text}`);
  }
  assert.match(problemsOf(() => validateFailure('x'))[0]!, /must be a JSON object \(got a string\)/);
  assert.match(problemsOf(() => validateFailure([]))[0]!, /got an array/);
});

test('size guard: prompt and desired limits are configurable and explained', () => {
  const big = 'x'.repeat(65537);
  assert.match(problemsOf(() => createFailure({ prompt: big, desired: 'y' }))[0]!, /65537 characters, more than the limit of 65536: keep only the last part/);
  assert.doesNotThrow(() => createFailure({ prompt: 'x'.repeat(65536), desired: 'y' }));
  assert.match(problemsOf(() => createFailure({ prompt: 'abc', desired: 'y' }, { maxPromptChars: 2 }))[0]!, /limit of 2/);
  assert.match(problemsOf(() => createFailure({ prompt: 'p', desired: 'yyy' }, { maxDesiredChars: 2 }))[0]!, /"desired" has 3 characters/);
});

test('validateFailure drops unknown keys and keeps a valid record as is', () => {
  const f = createFailure({ prompt: 'a', desired: 'b' }, {}, NOW);
  const back = validateFailure({ ...f, extra: 1 });
  assert.deepEqual(back, f);
});

test('parseFailuresJsonl: good lines parsed, bad lines reported with line numbers, the rest still processed', () => {
  const text = [
    '{"prompt": "def add(a, b):\\n    ", "desired": "return a + b"}',
    '',
    'not json',
    '{"prompt": "", "desired": "x"}',
    '[1, 2]',
    '{"prompt": "import ", "desired": "os", "id": "k1", "group": "imports", "rejected": "sys", "languageId": "python"}',
    '{"prompt": "x = ", "desired": 5}',
    '{"prompt": "y = ", "desired": "2", "id": "k1"}',
    '   ',
    '{"prompt": "a", "desired": "b", "status": "repaired"}\r',
  ].join('\n');
  const { failures, errors } = parseFailuresJsonl(text, { now: NOW });
  assert.equal(failures.length, 3);
  assert.deepEqual(errors.map((e) => e.line), [3, 4, 5, 7, 8]);
  assert.match(errors[0]!.message, /not valid JSON/);
  assert.match(errors[1]!.message, /"prompt" is empty/);
  assert.match(errors[2]!.message, /expected a JSON object like \{"prompt"/);
  assert.match(errors[3]!.message, /"desired" must be a string \(got a number\)/);
  assert.match(errors[4]!.message, /id "k1" was already used on line 6/);
  assert.equal(failures[0]!.source, 'imported');
  assert.equal(failures[0]!.languageId, 'python');
  assert.equal(failures[0]!.prompt, 'def add(a, b):\n    ');
  assert.match(failures[0]!.id, /^line-1-/);
  assert.deepEqual({ id: failures[1]!.id, group: failures[1]!.group, rejected: failures[1]!.rejected }, { id: 'k1', group: 'imports', rejected: 'sys' });
  assert.equal(failures[2]!.status, 'repaired');
});

test('parseFailuresJsonl applies the size guard per line and takes defaults from options', () => {
  const text = `{"prompt": "${'p'.repeat(20)}", "desired": "d"}\n{"prompt": "ok", "desired": "d"}\n`;
  const { failures, errors } = parseFailuresJsonl(text, { maxPromptChars: 10, languageId: 'typescript', source: 'manual' });
  assert.equal(failures.length, 1);
  assert.deepEqual(errors.map((e) => e.line), [1]);
  assert.match(errors[0]!.message, /20 characters, more than the limit of 10/);
  assert.equal(failures[0]!.languageId, 'typescript');
  assert.equal(failures[0]!.source, 'manual');
});

test('formatFailuresJsonl round-trips through parseFailuresJsonl', () => {
  const fs: Failure[] = [
    createFailure({ prompt: 'a\n"quoted"\t', desired: 'b\u2028c', group: 'g' }, {}, NOW),
    createFailure({ prompt: 'p', desired: 'q', source: 'rejected', uri: 'file:///x.py', line: 2, rejected: 'r' }, {}, NOW),
  ];
  const back = parseFailuresJsonl(formatFailuresJsonl(fs));
  assert.deepEqual(back.errors, []);
  assert.deepEqual(back.failures, fs);
  assert.equal(formatFailuresJsonl([]), '');
  assert.deepEqual(parseFailuresJsonl('\ufeff{"prompt":"a","desired":"b"}').errors, []);
});
