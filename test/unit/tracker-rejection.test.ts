// Rejection tracker rules, driven by synthetic editing sessions on a simulated document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RejectionTracker, classifyTyped, normaliseForComparison, typedText,
  type CapturedFailure, type TextRange, type TrackerOutput,
} from '../../src/completion/tracker';

/** A tiny editor: documents as line arrays; every change goes to the tracker like VS Code would send it. */
class Editor {
  readonly docs = new Map<string, string[]>();
  readonly outputs: TrackerOutput[] = [];
  readonly tracker: RejectionTracker;
  time = 1000;
  private nextId = 1;

  constructor(opts: { regressionLimit?: number; maxPending?: number } = {}) {
    this.tracker = new RejectionTracker({ ...opts, lineText: (uri, line) => this.docs.get(uri)?.[line] });
  }

  open(uri: string, text: string): void {
    this.docs.set(uri, text.split('\n'));
  }

  text(uri: string): string {
    return this.docs.get(uri)!.join('\n');
  }

  private feed(ev: Parameters<RejectionTracker['handle']>[0]): TrackerOutput[] {
    const out = this.tracker.handle(ev);
    this.outputs.push(...out);
    return out;
  }

  /** Replaces `range` by `text` in the document and reports the change. */
  edit(uri: string, range: TextRange, text: string): TrackerOutput[] {
    const lines = this.docs.get(uri)!;
    const head = lines[range.startLine]!.slice(0, range.startChar);
    const tail = lines[range.endLine]!.slice(range.endChar);
    lines.splice(range.startLine, range.endLine - range.startLine + 1, ...(head + text + tail).split('\n'));
    return this.feed({ type: 'edit', uri, range, text, time: this.time++ });
  }

  /** Changes applied together (one VS Code event), given in VS Code's descending order. */
  editMany(uri: string, changes: { range: TextRange; text: string }[]): void {
    for (const c of changes) this.edit(uri, c.range, c.text);
  }

  /** Types `text` character by character at (line, ch), moving the cursor like an editor. */
  type(uri: string, line: number, ch: number, text: string): { line: number; ch: number } {
    for (const c of text) {
      this.edit(uri, { startLine: line, startChar: ch, endLine: line, endChar: ch }, c);
      if (c === '\n') { line++; ch = 0; } else ch++;
      this.cursor(uri, line, ch);
    }
    return { line, ch };
  }

  backspace(uri: string, line: number, ch: number, count: number): number {
    for (let i = 0; i < count; i++) {
      this.edit(uri, { startLine: line, startChar: ch - 1, endLine: line, endChar: ch }, '');
      ch--;
      this.cursor(uri, line, ch);
    }
    return ch;
  }

  cursor(uri: string, line: number, character: number): TrackerOutput[] {
    return this.feed({ type: 'cursor', uri, line, character, time: this.time++ });
  }

  /** Shows ghost text at (line, ch); the prompt is the document text before it. */
  show(uri: string, line: number, ch: number, text: string, id = `s${this.nextId++}`): string {
    const lines = this.docs.get(uri)!;
    const prefix = [...lines.slice(0, line), lines[line]!.slice(0, ch)].join('\n');
    this.feed({ type: 'shown', id, uri, line, character: ch, prefix, text, languageId: 'python', time: this.time++ });
    return id;
  }

  /** Accepts: inserts the ghost text then runs the item's command, as VS Code does. */
  accept(uri: string, line: number, ch: number, text: string, id: string): void {
    this.edit(uri, { startLine: line, startChar: ch, endLine: line, endChar: ch }, text);
    this.feed({ type: 'accepted', id, time: this.time++ });
  }

  /** Escape while the ghost text is visible (the extension's keybinding reports it). */
  dismiss(uri: string, line: number): TrackerOutput[] {
    return this.feed({ type: 'dismissed', uri, line, time: this.time++ });
  }

