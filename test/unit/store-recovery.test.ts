// Recovery of damaged store files and leftovers: a file with one bad byte keeps every readable
// record (parsed record by record), one backup of the damaged original is kept however often the
// store is reopened, and temp files of writers that no longer run are removed at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailureStore } from '../../src/failures/store';
import { PatchStore } from '../../src/repair/patch-store';
import type { Patch } from '../../src/repair/patch';
import { removeStaleTempFiles } from '../../src/store/atomic';

const FP = 'f'.repeat(64);

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'star-recovery-'));
}

function backups(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes('.corrupt-'));
}

/** Replaces the byte at the first occurrence of `marker` (plus `offset`) with `byte`. */
function damage(file: string, marker: string, byte: number, offset = 0): void {
  const bytes = fs.readFileSync(file);
  const at = bytes.indexOf(marker);
  assert.ok(at >= 0, `${marker} not in ${file}`);
  bytes[at + offset] = byte;
  fs.writeFileSync(file, bytes);
}

function patch(id: string): Patch {
  return {
    id, modelFingerprint: FP, method: 'star', mode: 'batch', options: {}, failureIds: [`f-${id}`],
    createdAt: '2024-03-04T05:06:07.000Z',
    layers: [{ layer: 0, rows: [1], deltas: Float32Array.from([1, -1]) }],
    scores: { effectiveness: null, generalisation: null, specificity: null },
    stats: { ms: 1, peakRssMb: 2, neurons: 1, params: 2 },
  };
}

