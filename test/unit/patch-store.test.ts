// PatchStore: ordered history with enabled flags, persistence, undo, recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PatchStore, UnknownPatchError, DuplicatePatchError } from '../../src/repair/patch-store';
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