  close(uri: string): TrackerOutput[] {
    this.docs.delete(uri);
    return this.feed({ type: 'closed', uri, time: this.time++ });
  }

  failures(): CapturedFailure[] {
    return this.outputs.flatMap((o) => (o.type === 'failure' ? [o.failure] : []));
  }

  dropped(): string[] {
    return this.outputs.flatMap((o) => (o.type === 'dropped' ? [`${o.suggestionId}:${o.reason}`] : []));
  }
}

const A = 'file:///a.py';
const B = 'file:///b.py';

test('rejecting by typing a different line and pressing Enter captures a failure', () => {
  const ed = new Editor();
  ed.open(A, 'def add(a, b):\n    ');
  const id = ed.show(A, 1, 4, 'return a - b');
  const at = ed.type(A, 1, 4, 'return a + b\n    ');
  assert.deepEqual(at, { line: 2, ch: 4 });
  const f = ed.failures();
  assert.equal(f.length, 1);
  assert.deepEqual(
    { id: f[0]!.suggestionId, prompt: f[0]!.prompt, rejected: f[0]!.rejected, desired: f[0]!.desired, line: f[0]!.line, reason: f[0]!.reason, lang: f[0]!.languageId, uri: f[0]!.uri },
    { id, prompt: 'def add(a, b):\n    ', rejected: 'return a - b', desired: 'return a + b', line: 1, reason: 'newline', lang: 'python', uri: A },
  );
  assert.deepEqual(ed.tracker.pendingIds(), []);
});

test('typing the suggestion by hand is an implicit acceptance, not a failure', () => {
  const ed = new Editor();
  ed.open(A, 'import ');
  const id = ed.show(A, 0, 7, 'os');
  ed.type(A, 0, 7, 'os\n');
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.tracker.regressionSet().map((s) => [s.suggestionId, s.how, s.completion, s.prompt]), [[id, 'typed', 'os', 'import ']]);
});

test('accepting records a regression sample and no failure, even when the insertion finishes the line', () => {
  const ed = new Editor();
  ed.open(A, 'for i in ');
  const one = ed.show(A, 0, 9, 'range(10):');
  ed.accept(A, 0, 9, 'range(10):', one);
  ed.cursor(A, 0, 19);
  ed.type(A, 0, 19, '\n    ');
  // A multi-line suggestion: its insertion contains a newline and arrives before the command.
  const two = ed.show(A, 1, 4, 'print(i)\n    print(i * 2)');
  ed.accept(A, 1, 4, 'print(i)\n    print(i * 2)', two);
  ed.cursor(A, 2, 16);
  assert.deepEqual(ed.failures(), []);
  const set = ed.tracker.regressionSet();
  assert.deepEqual(set.map((s) => [s.suggestionId, s.how, s.completion]), [
    [one, 'accepted', 'range(10):'],
    [two, 'accepted', 'print(i)\n    print(i * 2)'],
  ], 'the typed-through record of the multi-line one was upgraded, not duplicated');
  assert.equal(ed.text(A), 'for i in range(10):\n    print(i)\n    print(i * 2)');
});

test('an accept whose insertion replaces text before the anchor still counts as accepted', () => {
  const ed = new Editor();
  ed.open(A, 'x = ma');
  const id = ed.show(A, 0, 6, 'x(a, b)');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 6 }, 'max(a, b)');
  ed.tracker.handle({ type: 'accepted', id, time: 5 });
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.tracker.regressionSet().map((s) => s.how), ['accepted']);
});

test('typing only the start of the suggestion and leaving the line is not a failure', () => {
  const ed = new Editor();
  ed.open(A, 'x = \ny = 2');
  const id = ed.show(A, 0, 4, 'compute(a, b)');
  ed.type(A, 0, 4, 'comp');
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.dropped(), [`${id}:partial`]);
});