test('one bad byte in a failure store loses only the record it is in; one backup however often it is reopened', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  for (let i = 0; i < 5; i++) s.add({ id: `id-${i}`, prompt: `prompt ${i}`, desired: `desired ${i}` });
  const original = fs.readFileSync(s.file);
  damage(s.file, '"id-2"', 0x01, 3); // a control character inside a string: not JSON any more
  assert.throws(() => JSON.parse(fs.readFileSync(s.file, 'utf8')));
  const damaged = fs.readFileSync(s.file);
  const r = FailureStore.open(dir, FP);
  assert.deepEqual(r.list().map((f) => f.id), ['id-0', 'id-1', 'id-3', 'id-4']);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /not valid JSON.*recovered 4 record\(s\).*1 unreadable.*kept as .*\.corrupt-/);
  assert.equal(backups(dir).length, 1);
  assert.deepEqual(fs.readFileSync(path.join(dir, backups(dir)[0]!)), damaged, 'the backup holds the damaged bytes');
  // The live file now holds the recovered records: reopening is clean and makes no new copy.
  for (let i = 0; i < 3; i++) {
    const again = FailureStore.open(dir, FP);
    assert.deepEqual(again.problems, []);
    assert.equal(again.size, 4);
  }
  assert.equal(backups(dir).length, 1);
  assert.notDeepEqual(original, damaged);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a bad byte in the header still recovers the records; a backup identical to an existing one is not made twice', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  for (let i = 0; i < 3; i++) s.add({ id: `id-${i}`, prompt: `p${i}`, desired: 'd' });
  damage(s.file, '"version"', 0x7b); // {version" ...
  const damaged = fs.readFileSync(s.file);
  const r = FailureStore.open(dir, FP);
  assert.deepEqual(r.list().map((f) => f.id), ['id-0', 'id-1', 'id-2']);
  assert.equal(backups(dir).length, 1);
  // Put the damaged bytes back (as if the rewrite had not happened): the same damage makes no new copy.
  fs.writeFileSync(s.file, damaged);
  assert.equal(FailureStore.open(dir, FP).size, 3);
  assert.equal(backups(dir).length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('dropped entries of a parseable file: one backup, the live file keeps the good ones, reopen is clean', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  const a = s.add({ prompt: 'p', desired: 'd' });
  const doc = JSON.parse(fs.readFileSync(s.file, 'utf8')) as { failures: unknown[] };
  doc.failures.push({ id: 'broken', prompt: '' });
  fs.writeFileSync(s.file, JSON.stringify(doc));
  assert.equal(FailureStore.open(dir, FP).problems.length, 1);
  const again = FailureStore.open(dir, FP);
  assert.deepEqual(again.problems, []);
  assert.deepEqual(again.list().map((f) => f.id), [a.id]);
  assert.equal(backups(dir).length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a file written by the previous version (pretty-printed) with one bad byte keeps its readable records', () => {
  const dir = tmp();
  const file = path.join(dir, `failures-${FP}.json`);
  const failures = [0, 1, 2].map((i) => ({
    id: `old-${i}`, createdAt: '2024-01-01T00:00:00.000Z', source: 'manual', languageId: 'python',
    prompt: `p${i}`, desired: `d${i}`, status: 'pending',
  }));
  fs.writeFileSync(file, JSON.stringify({ version: 1, modelFingerprint: FP, failures }, null, 1) + '\n');
  damage(file, '"old-1"', 0x00, 2);
  const r = FailureStore.open(dir, FP);
  assert.deepEqual(r.list().map((f) => f.id), ['old-0', 'old-2']);
  assert.equal(backups(dir).length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('one bad byte in a patch history loses only that patch', () => {
  const dir = tmp();
  const s = PatchStore.open(dir, FP, { hiddenSize: 2 });
  for (const id of ['p0', 'p1', 'p2']) s.add(patch(id));
  s.toggle('p2', false);
  damage(s.file, '"p1"', 0x22, 1); // "p1" becomes ""1": not JSON
  const r = PatchStore.open(dir, FP, { hiddenSize: 2 });
  assert.deepEqual(r.list().map((e) => [e.patch.id, e.enabled]), [['p0', true], ['p2', false]]);
  assert.equal(PatchStore.open(dir, FP).problems.length, 0);
  assert.equal(backups(dir).length, 1);
  fs.rmSync(dir, { recursive: true, force: true });
});

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('a temp file of a writer that no longer runs is removed at once; a live writer\'s is kept until it is old', () => {
  const dir = tmp();
  const file = path.join(dir, 'x.json');
  const dead = path.join(dir, `.x.json.${deadPid()}.abc.tmp`);
  const live = path.join(dir, `.x.json.${process.pid}.def.tmp`);
  const parent = path.join(dir, `.x.json.${process.ppid}.0a1.tmp`);
  for (const f of [dead, live, parent]) fs.writeFileSync(f, '{"partial": ');
  assert.deepEqual(removeStaleTempFiles(file), [dead]);
  assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(parent), path.basename(live)].sort());
  // Past the age limit even a live pid's temp file goes (the pid may have been reused).
  assert.deepEqual(removeStaleTempFiles(file, 0).sort(), [live, parent].sort());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('opening a store removes the temp file a killed writer left, however fresh', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  s.add({ prompt: 'p', desired: 'd' });
  const leftover = path.join(dir, `.${path.basename(s.file)}.${deadPid()}.0123456789ab.tmp`);
  fs.writeFileSync(leftover, Buffer.alloc(1024 * 1024, 0x20));
  assert.equal(FailureStore.open(dir, FP).size, 1);
  assert.equal(fs.existsSync(leftover), false);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a damaged header that still parses (a key renamed, another fingerprint) keeps the records too', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  for (let i = 0; i < 3; i++) s.add({ id: `id-${i}`, prompt: `p${i}`, desired: 'd' });
  const good = fs.readFileSync(s.file, 'utf8');
  fs.writeFileSync(s.file, good.replace('"version"', '"versioN"'));
  const a = FailureStore.open(dir, FP);
  assert.deepEqual(a.list().map((f) => f.id), ['id-0', 'id-1', 'id-2']);
  assert.match(a.problems[0]!, /missing numeric "version".*recovered 3 record/);
  fs.writeFileSync(s.file, good.replace(FP, 'a'.repeat(64)));
  const b = FailureStore.open(dir, FP);
  assert.deepEqual(b.list().map((f) => f.id), ['id-0', 'id-1', 'id-2']);
  assert.match(b.problems[0]!, /"modelFingerprint" is "aaaa.*recovered 3 record/);
  assert.deepEqual(FailureStore.open(dir, FP).problems, []);
  fs.writeFileSync(s.file, good.replace('"failures":[', '"failureS":['));
  assert.equal(FailureStore.open(dir, FP).size, 3);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a stray "  {" line in a file of this format does not hide the records', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  for (let i = 0; i < 3; i++) s.add({ id: `id-${i}`, prompt: `p${i}`, desired: 'd' });
  const lines = fs.readFileSync(s.file, 'utf8').split('\n');
  lines.splice(2, 0, '  {');
  fs.writeFileSync(s.file, lines.join('\n'));
  assert.deepEqual(FailureStore.open(dir, FP).list().map((f) => f.id), ['id-0', 'id-1', 'id-2']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('records are recovered wherever the header line ended up (lines swapped)', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  for (let i = 0; i < 4; i++) s.add({ id: `id-${i}`, prompt: `p${i}`, desired: 'd' });
  const lines = fs.readFileSync(s.file, 'utf8').split('\n');
  [lines[0], lines[3]] = [lines[3]!, lines[0]!];
  fs.writeFileSync(s.file, lines.join('\n'));
  assert.deepEqual(FailureStore.open(dir, FP).list().map((f) => f.id).sort(), ['id-0', 'id-1', 'id-2', 'id-3']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('opening a store removes a lock left by a writer that no longer runs', () => {
  const dir = tmp();
  const s = FailureStore.open(dir, FP);
  s.add({ prompt: 'p', desired: 'd' });
  fs.writeFileSync(`${s.file}.lock`, JSON.stringify({ pid: deadPid(), host: os.hostname(), nonce: 'n', time: Date.now() }));
  assert.equal(FailureStore.open(dir, FP).size, 1);
  assert.deepEqual(fs.readdirSync(dir), [path.basename(s.file)]);
  fs.rmSync(dir, { recursive: true, force: true });
});
