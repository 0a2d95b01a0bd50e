// PatchStore: ordered history with enabled flags, persistence, undo, recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PatchStore, UnknownPatchError, DuplicatePatchError, HistoryFullError } from '../../src/repair/patch-store';
import { readPatchFile } from '../../src/store/patch-file';
import { DocumentTooLargeError, MAX_DOCUMENT_CHARS, serializeDocument } from '../../src/store/document';
import { InvalidPatchError, PatchMismatchError, combinePatches, type Patch } from '../../src/repair/patch';

const FP = 'c'.repeat(64);
const OTHER = 'd'.repeat(64);
const D = 2;

function patch(id: string, layer: number, rows: number[], fp = FP): Patch {
  return {
    id, modelFingerprint: fp, method: 'star', mode: 'batch', options: {}, failureIds: [`f-${id}`],
    createdAt: '2024-03-04T05:06:07.000Z',
    layers: [{ layer, rows, deltas: Float32Array.from(rows.flatMap((r) => [r, -r])) }],
    scores: { effectiveness: null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 2, neurons: rows.length, params: rows.length * D },
  };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'star-patches-'));
}

test('add, toggle, remove, undoLast, active — and the history survives reopening', () => {
  const dir = tmp();
  let t = 0;
  const s = PatchStore.open(dir, FP, { hiddenSize: D, now: () => new Date(Date.UTC(2024, 0, 1, 0, 0, t++)) });
  s.add(patch('a', 0, [1, 2]));
  s.add(patch('b', 1, [3]));
  s.add(patch('c', 0, [2]), { enabled: false });
  assert.deepEqual(s.list().map((e) => [e.patch.id, e.enabled]), [['a', true], ['b', true], ['c', false]]);
  assert.deepEqual(s.active().map((p) => p.id), ['a', 'b']);
  assert.equal(s.list()[1]!.addedAt, '2024-01-01T00:00:01.000Z');

  assert.equal(s.undoLast()!.patch.id, 'b', 'undo disables the newest enabled patch');
  assert.deepEqual(s.active().map((p) => p.id), ['a']);
  assert.equal(s.toggle('c').enabled, true);
  assert.equal(s.toggle('c', true).enabled, true);
  assert.equal(s.undoLast()!.patch.id, 'c');
  assert.equal(s.undoLast()!.patch.id, 'a');
  assert.equal(s.undoLast(), undefined);
  s.toggle('b', true);

  const r = PatchStore.open(dir, FP, { hiddenSize: D });
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.list().map((e) => [e.patch.id, e.enabled]), [['a', false], ['b', true], ['c', false]]);
  assert.deepEqual([...r.get('a')!.patch.layers[0]!.deltas], [1, -1, 2, -2], 'deltas survive the round trip');
  assert.equal(r.remove('b').patch.id, 'b');
  assert.throws(() => r.remove('b'), UnknownPatchError);
  assert.throws(() => r.toggle('zz'), UnknownPatchError);
  assert.deepEqual(PatchStore.open(dir, FP).list().map((e) => e.patch.id), ['a', 'c']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a history that would outgrow its file is refused before writing, with what to do, and loses nothing', () => {
  // The file is read and written as one string (V8's longest is 2^29 − 24 characters): ~11
  // patches of the largest size one patch may have. A smaller bound stands in for it here.
  const dir = tmp();
  const s = PatchStore.open(dir, FP, { hiddenSize: D, maxFileChars: 4000 });
  let refused: unknown;
  let added = 0;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    try {
      s.add(patch(`p${i}`, 0, [1, 2, 3, 4]));
      added++;
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused instanceof DocumentTooLargeError, `expected DocumentTooLargeError, got ${String(refused)}`);
  assert.ok(added > 1);
  assert.match(refused.message, /^the patch history of this model would take [\d.]+ MB, more than the [\d.]+ MB one store file can hold/);
  assert.match(refused.message, /nothing was saved/);
  assert.match(refused.message, /Manage Patches/);
  assert.ok(refused.chars > 4000 && refused.limit === 4000);
  const onDisk = fs.readFileSync(s.file, 'utf8');
  assert.ok(onDisk.length <= 4000, `the file stays within the bound (${onDisk.length})`);
  assert.equal(s.list().length, added, 'memory keeps what the file has');
  assert.deepEqual(PatchStore.open(dir, FP, { hiddenSize: D }).list().map((e) => e.patch.id), s.list().map((e) => e.patch.id));
  // Removing a patch makes room again.
  s.remove('p0');
  s.add(patch('after', 1, [5]));
  assert.deepEqual(s.list().map((e) => e.patch.id).slice(-1), ['after']);
});

test('a repair\'s patch the full history cannot take is kept in a file beside it, and the error says where', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP, { hiddenSize: D, maxFileChars: 1500 });
  let full: unknown;
  for (let i = 0; i < 100 && full === undefined; i++) {
    try {
      s.addNew(patch(`n${i}`, 0, [1, 2, 3, 4]));
    } catch (err) {
      full = err;
    }
  }
  assert.ok(full instanceof HistoryFullError, `expected HistoryFullError, got ${String(full)}`);
  assert.equal(path.dirname(full.keptIn), dir);
  assert.ok(full.message.includes(full.keptIn) && /Import a patch file/.test(full.message), full.message);
  const kept = readPatchFile(full.keptIn, D);
  assert.equal(kept.id, full.patchId);
  assert.ok(!s.list().some((e) => e.patch.id === full.patchId), 'not in the history');
  assert.deepEqual(kept.layers[0]!.deltas, patch(full.patchId, 0, [1, 2, 3, 4]).layers[0]!.deltas);
  // Once there is room it imports as it was.
  for (const e of s.list()) s.remove(e.patch.id);
  assert.equal(s.add(kept).patch.id, full.patchId);
});