test('nothing typed: pressing Enter or moving away drops the suggestion', () => {
  const ed = new Editor();
  ed.open(A, 'a = 1\nb = 2');
  const s1 = ed.show(A, 0, 5, '  # comment');
  ed.type(A, 0, 5, '\n');
  const s2 = ed.show(A, 1, 0, 'c = 3');
  ed.cursor(A, 2, 0);
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.dropped(), [`${s1}:nothing-typed`, `${s2}:nothing-typed`]);
});

test('a suggestion dismissed with Escape before typing is not a failure, whatever is typed afterwards', () => {
  const ed = new Editor();
  ed.open(A, 'import os\n');
  const id = ed.show(A, 1, 0, 'import os');
  ed.dismiss(A, 1);
  assert.deepEqual(ed.dropped(), [`${id}:dismissed`]);
  ed.type(A, 1, 0, 'import re\n');
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.tracker.pendingIds(), []);
});

test('Escape after typing part of a different line does not undo the rejection', () => {
  const ed = new Editor();
  ed.open(A, 'x = ');
  ed.show(A, 0, 4, 'len(xs)');
  ed.type(A, 0, 4, 'sum(');
  ed.dismiss(A, 0);
  ed.type(A, 0, 8, 'xs)\n');
  assert.deepEqual(ed.failures().map((f) => [f.rejected, f.desired]), [['len(xs)', 'sum(xs)']]);
});

test('Escape on another line or document leaves a suggestion tracked', () => {
  const ed = new Editor();
  ed.open(A, 'x = \ny = ');
  ed.open(B, 'z = ');
  ed.show(A, 0, 4, 'len(xs)');
  ed.dismiss(A, 1);
  ed.dismiss(B, 0);
  ed.type(A, 0, 4, 'sum(xs)\n');
  assert.equal(ed.failures().length, 1);
});

test('the cursor leaving the line finishes it', () => {
  const ed = new Editor();
  ed.open(A, 'def f():\n    \n\nprint(1)');
  ed.show(A, 1, 4, 'pass');
  ed.type(A, 1, 4, 'return 42');
  assert.equal(ed.failures().length, 0, 'not finished while the cursor is on the line');
  ed.cursor(A, 1, 0);
  assert.equal(ed.failures().length, 0, 'moving within the line does not finish it');
  ed.cursor(A, 3, 2);
  const f = ed.failures();
  assert.deepEqual([f.length, f[0]!.desired, f[0]!.reason], [1, 'return 42', 'cursor-left']);
});

test('deleting back before the start cancels the suggestion for good', () => {
  const ed = new Editor();
  ed.open(A, 'value = ');
  const id = ed.show(A, 0, 8, 'None');
  let ch = ed.type(A, 0, 8, 'Tr').ch;
  ch = ed.backspace(A, 0, ch, 4);
  assert.deepEqual(ed.dropped(), [`${id}:edited-before-start`]);
  ed.type(A, 0, ch, 'x = 5\n');
  assert.deepEqual(ed.failures(), []);
});

test('changing the prompt on the same line (e.g. re-indentation) cancels', () => {
  const ed = new Editor();
  ed.open(A, 'if x:\n    a()\n    els');
  const id = ed.show(A, 2, 7, 'e:');
  ed.type(A, 2, 7, 'e:');
  // The editor dedents "else:" on type: an edit before the anchor.
  ed.edit(A, { startLine: 2, startChar: 0, endLine: 2, endChar: 4 }, '');
  ed.cursor(A, 3, 0);
  assert.deepEqual(ed.dropped(), [`${id}:edited-before-start`]);
  assert.deepEqual(ed.failures(), []);
});

test('undo back to the start, then leaving: nothing typed, no failure', () => {
  const ed = new Editor();
  ed.open(A, 'x = \n');
  const id = ed.show(A, 0, 4, '1');
  ed.type(A, 0, 4, 'foo(');
  // Undo removes the typed word in one edit, range starting exactly at the anchor.
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 8 }, '');
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.dropped(), [`${id}:nothing-typed`]);
});

