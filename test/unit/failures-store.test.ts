// FailureStore: persistence per model fingerprint, CRUD, recovery from damaged files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailureStore, UnknownFailureError, DuplicateFailureError } from '../../src/failures/store';
import { InvalidFailureError, createFailure } from '../../src/failures/failure';
import { UnsupportedStoreVersionError } from '../../src/store/document';
import { InvalidFingerprintError } from '../../src/store/fingerprint-file';

const FP = 'a'.repeat(64);
const FP2 = 'b'.repeat(64);

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'star-failures-'));
}

test('add / update / list / remove persist across reopen, one file per fingerprint', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  assert.deepEqual(s.problems, []);
  assert.equal(fs.existsSync(s.file), false, 'nothing written before the first change');
  const a = s.add({ prompt: 'def f():\n    ', desired: 'return 1', source: 'rejected', languageId: 'python', rejected: 'pass' });
  const b = s.add(createFailure({ prompt: 'import ', desired: 'os' }));
  s.update(a.id, { status: 'repaired', group: 'g' });
  assert.throws(() => s.update('nope', { status: 'discarded' }), UnknownFailureError);
  assert.throws(() => s.update(a.id, { desired: '' }), InvalidFailureError);
  assert.throws(() => s.add(b), DuplicateFailureError);
  assert.throws(() => s.add({ prompt: '', desired: 'x' }), InvalidFailureError);

  const again = FailureStore.open(dir, FP);
  assert.deepEqual(again.list(), s.list());
  assert.equal(again.get(a.id)!.status, 'repaired');
  assert.equal(again.get(a.id)!.desired, 'return 1', 'a refused update changed nothing');
  assert.deepEqual(again.list({ status: 'pending' }).map((f) => f.id), [b.id]);
  assert.deepEqual(again.list({ status: ['pending', 'repaired'] }).length, 2);
  assert.deepEqual(again.list({ source: 'rejected' }).map((f) => f.id), [a.id]);
  assert.deepEqual(again.list({ group: 'g' }).map((f) => f.id), [a.id]);

  assert.equal(again.remove(a.id, 'unknown'), 1);
  assert.equal(FailureStore.open(dir, FP).size, 1);
  assert.equal(FailureStore.open(dir, FP2).size, 0, 'another model has its own failures');
  assert.deepEqual(fs.readdirSync(dir), [path.basename(s.file)]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('returned records are copies: mutating them does not change the store', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  const a = s.add({ prompt: 'p', desired: 'd' });
  a.desired = 'changed';
  s.list()[0]!.status = 'discarded';
  assert.equal(s.get(a.id)!.desired, 'd');
  assert.equal(s.get(a.id)!.status, 'pending');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('onDidChange fires after each change and can be unsubscribed', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  const seen: number[] = [];
  const off = s.onDidChange((list) => seen.push(list.length));
  const a = s.add({ prompt: 'p', desired: 'd' });
  s.add({ prompt: 'p2', desired: 'd2' });
  s.remove(a.id);
  off();
  s.add({ prompt: 'p3', desired: 'd3' });
  assert.deepEqual(seen, [1, 2, 1]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an unparseable file is moved aside, reported, and the store starts empty', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  s.add({ prompt: 'p', desired: 'd' });
  fs.writeFileSync(s.file, '{"version": 1, "failures": [ {"id": "x"');
  const r = FailureStore.open(dir, FP, { now: () => new Date('2024-01-01T00:00:00Z') });
  assert.equal(r.size, 0);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /is not valid JSON .*moved to .*\.corrupt-2024-01-01T00-00-00-000Z, starting empty/);
  const aside = path.join(dir, `${path.basename(s.file)}.corrupt-2024-01-01T00-00-00-000Z`);
  assert.equal(fs.readFileSync(aside, 'utf8'), '{"version": 1, "failures": [ {"id": "x"', 'the damaged bytes are kept');
  r.add({ prompt: 'new', desired: 'one' });
  assert.equal(FailureStore.open(dir, FP).size, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a file of the wrong shape is moved aside', () => {
  const dir = tmp();
  const file = path.join(dir, `failures-${FP}.json`);
  fs.writeFileSync(file, '[1,2,3]');
  const r = FailureStore.open(dir, FP);
  assert.equal(r.size, 0);
  assert.match(r.problems[0]!, /expected a JSON object/);
  assert.equal(fs.existsSync(file), false);
  fs.writeFileSync(file, JSON.stringify({ version: 1, modelFingerprint: FP2, failures: [] }));
  assert.match(FailureStore.open(dir, FP).problems[0]!, /"modelFingerprint" is "bbbb/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad entries are dropped, good ones kept, and the original is copied aside (nothing readable lost)', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  const a = s.add({ prompt: 'p', desired: 'd' });
  const b = s.add({ prompt: 'p2', desired: 'd2' });
  const doc = JSON.parse(fs.readFileSync(s.file, 'utf8')) as { failures: unknown[] };
  doc.failures.splice(1, 0, { id: 'broken', prompt: '' }, { ...a });
  const original = JSON.stringify(doc);
  fs.writeFileSync(s.file, original);
  const r = FailureStore.open(dir, FP);
  assert.deepEqual(r.list().map((f) => f.id), [a.id, b.id]);
  assert.equal(r.problems.length, 2);
  assert.match(r.problems[0]!, /failure #1: .*"prompt" is empty.*original file is kept as/);
  assert.match(r.problems[1]!, /failure #2 repeats id/);
  const asides = fs.readdirSync(dir).filter((n) => n.includes('.corrupt-'));
  assert.equal(asides.length, 1);
  assert.equal(fs.readFileSync(path.join(dir, asides[0]!), 'utf8'), original);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a file from a newer version is refused and left untouched', () => {
  const dir = tmp();
  const file = path.join(dir, `failures-${FP}.json`);
  const text = JSON.stringify({ version: 99, modelFingerprint: FP, failures: [] });
  fs.writeFileSync(file, text);
  assert.throws(() => FailureStore.open(dir, FP), (e: unknown) => e instanceof UnsupportedStoreVersionError && /update the extension/.test(e.message));
  assert.equal(fs.readFileSync(file, 'utf8'), text);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a fingerprint that is not file-name safe is refused', () => {
  assert.throws(() => FailureStore.open(tmp(), '../etc/passwd'), InvalidFingerprintError);
  assert.throws(() => FailureStore.open(tmp(), ''), InvalidFingerprintError);
});

test('a failed write leaves the in-memory list unchanged', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  s.add({ prompt: 'p', desired: 'd' });
  // A non-empty directory where the file should be makes the rename fail, even as root.
  fs.rmSync(s.file);
  fs.mkdirSync(path.join(s.file, 'inside'), { recursive: true });
  assert.throws(() => s.add({ prompt: 'p2', desired: 'd2' }));
  assert.equal(s.size, 1);
  assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(s.file)]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('addOrReuse: an open failure with the same prompt and desired text (up to a final line break) is reused, not twinned', () => {
  const s = FailureStore.open(tmp(), FP);
  const captured = s.add({ prompt: 'import os\n', desired: 'import re', source: 'rejected', languageId: 'python', rejected: 'import sys' });
  const manual = { prompt: 'import os\n', source: 'manual' as const, languageId: 'python' };
  assert.equal(s.addOrReuse({ ...manual, desired: 'import re' }).id, captured.id);
  assert.equal(s.size, 1);
  // The selected line with its line break: the same failure, taking the fuller desired text.
  const taken = s.addOrReuse({ ...manual, desired: 'import re\n' });
  assert.equal(taken.id, captured.id);
  assert.equal(s.get(captured.id)?.desired, 'import re\n');
  assert.equal(s.size, 1);
  // Other text or another prompt: a new failure.
  assert.notEqual(s.addOrReuse({ ...manual, desired: 'import r' }).id, captured.id);
  assert.notEqual(s.addOrReuse({ ...manual, prompt: 'import os', desired: 'import re\n' }).id, captured.id);
  assert.equal(s.size, 3);
  s.update(captured.id, { status: 'unfixed' });
  assert.equal(s.addOrReuse({ ...manual, desired: 'import re\n' }).id, captured.id);
  s.update(captured.id, { status: 'repaired' });
  assert.notEqual(s.addOrReuse({ ...manual, desired: 'import re\n' }).id, captured.id, 'a repaired or discarded failure is not reopened');
});