test('serializeDocument measures the text it would write exactly', () => {
  const records = [{ a: 1, s: 'é"\\' }, [], { b: [1, 2, 3] }];
  for (const rs of [[], records.slice(0, 1), records]) {
    const text = serializeDocument({ version: 1 }, 'entries', rs);
    assert.deepEqual(JSON.parse(text), { version: 1, entries: rs });
    assert.equal(serializeDocument({ version: 1 }, 'entries', rs, { maxChars: text.length, what: 'it' }), text);
    assert.throws(() => serializeDocument({ version: 1 }, 'entries', rs, { maxChars: text.length - 1, what: 'it' }),
      (err: unknown) => err instanceof DocumentTooLargeError && err.chars === text.length);
  }
});

test('at the runtime\'s own bound a document too long for one string is refused as DocumentTooLargeError, not V8\'s RangeError', () => {
  assert.ok(Number.isInteger(MAX_DOCUMENT_CHARS) && MAX_DOCUMENT_CHARS >= 2 ** 28, `MAX_DOCUMENT_CHARS is ${MAX_DOCUMENT_CHARS}`);
  const record = { deltas: 'A'.repeat(Math.ceil(MAX_DOCUMENT_CHARS / 8)) }; // 9 of them: 1.125× the longest string
  assert.throws(() => serializeDocument({ version: 1 }, 'entries', Array(9).fill(record)),
    (err: unknown) => err instanceof DocumentTooLargeError && err.limit === MAX_DOCUMENT_CHARS && err.chars > MAX_DOCUMENT_CHARS);
});

test('the active patches stack into the runtime inputs', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP);
  s.add(patch('a', 0, [1, 2]));
  s.add(patch('b', 0, [2, 5]));
  const c = combinePatches(s.active(), D).get(0)!;
  assert.deepEqual(c.rows, [1, 2, 5]);
  assert.deepEqual([...c.deltas], [1, -1, 4, -4, 5, -5]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('refuses patches for another model, malformed patches and repeated ids', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP, { hiddenSize: D });
  assert.throws(() => s.add(patch('x', 0, [1], OTHER)), PatchMismatchError);
  const wide = patch('w', 0, [1]);
  wide.layers[0]!.deltas = new Float32Array(3);
  assert.throws(() => s.add(wide), InvalidPatchError);
  s.add(patch('a', 0, [1]));
  assert.throws(() => s.add(patch('a', 0, [1])), DuplicatePatchError);
  assert.equal(s.list().length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('setScores records evaluation results', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP);
  s.add(patch('a', 0, [1]));
  s.setScores('a', { effectiveness: 1, generalisation: 0.5, specificity: 0.97 });
  assert.deepEqual(PatchStore.open(dir, FP).get('a')!.patch.scores, { effectiveness: 1, generalisation: 0.5, specificity: 0.97 });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('onDidChange reports each change', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP);
  const seen: string[] = [];
  s.onDidChange((es) => seen.push(es.map((e) => `${e.patch.id}${e.enabled ? '+' : '-'}`).join(',')));
  s.add(patch('a', 0, [1]));
  s.undoLast();
  s.remove('a');
  assert.deepEqual(seen, ['a+', 'a-', '']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a damaged file is moved aside; damaged entries are dropped and reported, the rest kept', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP);
  s.add(patch('a', 0, [1]));
  s.add(patch('b', 1, [2]));
  const doc = JSON.parse(fs.readFileSync(s.file, 'utf8')) as { entries: { patch: { layers: { deltas: string }[]; modelFingerprint: string; id: string } }[] };
  const broken = structuredClone(doc.entries[0]!);
  broken.patch.id = 'broken';
  broken.patch.layers[0]!.deltas = 'AAA=';
  const foreign = structuredClone(doc.entries[0]!);
  foreign.patch.id = 'foreign';
  foreign.patch.modelFingerprint = OTHER;
  doc.entries.push(broken, foreign, { nonsense: true } as never);
  fs.writeFileSync(s.file, JSON.stringify(doc));
  const r = PatchStore.open(dir, FP);
  assert.deepEqual(r.list().map((e) => e.patch.id), ['a', 'b']);
  assert.equal(r.problems.length, 3);
  assert.match(r.problems[0]!, /entry #2: .*not a whole number of float32/);
  assert.match(r.problems[1]!, /entry #3 \(patch foreign\) was made for model dddddddd/);
  assert.match(r.problems[2]!, /entry #4 lacks a boolean "enabled"/);
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.corrupt-')).length, 1);

  fs.writeFileSync(s.file, 'garbage');
  const e = PatchStore.open(dir, FP);
  assert.equal(e.list().length, 0);
  assert.match(e.problems[0]!, /not valid JSON.*starting empty/);
  assert.equal(fs.readdirSync(dir).filter((n) => n.includes('.corrupt-')).length, 2);
  fs.rmSync(dir, { recursive: true, force: true });
});