test('undo then typing something else is captured with the final text', () => {
  const ed = new Editor();
  ed.open(A, 'x = \n');
  ed.show(A, 0, 4, '1');
  ed.type(A, 0, 4, 'foo(');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 8 }, '');
  ed.type(A, 0, 4, '2');
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures().map((f) => f.desired), ['2']);
});

test('edits in other documents are ignored; the cursor moving to another document finishes the line', () => {
  const ed = new Editor();
  ed.open(A, 'import ');
  ed.open(B, 'x = 1\ny = 2');
  ed.show(A, 0, 7, 'sys');
  ed.type(A, 0, 7, 'json');
  ed.edit(B, { startLine: 0, startChar: 0, endLine: 1, endChar: 0 }, '');
  ed.edit(B, { startLine: 0, startChar: 0, endLine: 0, endChar: 0 }, 'z = 0\n\n');
  assert.deepEqual(ed.failures(), []);
  ed.cursor(B, 0, 0);
  const f = ed.failures();
  assert.deepEqual([f.length, f[0]!.desired, f[0]!.reason, f[0]!.line], [1, 'json', 'elsewhere', 0]);
});

test('lines inserted or removed above shift the tracked line', () => {
  const ed = new Editor();
  ed.open(A, 'a = 1\nb = 2\nc = ');
  ed.show(A, 2, 4, 'a + b');
  ed.type(A, 2, 4, 'a * ');
  // An auto-import inserts two lines at the top, then a line above is deleted.
  ed.edit(A, { startLine: 0, startChar: 0, endLine: 0, endChar: 0 }, 'import os\nimport sys\n');
  ed.edit(A, { startLine: 3, startChar: 0, endLine: 4, endChar: 0 }, '');
  assert.equal(ed.docs.get(A)![3], 'c = a * ');
  ed.type(A, 3, 8, 'b\n');
  const f = ed.failures();
  assert.deepEqual([f.length, f[0]!.desired, f[0]!.line], [1, 'a * b', 3]);
});

test('an edit joining the line above onto the tracked line cancels (it changes the text before the anchor)', () => {
  const ed = new Editor();
  ed.open(A, 'a = 1\nb = ');
  const id = ed.show(A, 1, 4, '2');
  ed.edit(A, { startLine: 0, startChar: 5, endLine: 1, endChar: 0 }, '');
  assert.deepEqual(ed.dropped(), [`${id}:edited-before-start`]);
  ed.open(A, 'a = 1\nb = ');
  const id2 = ed.show(A, 1, 4, '2');
  ed.edit(A, { startLine: 0, startChar: 5, endLine: 1, endChar: 0 }, ' # one\n# two');
  assert.deepEqual(ed.dropped(), [`${id}:edited-before-start`, `${id2}:edited-before-start`]);
});

test('replacing whole lines above (range ending at column 0 of the tracked line) only moves it', () => {
  const ed = new Editor();
  ed.open(A, 'a = 1\nb = 2\nc = ');
  ed.show(A, 2, 4, '3');
  ed.edit(A, { startLine: 0, startChar: 3, endLine: 2, endChar: 0 }, ' 0\n');
  assert.equal(ed.text(A), 'a = 0\nc = ');
  ed.type(A, 1, 4, '4\n');
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.line]), [['4', 1]]);
  // Lines inserted at column 0 of the tracked line push it down intact.
  ed.type(A, 2, 0, 'd = ');
  ed.show(A, 2, 4, '5');
  ed.edit(A, { startLine: 2, startChar: 0, endLine: 2, endChar: 0 }, 'import os\n');
  ed.type(A, 3, 4, '6\n');
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.line]), [['4', 1], ['6', 3]]);
  assert.deepEqual(ed.dropped(), []);
});

test('text already after the anchor (an auto-closed bracket) is not part of desired', () => {
  const ed = new Editor();
  ed.open(A, 'result = compute()\n');
  ed.show(A, 0, 17, 'a, b');
  ed.type(A, 0, 17, 'x, y');
  assert.equal(ed.docs.get(A)![0], 'result = compute(x, y)');
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures().map((f) => f.desired), ['x, y']);
});

test('Enter in the middle of the line takes the text before the newline', () => {
  const ed = new Editor();
  ed.open(A, 'call()');
  ed.show(A, 0, 5, 'a');
  ed.type(A, 0, 5, 'b,\n');
  assert.deepEqual(ed.failures().map((f) => f.desired), ['b,']);
});

test('auto-closing while typing: the whole typed line counts, type-through of ")" included', () => {
  const ed = new Editor();
  ed.open(A, 'x = ');
  ed.show(A, 0, 4, 'len(a)');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 4 }, 'len()'); // "len(" typed, ")" auto-inserted
  ed.type(A, 0, 8, 'b');
  ed.edit(A, { startLine: 0, startChar: 9, endLine: 0, endChar: 10 }, ')'); // typing over ")"
  ed.type(A, 0, 10, '\n');
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.rejected]), [['len(b)', 'len(a)']]);
});

test('CRLF newline finishes the line without a stray carriage return', () => {
  const ed = new Editor();
  ed.open(A, 'x = ');
  ed.show(A, 0, 4, '1');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 4 }, '2');
  ed.edit(A, { startLine: 0, startChar: 5, endLine: 0, endChar: 5 }, '\r\n');
  assert.deepEqual(ed.failures().map((f) => f.desired), ['2']);
});

test('a paste replacing a selection after the anchor is typed text', () => {
  const ed = new Editor();
  ed.open(A, 'y = old_value');
  ed.show(A, 0, 4, 'old_value + 1');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 0, endChar: 13 }, 'new_value');
  ed.cursor(A, 5, 0);
  assert.deepEqual(ed.failures().map((f) => f.desired), ['new_value']);
});

test('Delete at the end of the line joins the next line: the text comes from the document', () => {
  const ed = new Editor();
  ed.open(A, 'x = \nfoo()\nz');
  ed.show(A, 0, 4, 'bar()');
  ed.edit(A, { startLine: 0, startChar: 4, endLine: 1, endChar: 0 }, '');
  assert.equal(ed.docs.get(A)![0], 'x = foo()');
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures().map((f) => f.desired), ['foo()']);
});

test('multi-cursor: changes of one event, in descending order, are applied consistently', () => {
  const ed = new Editor();
  ed.open(A, 'a\nb = \nc');
  ed.show(A, 1, 4, '1');
  // Two cursors: one at the end of line 1, one at the start of line 0.
  ed.editMany(A, [
    { range: { startLine: 1, startChar: 4, endLine: 1, endChar: 4 }, text: '9' },
    { range: { startLine: 0, startChar: 0, endLine: 0, endChar: 0 }, text: '#\n' },
  ]);
  assert.equal(ed.text(A), '#\na\nb = 9\nc');
  ed.cursor(A, 0, 1);
  const f = ed.failures();
  assert.deepEqual([f.length, f[0]!.desired, f[0]!.line], [1, '9', 2]);
});

test('whitespace rule: trailing and doubled inner blanks ignored; indentation and added spaces count', () => {
  assert.equal(classifyTyped('x =  1   ', 'x = 1'), 'typed');
  assert.equal(classifyTyped('x\t= 1', 'x = 1'), 'typed');
  assert.equal(classifyTyped('a + b', 'a+b'), 'different');
  assert.equal(classifyTyped('  x', '    x'), 'different');
  assert.equal(classifyTyped('    x', '    x'), 'typed');
  assert.equal(classifyTyped('\tx', '    x'), 'different');
  assert.equal(classifyTyped('', 'x'), 'nothing-typed');
  assert.equal(classifyTyped('retur', 'return x\n    y'), 'partial');
  assert.equal(classifyTyped('return x', 'return x\n    y'), 'typed', 'only the first line is compared');
  assert.equal(classifyTyped('x', '\n    y'), 'different', 'the model wanted to end the line here');
  assert.equal(normaliseForComparison('  a \t b  '), '  a b');
  assert.equal(typedText('f(x, y)', 2, ')'), 'x, y');
  assert.equal(typedText('f(x, y', 2, ')'), 'x, y', 'suffix gone: everything after the anchor');
  assert.equal(typedText('f()', 2, '))'), ')', 'a suffix longer than the typed part is not stripped');

  const ed = new Editor();
  ed.open(A, '');
  ed.show(A, 0, 0, 'total = a + b');
  ed.type(A, 0, 0, 'total  =  a + b   \n');
  ed.show(A, 1, 0, 'total = a + b');
  ed.type(A, 1, 0, 'total = a+b\n');
  assert.deepEqual(ed.failures().map((f) => f.desired), ['total = a+b']);
});

test('a ghost text that starts with a newline, then typing on the line, is a failure', () => {
  const ed = new Editor();
  ed.open(A, 'def f():');
  ed.show(A, 0, 8, '\n    return 1');
  ed.type(A, 0, 8, ' # todo\n');
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.rejected]), [[' # todo', '\n    return 1']]);
});

test('several suggestions on one line give one failure, from the earliest that differs', () => {
  const ed = new Editor();
  ed.open(A, '    ');
  const s1 = ed.show(A, 0, 4, 'pass');
  ed.type(A, 0, 4, 'p');
  const s2 = ed.show(A, 0, 5, 'rint(x)');
  ed.type(A, 0, 5, 'rint(');
  const s3 = ed.show(A, 0, 10, 'x)');
  ed.type(A, 0, 10, 'y)\n');
  const f = ed.failures();
  assert.equal(f.length, 1);
  assert.deepEqual([f[0]!.suggestionId, f[0]!.desired, f[0]!.prompt, f[0]!.rejected], [s1, 'print(y)', '    ', 'pass']);
  assert.deepEqual(ed.dropped().sort(), [`${s2}:superseded`, `${s3}:superseded`].sort());
});

test('a suggestion typed through, then a later one rejected, on the same line', () => {
  const ed = new Editor();
  ed.open(A, '');
  const s1 = ed.show(A, 0, 0, 'print(x)');
  ed.type(A, 0, 0, 'print(');
  const s2 = ed.show(A, 0, 6, 'y)');
  ed.type(A, 0, 6, 'x)\n');
  const f = ed.failures();
  assert.deepEqual(f.map((x) => [x.suggestionId, x.desired]), [[s2, 'x)']]);
  assert.deepEqual(ed.tracker.regressionSet().map((s) => [s.suggestionId, s.how]), [[s1, 'typed']]);
});

test('accepting one of several alternatives shown at the same place rejects none of them', () => {
  const ed = new Editor();
  ed.open(A, 'x = ');
  const s1 = ed.show(A, 0, 4, 'foo()');
  const s2 = ed.show(A, 0, 4, 'bar()');
  ed.accept(A, 0, 4, 'bar()', s2);
  ed.cursor(A, 1, 0);
  assert.deepEqual(ed.failures(), []);
  assert.deepEqual(ed.dropped(), [`${s1}:accepted-alternative`]);
});

test('a suggestion shown on another line finishes the previous one', () => {
  const ed = new Editor();
  ed.open(A, 'a = \nb = ');
  ed.show(A, 0, 4, '1');
  ed.type(A, 0, 4, '7');
  // No cursor event (e.g. a click the adapter did not report): the next suggestion elsewhere finishes it.
  ed.show(A, 1, 4, '2');
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.reason]), [['7', 'elsewhere']]);
});

test('closing the document finishes its suggestions from the tracked copy of the line', () => {
  const ed = new Editor();
  ed.open(A, 'name = ');
  ed.show(A, 0, 7, '"bob"');
  ed.type(A, 0, 7, '"alice"');
  ed.close(A);
  assert.deepEqual(ed.failures().map((f) => [f.desired, f.reason]), [['"alice"', 'closed']]);
});

test('flush finishes everything pending', () => {
  const ed = new Editor();
  ed.open(A, 'q = ');
  ed.show(A, 0, 4, '1');
  ed.type(A, 0, 4, '3');
  const out = ed.tracker.flush(99);
  assert.deepEqual(out.map((o) => o.type), ['failure']);
  assert.deepEqual(ed.tracker.pendingIds(), []);
});

test('the regression set is a bounded ring, newest kept', () => {
  const ed = new Editor({ regressionLimit: 3 });
  ed.open(A, '');
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = ed.show(A, i, 0, `v${i} = ${i}`);
    ids.push(id);
    ed.accept(A, i, 0, `v${i} = ${i}`, id);
    ed.type(A, i, `v${i} = ${i}`.length, '\n');
  }
  assert.deepEqual(ed.tracker.regressionSet().map((s) => s.suggestionId), ids.slice(2));
  assert.deepEqual(ed.tracker.regressionSet().map((s) => s.how), ['accepted', 'accepted', 'accepted']);
});

test('pending suggestions are bounded; unknown accepts and empty ghost texts are ignored', () => {
  const ed = new Editor({ maxPending: 2 });
  ed.open(A, 'abcdef');
  const a = ed.show(A, 0, 1, 'x');
  ed.show(A, 0, 2, 'x');
  ed.show(A, 0, 3, 'x');
  assert.deepEqual(ed.dropped(), [`${a}:evicted`]);
  assert.equal(ed.tracker.pendingIds().length, 2);
  assert.deepEqual(ed.tracker.handle({ type: 'accepted', id: 'never-shown' }), []);
  ed.show(A, 0, 3, '');
  assert.equal(ed.tracker.pendingIds().length, 2);
  ed.edit(A, { startLine: 0, startChar: 0, endLine: 0, endChar: 0 }, '');
  assert.equal(ed.tracker.pendingIds().length, 2, 'an empty change is no edit before the anchor');
});

test('listeners receive failures and samples and can unsubscribe', () => {
  const ed = new Editor();
  const got: string[] = [];
  const off1 = ed.tracker.onFailure((f) => got.push(`F:${f.desired}`));
  const off2 = ed.tracker.onRegressionSample((s) => got.push(`R:${s.completion}`));
  ed.open(A, '');
  ed.show(A, 0, 0, 'a');
  ed.type(A, 0, 0, 'b\n');
  const id = ed.show(A, 1, 0, 'c');
  ed.accept(A, 1, 0, 'c', id);
  off1();
  off2();
  ed.show(A, 1, 1, 'd');
  ed.type(A, 1, 1, 'e\n');
  assert.deepEqual(got, ['F:b', 'R:c']);
  assert.equal(ed.failures().length, 2);
});

test('without the document line, the prompt supplies the text before the anchor', () => {
  const t = new RejectionTracker({ lineText: () => undefined });
  t.handle({ type: 'shown', id: 'x', uri: A, line: 3, character: 4, prefix: 'def f():\n    ', text: 'pass', languageId: 'python', time: 1 });
  t.handle({ type: 'edit', uri: A, range: { startLine: 3, startChar: 4, endLine: 3, endChar: 4 }, text: 'return 0', time: 2 });
  const out = t.handle({ type: 'edit', uri: A, range: { startLine: 3, startChar: 12, endLine: 3, endChar: 12 }, text: '\n', time: 3 });
  assert.deepEqual(out.map((o) => (o.type === 'failure' ? o.failure.desired : o.type)), ['return 0']);
});
